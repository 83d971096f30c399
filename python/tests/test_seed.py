"""The seed application's own calls (issue #20), import lines changed only,
and the package beside a running daemon sharing its jobs.yaml."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

import litewarden as lw

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")

SEED = """
from litewarden.production_db_manager import get_database_manager, db_query, db_update
from litewarden.database_migration import run_pending_migrations, update_schema_safely

run_pending_migrations("website_crawler.db")
db_manager = get_database_manager()
db_update("INSERT INTO crawled_pages (url, domain, title) VALUES (?, ?, ?)", ("https://example.com", "example.com", "Example"))
print("backup", db_manager.backup_database())
health = db_manager.health_check()
print("health", health["status"], health["connection_pool"]["size"])
print("size", db_manager.get_performance_metrics()["db_size_mb"] >= 0)
db_manager.optimize_for_live_updates()
print("rows", db_manager.execute_query("SELECT url FROM crawled_pages"))
print("added", update_schema_safely({"crawled_pages": "crawl_priority INTEGER DEFAULT 1, last_modified TIMESTAMP"}))
print("columns", [c["name"] for c in db_query("SELECT name FROM pragma_table_info('crawled_pages')")])
"""


def shipped_layout(tmp_path):
    shutil.copy(os.path.join(ROOT, "jobs.yaml"), tmp_path / "jobs.yaml")
    shutil.copytree(os.path.join(ROOT, "migrations"), tmp_path / "migrations")


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE", "BACKUP_", "LITEWARDEN_CONFIG"))}
    env.update(extra)
    return env


def test_the_seeds_snippets_run_with_only_their_imports_changed(tmp_path):
    shipped_layout(tmp_path)
    run = subprocess.run([sys.executable, "-c", SEED], cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = dict(line.split(" ", 1) for line in run.stdout.splitlines())
    assert lines["backup"].startswith(str(tmp_path / "backups" / "website_crawler"))
    assert lines["health"].split()[0] in ("healthy", "degraded")
    assert lines["size"] == "True"
    assert lines["rows"] == "[{'url': 'https://example.com'}]"
    assert lines["added"] == "[]", "migration 0002 added both columns already"
    assert "last_modified" in lines["columns"]
    assert not (tmp_path / "analytics.db").exists(), "the seed's default database is the first jobs.yaml lists"


def test_run_pending_migrations_without_a_config_uses_the_shipped_layout_or_says_there_is_none(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    for name in ("LITEWARDEN_CONFIG", "DATABASE1_PATH"):
        monkeypatch.delenv(name, raising=False)
    lw._managers.clear()
    lw.get_database_manager("website_crawler.db", create=True)
    with caplog.at_level("WARNING", logger="litewarden"):
        assert lw.run_pending_migrations("website_crawler.db") == []
    assert "no migrations directory is configured" in caplog.text and "no migration was run" in caplog.text
    shutil.copytree(os.path.join(ROOT, "migrations", "website_crawler"), tmp_path / "migrations" / "website_crawler")
    assert lw.run_pending_migrations("website_crawler.db") == ["0001_create_crawled_pages", "0002_add_crawl_priority"]
    lw._managers.clear()


def test_a_path_that_is_no_database_is_an_error_unless_asked_to_create_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITEWARDEN_CONFIG", raising=False)
    with pytest.raises(lw.DatabaseOpenError, match="no such database .*pass create=True"):
        lw.LiveDatabaseManager("website_crawler.db")
    assert os.listdir(tmp_path) == [], "nothing was created"


def binary():
    path = os.path.join(ROOT, "target", "debug", "litewarden")
    if not os.path.exists(path):
        if os.environ.get("CI") == "true":
            pytest.fail("target/debug/litewarden is missing: scripts/test.sh runs cargo test first")
        pytest.skip("build the binary first (cargo build)")
    return os.path.abspath(path)


def test_beside_a_running_daemon_the_package_shares_its_jobs_yaml_and_state(tmp_path, monkeypatch):
    shipped_layout(tmp_path)
    config = (tmp_path / "jobs.yaml").read_text().replace("  listen: 127.0.0.1:9187", "")
    (tmp_path / "jobs.yaml").write_text(config)
    daemon = subprocess.Popen([binary(), "run"], cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not (tmp_path / "analytics.db").exists() or not list((tmp_path / "backups").glob("*/*.json")):
            assert daemon.poll() is None, daemon.stderr.read().decode()
            assert time.time() < deadline, "the daemon did not create the databases and back them up"
            time.sleep(0.05)
        monkeypatch.chdir(tmp_path)
        for name in ("LITEWARDEN_CONFIG", "DATABASE1_PATH", "BACKUP_DIR"):
            monkeypatch.delenv(name, raising=False)
        lw._managers.clear()
        db = lw.get_database_manager()
        assert db.name == "website_crawler", "the first database jobs.yaml lists"
        assert db.backup_database().startswith(str(tmp_path / "backups" / "website_crawler"))
        assert lw.db_query("SELECT name FROM sqlite_schema WHERE name = 'crawl_stats'", db_path="analytics.db") == [
            {"name": "crawl_stats"}
        ], "db_path= is honoured"
        assert lw.health_check(database="analytics")["status"] != "unhealthy"
        ours = db.health_check()["status"]
        cli = subprocess.run([binary(), "health", "website_crawler", "--json"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
        assert ours in cli.stdout, cli.stdout
        assert not (tmp_path / "website_crawler.db").with_name(".litewarden-live").exists()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [".litewarden"], "one state dir"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        lw._managers.clear()


WRITER = """
import sqlite3, sys, threading, time
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
c = sqlite3.connect(sys.argv[1], timeout=60, isolation_level=None)
n = 0
while not stop.is_set():
    n += 1
    c.execute("INSERT INTO t (who, n) VALUES ('process', ?)", (n,))
    print(n, flush=True)
    time.sleep(0.002)
"""


def test_restores_under_eight_package_threads_and_a_sqlite3_process_lose_no_acknowledged_row(tmp_path, monkeypatch):
    (tmp_path / "jobs.yaml").write_text(
        "version: 1\nsettings: { state_dir: st, backup_dir: bk }\n"
        "databases:\n  app: { path: app.db, pragmas: { busy_timeout: 60s }, backup: { compress: none } }\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LITEWARDEN_CONFIG", str(tmp_path / "jobs.yaml"))
    lw._managers.clear()
    db = lw.get_database_manager(create=True)
    db.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n INTEGER NOT NULL)")
    empty = tmp_path / "empty.db"
    sqlite3_vacuum_into(db.path, empty)
    acknowledged = {i: [] for i in range(8)}
    stop = threading.Event()

    def package_writer(index):
        n = 0
        while not stop.is_set():
            n += 1
            try:
                db.execute("INSERT INTO t (who, n) VALUES (?, ?)", ("thread-%d" % index, n))
            except lw.SqlError as error:
                assert "database is locked" in str(error), error
                continue
            acknowledged[index].append(n)
            time.sleep(0.002)

    threads = [threading.Thread(target=package_writer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(db.path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        # 20 rounds in tests/acknowledged.rs (one sqlite3 writer); here 5 by
        # default: under nine writers each restore waits seconds for the
        # write lock (SQLite's busy handler backs off while they retry).
        for _ in range(int(os.environ.get("LITEWARDEN_RESTORE_ROUNDS", "5"))):
            restore = subprocess.run([binary(), "restore", "app", "--from", str(empty), "--yes"], cwd=tmp_path, capture_output=True, text=True)
            assert restore.returncode == 0, restore.stderr
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        out, _ = process.communicate("", timeout=60)
    by_process = [int(line) for line in out.split()]
    assert by_process and all(rows for rows in acknowledged.values()), "every writer wrote"

    kept = set()
    for path in [db.path] + sorted(str(p) for p in (tmp_path / "bk" / "app").glob("*.db")):
        conn = sqlite3.connect(path)
        kept |= set(conn.execute("SELECT who, n FROM t"))
        conn.close()
    wanted = {("process", n) for n in by_process} | {("thread-%d" % i, n) for i, rows in acknowledged.items() for n in rows}
    lost = wanted - kept
    assert not lost, "%d acknowledged rows are in neither the live file nor a safety copy" % len(lost)
    lw._managers.clear()


def sqlite3_vacuum_into(source, target):
    conn = sqlite3.connect(source)
    conn.execute("VACUUM INTO ?", (str(target),))
    conn.close()


def test_a_broken_jobs_yaml_in_the_directory_does_not_stop_opening_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITEWARDEN_CONFIG", raising=False)
    (tmp_path / "jobs.yaml").write_text("version: [\n")
    sqlite3.connect(tmp_path / "app.db").close()
    assert lw.Manager(tmp_path / "app.db").query("SELECT 1") == [(1,)]
