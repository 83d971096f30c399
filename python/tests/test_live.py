"""The Python package against real files (issue #15): the seed's functions,
errors, transactions, pool exhaustion and 16 writer threads."""

import os
import sqlite3
import threading
import time

import pytest

import litewarden as lw


@pytest.fixture
def crawler(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("LITEWARDEN_CONFIG", "BACKUP_DIR", "BACKUP_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE1_PATH", str(tmp_path / "website_crawler.db"))
    lw._managers.clear()
    db = lw.get_database_manager(create=True)
    db.execute_batch(
        "CREATE TABLE crawled_pages (id INTEGER PRIMARY KEY, url TEXT UNIQUE NOT NULL, status INTEGER, body BLOB)"
    )
    yield db
    lw._managers.clear()


def test_the_seeds_functions_keep_their_names_and_shapes(crawler, tmp_path):
    assert lw.db_update("INSERT INTO crawled_pages (url, status) VALUES (?, ?)", ("https://a", 200)) == 1
    assert lw.db_update(
        "INSERT INTO crawled_pages (url, status, body) VALUES (:url, :status, :body)",
        {"url": "https://b", "status": None, "body": b"\x00\x01"},
    ) == 1
    assert lw.db_query("SELECT url, status, body FROM crawled_pages ORDER BY id") == [
        {"url": "https://a", "status": 200, "body": None},
        {"url": "https://b", "status": None, "body": b"\x00\x01"},
    ]
    assert crawler.query("SELECT url FROM crawled_pages WHERE status = ?", [200]) == [("https://a",)]
    assert lw.execute_query("UPDATE crawled_pages SET status = 301") == 2
    assert lw.execute_query("SELECT count(*) AS n FROM crawled_pages") == [{"n": 2}]
    assert lw.health_check()["status"] == "healthy"
    metrics = lw.get_performance_metrics()
    assert metrics["db_size_mb"] >= 0 and metrics["queries"]["writes"] >= 3
    backup = lw.backup_database()
    assert backup.startswith(str(tmp_path / "backups" / "website_crawler"))
    with open(backup, "rb") as stored:
        assert stored.read(4).hex() == "28b52ffd", "a zstd frame"
    assert lw.optimize_for_live_updates()["analyzed"] in (True, False)
    added = lw.LiveDatabaseManager(os.environ["DATABASE1_PATH"]).update_schema_safely(
        {"crawled_pages": {"priority": "INTEGER DEFAULT 0 NOT NULL", "note": "TEXT DEFAULT 'none'"}}
    )
    assert added == ["crawled_pages.priority", "crawled_pages.note"]
    assert lw.db_query("SELECT priority, note FROM crawled_pages LIMIT 1") == [{"priority": 0, "note": "none"}]


def test_an_sql_error_carries_the_sql_and_sqlites_message_and_the_pool_stays_healthy(crawler):
    with pytest.raises(lw.SqlError) as error:
        crawler.query("SELECT nope FROM crawled_pages")
    assert str(error.value) == "website_crawler: no such column: nope in `SELECT nope FROM crawled_pages`"
    with pytest.raises(lw.SqlError, match="UNIQUE constraint failed: crawled_pages.url"):
        crawler.execute("INSERT INTO crawled_pages (url) VALUES ('x')")
        crawler.execute("INSERT INTO crawled_pages (url) VALUES ('x')")
    assert isinstance(error.value, lw.LitewardenError)
    assert crawler.query("SELECT count(*) FROM crawled_pages") == [(1,)]


def test_an_exception_inside_a_transaction_rolls_it_back_and_the_manager_goes_on(crawler):
    with pytest.raises(RuntimeError):
        with crawler.transaction() as tx:
            assert tx.execute("INSERT INTO crawled_pages (url) VALUES (?)", ("https://lost",)) == 1
            assert tx.query("SELECT url FROM crawled_pages") == [("https://lost",)], "it sees its writes"
            assert crawler.query("SELECT count(*) FROM crawled_pages") == [(0,)], "readers do not"
            raise RuntimeError("the crawler failed")
    with pytest.raises(lw.SqlError):
        with crawler.transaction() as tx:
            tx.execute("INSERT INTO crawled_pages (url) VALUES (?)", ("https://first",))
            tx.execute("INSERT INTO crawled_pages (url) VALUES (?)", ("https://first",))
    assert crawler.query("SELECT count(*) FROM crawled_pages") == [(0,)]
    with crawler.transaction() as tx:
        tx.execute("INSERT INTO crawled_pages (url) VALUES (:url)", {"url": "https://kept"})
    with pytest.raises(lw.LitewardenError, match="the transaction is over"):
        tx.execute("INSERT INTO crawled_pages (url) VALUES ('late')")
    assert crawler.query("SELECT url FROM crawled_pages") == [("https://kept",)]


def test_other_threads_writes_wait_for_an_open_transaction(crawler):
    done = []
    waits = crawler.metrics()["pool"]["writer_waits"]
    with crawler.transaction() as tx:
        tx.execute("INSERT INTO crawled_pages (url) VALUES ('first')")
        writer = threading.Thread(
            target=lambda: done.append(crawler.execute("INSERT INTO crawled_pages (url) VALUES ('second')"))
        )
        writer.start()
        deadline = time.time() + 10
        while crawler.metrics()["pool"]["writer_waits"] == waits and time.time() < deadline:
            time.sleep(0.01)
        assert crawler.metrics()["pool"]["writer_waits"] == waits + 1, "the other write is waiting"
        assert done == [], "and cannot have run: the transaction has the writer"
    writer.join()
    assert done == [1]
    assert crawler.query("SELECT url FROM crawled_pages ORDER BY id") == [("first",), ("second",)]


def test_a_path_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"these are not the pages you are looking for" * 100)
    with pytest.raises(lw.DatabaseOpenError) as error:
        lw.Manager(path)
    assert str(error.value).endswith("not a SQLite database (wrong path, or the file is encrypted or damaged)")
    with pytest.raises(lw.DatabaseOpenError, match="not a regular file"):
        lw.Manager(tmp_path)


def test_an_exhausted_pool_names_its_size_and_how_many_are_checked_out(tmp_path):
    db = lw.Manager(tmp_path / "small.db", create=True, pool_size=1, connection_timeout=0.2)
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 30000000) SELECT count(*) FROM c"
    started = threading.Event()
    worker = threading.Thread(target=lambda: (started.set(), db.query(slow)))
    worker.start()
    started.wait()
    deadline = time.time() + 10
    while db.metrics()["pool"]["in_use"] == 0 and time.time() < deadline:
        time.sleep(0.01)
    with pytest.raises(lw.PoolExhaustedError) as error:
        db.query("SELECT 1")
    worker.join()
    assert "connection pool exhausted: all 1 connections are checked out (1 in use)" in str(error.value)
    pool = db.metrics()["pool"]
    assert pool["pool_waits"] == 1 and pool["pool_timeouts"] == 1
    assert db.query("SELECT 1") == [(1,)]


def test_a_jobs_yaml_gives_the_path_and_settings(tmp_path, monkeypatch):
    (tmp_path / "jobs.yaml").write_text(
        "version: 1\ndatabases:\n  analytics: { path: data/analytics.db, pragmas: { journal_mode: wal } }\n"
    )
    monkeypatch.setenv("LITEWARDEN_CONFIG", str(tmp_path / "jobs.yaml"))
    lw._managers.clear()
    db = lw.get_database_manager(database="analytics")
    assert db.name == "analytics"
    assert str(db.path) == str(tmp_path / "data" / "analytics.db")
    assert db.query("PRAGMA journal_mode") == [("wal",)]
    lw._managers.clear()


SECONDS = float(os.environ.get("LITEWARDEN_LIVE_SECS", "10"))


def run_writers(write, threads=16, seconds=SECONDS):
    committed, errors = [0] * threads, []
    def writer(index):
        end = time.time() + seconds
        n = 0
        while time.time() < end:
            try:
                write(index, n)
                n += 1
            except Exception as error:
                errors.append(str(error))
        committed[index] = n
    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    return workers, committed, errors


def test_sixteen_writer_threads_with_a_backup_in_the_middle_lose_nothing_and_see_no_lock(crawler, tmp_path):
    crawler.execute_batch("CREATE TABLE ledger (thread INTEGER, n INTEGER)")
    write = lambda i, n: crawler.execute("INSERT INTO ledger VALUES (?, ?)", (i, n))
    workers, committed, errors = run_writers(write)
    time.sleep(SECONDS / 2)
    backup = crawler.backup_now()
    for w in workers:
        w.join()
    assert errors == []
    assert crawler.query("SELECT count(*) FROM ledger") == [(sum(committed),)]
    assert backup["backup"]["record"]["verified_at"] is not None

    path = tmp_path / "plain.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=wal")
    setup.execute("CREATE TABLE ledger (thread INTEGER, n INTEGER)")
    setup.commit()
    local = threading.local()
    def plain_write(i, n):
        if not hasattr(local, "conn"):
            local.conn = sqlite3.connect(path)
        local.conn.execute("INSERT INTO ledger VALUES (?, ?)", (i, n))
        local.conn.commit()
    workers, plain_committed, plain_errors = run_writers(plain_write)
    for w in workers:
        w.join()
    locked = sum("locked" in e for e in plain_errors)
    print(
        f"16 threads, {SECONDS:.0f} s: litewarden {sum(committed) / SECONDS:.0f} commits/s, 0 errors; "
        f"sqlite3 {sum(plain_committed) / SECONDS:.0f} commits/s, {locked} 'database is locked'"
    )


def test_the_live_crawler_example_runs_with_a_backup_and_a_migration_midway(tmp_path):
    import subprocess
    import sys

    example = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "live_crawler.py")
    run = subprocess.run(
        [sys.executable, example, str(tmp_path)],
        env=dict(os.environ, LIVE_CRAWLER_SECS="2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "backup: " + str(tmp_path / "backups" / "website_crawler") in run.stdout
    assert "migrations applied: 1" in run.stdout
    assert "pages in the database" in run.stdout
    assert '"errors": 0' in run.stdout


def test_the_readme_quick_start_runs_as_written(tmp_path, monkeypatch):
    import subprocess
    import sys

    readme = open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md"), encoding="utf-8").read()
    section = readme.index("### Quick Start (Python")
    start = readme.index("```python", section) + len("```python")
    code = readme[start:readme.index("```", start)]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE1_PATH", "BACKUP_DIR", "LITEWARDEN_CONFIG")}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("healthy "), run.stdout
    stored = [n for n in os.listdir(tmp_path / "backups" / "website_crawler") if not n.startswith(".")]
    assert len(stored) == 2, f"a backup and its manifest: {stored}"


def test_a_replicated_database_leaves_its_checkpoints_to_the_daemon(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITEWARDEN_CONFIG", raising=False)
    lw._managers.clear()
    (tmp_path / "jobs.yaml").write_text(
        "version: 1\ndatabases:\n"
        "  plain: { path: plain.db, pragmas: { journal_mode: wal } }\n"
        "  app:\n    path: app.db\n    pragmas: { journal_mode: wal }\n    replicate: { sync_every: 1s }\n"
    )
    for name, expected in (("plain", 1000), ("app", 0)):
        db = lw.Manager(config="jobs.yaml", database=name)
        with db.transaction() as tx:
            assert tx.query("PRAGMA wal_autocheckpoint") == [(expected,)], name


def test_slow_statements_are_kept_for_advise_with_their_literals_as_placeholders(tmp_path):
    path = tmp_path / "app.db"
    sqlite3.connect(path).executescript("CREATE TABLE pages (id INTEGER PRIMARY KEY, host TEXT);")
    db = lw.LiveDatabaseManager(str(path), slow_query=0.0)
    db.query("SELECT id FROM pages WHERE host = ?", ["a.example"])
    db.query("SELECT id FROM pages  WHERE host = 'b.example'")
    del db
    state = sqlite3.connect(tmp_path / ".litewarden" / "state.db")
    deadline = time.monotonic() + 10
    while True:
        rows = state.execute(
            "SELECT sql, count FROM slow_queries WHERE database = 'app' AND sql LIKE 'SELECT id %'"
        ).fetchall()
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows == [("SELECT id FROM pages WHERE host = ?", 2)]
