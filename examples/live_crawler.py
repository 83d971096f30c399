"""A crawler's database traffic through the litewarden Python package (issue
#15): worker threads insert and update crawled_pages while a background
thread runs health checks and optimize; half-way a backup is taken and a new
migration is applied while the workers keep writing. A progress bar shows
pages per second; the metrics print at the end.

    python examples/live_crawler.py [DIR]      # LIVE_CRAWLER_SECS=10
"""

import json
import os
import sys
import tempfile
import threading
import time

import litewarden


def main():
    seconds = float(os.environ.get("LIVE_CRAWLER_SECS", "10"))
    directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="live-crawler-")
    migrations = os.path.join(directory, "migrations")
    os.makedirs(migrations, exist_ok=True)
    with open(os.path.join(migrations, "0001_crawled_pages.sql"), "w") as f:
        f.write("CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT UNIQUE NOT NULL, "
                "status INTEGER, fetched_at TEXT, body TEXT);")
    db = litewarden.LiveDatabaseManager(os.path.join(directory, "website_crawler.db"),
                                        create=True, migrations_dir=migrations)
    db.run_pending_migrations()

    stop = threading.Event()
    pages = [0] * 4
    failures = []

    def worker(index):
        n = 0
        try:
            while not stop.is_set():
                url = f"https://example.com/{index}/{n}"
                db.execute("INSERT INTO crawled_pages (url, fetched_at, body) VALUES (?, datetime('now'), ?)",
                           (url, "lorem ipsum " * 20))
                db.execute("UPDATE crawled_pages SET status = 200 WHERE url = ?", (url,))
                n += 1
                pages[index] = n
        except litewarden.LitewardenError as error:
            failures.append(str(error))

    def maintenance():
        while not stop.wait(1.0):
            db.health()
            db.optimize_for_live_updates()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=maintenance))
    for thread in threads:
        thread.start()
    started = time.time()
    changed = False
    try:
        while time.time() - started < seconds:
            time.sleep(0.25)
            elapsed = time.time() - started
            done = int(30 * min(elapsed / seconds, 1.0))
            print(f"\r[{'#' * done}{'.' * (30 - done)}] {sum(pages) / elapsed:8.0f} pages/s", end="", flush=True)
            if not changed and elapsed >= seconds / 2:
                changed = True
                backup = db.backup_now()
                print(f"\nbackup: {backup['backup']['path']}")
                with open(os.path.join(migrations, "0002_priority.sql"), "w") as f:
                    f.write("ALTER TABLE crawled_pages ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;")
                print(f"migrations applied: {len(db.run_pending_migrations()['applied'])}")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    print()
    if failures:
        raise SystemExit(f"worker errors: {failures[:3]}")
    print(f"{db.query('SELECT count(*) FROM crawled_pages')[0][0]} pages in the database")
    print(json.dumps(db.metrics(), indent=2))


if __name__ == "__main__":
    main()
