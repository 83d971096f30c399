"""Benchmark for issue #15: the litewarden Python package against Python's
sqlite3 on the same generated database: query 1000 rows, insert 1000 rows
in one transaction (medians of 31 paired rounds; target <= 1.1x), and 8
writer threads for LITEWARDEN_BENCH_SECS (10) seconds each (target: more
committed writes per second than sqlite3, with zero errors).

    target/py-venv/bin/python benches/live_python.py      # after bash scripts/test.sh
"""

import os
import sqlite3
import statistics
import tempfile
import threading
import time

import litewarden

ROUNDS = 31
ROWS = int(os.environ.get("LITEWARDEN_BENCH_ROWS", "100000"))
SECONDS = float(os.environ.get("LITEWARDEN_BENCH_SECS", "10"))


def generate(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=wal")
    conn.execute(
        "CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT UNIQUE NOT NULL, "
        "status INTEGER, title TEXT, body TEXT, fetched_at TEXT)"
    )
    conn.executemany(
        "INSERT INTO crawled_pages (url, status, title, body, fetched_at) VALUES (?, ?, ?, ?, '2026-12-01')",
        ((f"https://example.com/{i}", 200, f"page {i}", "lorem ipsum " * 40) for i in range(ROWS)),
    )
    conn.execute("CREATE TABLE bench_insert (id INTEGER PRIMARY KEY, url TEXT, body TEXT)")
    conn.commit()
    conn.close()


def paired(theirs, ours):
    a, b = [], []
    for round_ in range(ROUNDS):
        started = time.perf_counter()
        theirs(round_)
        a.append(time.perf_counter() - started)
        started = time.perf_counter()
        ours(round_)
        b.append(time.perf_counter() - started)
    return statistics.median(a), statistics.median(b)


def report(name, theirs, ours):
    ratio = ours / theirs
    verdict = "ok" if ratio <= 1.10 else "OVER"
    print(f"{name:<36} sqlite3 {theirs * 1000:8.3f} ms   litewarden {ours * 1000:8.3f} ms   {ratio:.2f}x  (target <= 1.10x: {verdict})")


def writers(write, threads=8):
    committed, errors = [0] * threads, []
    stop = time.time() + SECONDS

    def run(index):
        n = 0
        while time.time() < stop:
            try:
                write(index, n)
                n += 1
            except Exception as error:
                errors.append(str(error))
        committed[index] = n

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(committed) / SECONDS, errors


def main():
    directory = tempfile.mkdtemp(prefix="litewarden-bench-")
    path = os.path.join(directory, "website_crawler.db")
    generate(path)
    print(f"{ROWS} pages; medians of {ROUNDS} paired rounds")
    plain = sqlite3.connect(path, check_same_thread=False)
    db = litewarden.Manager(path)
    select = "SELECT id, url, status, title FROM crawled_pages WHERE id > ? ORDER BY id LIMIT 1000"
    theirs, ours = paired(
        lambda r: plain.execute(select, ((r * 1000) % (ROWS - 2000),)).fetchall(),
        lambda r: db.query(select, ((r * 1000) % (ROWS - 2000) + 500,)),
    )
    query_ours = ours
    report("query 1000 rows", theirs, ours)

    insert = "INSERT INTO bench_insert (url, body) VALUES (?, ?)"
    body = "lorem ipsum " * 20

    def plain_insert(r):
        with plain:
            plain.executemany(insert, ((f"https://plain/{r}/{i}", body) for i in range(1000)))

    theirs, ours = paired(
        plain_insert,
        lambda r: db.insert_many(insert, [(f"https://live/{r}/{i}", body) for i in range(1000)]),
    )
    insert_ours = ours
    report("insert 1000 rows, one transaction", theirs, ours)

    local = threading.local()

    def plain_write(index, n):
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(path)
        local.conn.execute("UPDATE crawled_pages SET status = ? WHERE id = ?", (n, (index * 7919 + n) % ROWS + 1))
        local.conn.commit()

    plain_rate, plain_errors = writers(plain_write)
    live_rate, live_errors = writers(
        lambda index, n: db.execute("UPDATE crawled_pages SET status = ? WHERE id = ?", (n, (index * 7919 + n) % ROWS + 1))
    )
    locked = sum("locked" in e for e in plain_errors)
    verdict = "ok" if live_rate > plain_rate and not live_errors else "UNDER"
    print(
        f"8 writer threads, {SECONDS:.0f} s                sqlite3 {plain_rate:8.0f} commits/s ({len(plain_errors)} errors, {locked} locked)"
        f"   litewarden {live_rate:8.0f} commits/s ({len(live_errors)} errors)  ({verdict})"
    )
    started = time.perf_counter()
    db.backup_now()
    backup = time.perf_counter() - started
    print()
    print("| operation | seed | litewarden (Python) |")
    print("|---|---|---|")
    print(f"| query | 45 ms | {query_ours * 1000:.2f} ms (1000 rows) |")
    print(f"| insert | 120 ms | {insert_ours * 1000:.2f} ms (1000 rows, one transaction) |")
    print(f"| backup | 8 s | {backup:.2f} s (verified, zstd; {os.path.getsize(path) / 1048576:.0f} MiB) |")


if __name__ == "__main__":
    main()
