"""Issue #20 in the Python package: one SQLite library per process, and
transactions and parameters that behave as Python's sqlite3 does."""

import os
import sqlite3
import threading
import time

import pytest

import litewarden as lw


@pytest.fixture
def db(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("LITEWARDEN_CONFIG", "BACKUP_DIR", "BACKUP_RETENTION_DAYS"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "website_crawler.db"
    monkeypatch.setenv("DATABASE1_PATH", str(path))
    lw._managers.clear()
    manager = lw.get_database_manager(create=True)
    manager.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, who TEXT NOT NULL, n INTEGER)")
    yield manager
    lw._managers.clear()


def test_the_package_and_pythons_sqlite3_call_the_same_sqlite_library():
    import _sqlite3
    import ctypes

    theirs = ctypes.cast(ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion, ctypes.c_void_p).value
    assert lw._native.sqlite_library_address() == theirs
    assert lw._native.sqlite_version() == sqlite3.sqlite_version


def test_a_second_sqlite_library_is_refused_at_import_with_what_to_do(monkeypatch):
    monkeypatch.delenv("LITEWARDEN_ALLOW_SECOND_SQLITE", raising=False)
    monkeypatch.setattr(lw._native, "sqlite_library_address", lambda: 1)
    with pytest.raises(ImportError, match="lose acknowledged writes.*LITEWARDEN_ALLOW_SECOND_SQLITE=1"):
        lw._check_one_sqlite()


def test_stdlib_sqlite3_and_the_package_writing_one_file_lose_no_acknowledged_row(db):
    seconds = float(os.environ.get("LITEWARDEN_MIXED_SECS", "10"))
    path = str(db.path)
    acknowledged = {"package": [], "stdlib": []}
    errors = []
    stop = time.monotonic() + seconds

    def package_writer():
        n = 0
        while time.monotonic() < stop:
            n += 1
            try:
                db.execute("INSERT INTO t (who, n) VALUES ('package', ?)", (n,))
                acknowledged["package"].append(n)
            except lw.LitewardenError as error:
                errors.append(repr(error))

    def stdlib_writer():
        n = 0
        while time.monotonic() < stop:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            for _ in range(20):
                n += 1
                try:
                    conn.execute("INSERT INTO t (who, n) VALUES ('stdlib', ?)", (n,))
                    acknowledged["stdlib"].append(n)
                except sqlite3.OperationalError as error:
                    errors.append(repr(error))
            conn.close()

    threads = [threading.Thread(target=package_writer), threading.Thread(target=stdlib_writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, errors[:5]
    assert len(acknowledged["package"]) > 100 and len(acknowledged["stdlib"]) > 100
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    for who, rows in acknowledged.items():
        present = {n for (n,) in check.execute("SELECT n FROM t WHERE who = ?", (who,))}
        assert set(rows) <= present, f"{len(set(rows) - present)} acknowledged {who} rows lost"
    assert db.query("SELECT count(*) FROM t") == [(sum(len(r) for r in acknowledged.values()),)]


def test_commit_waits_for_a_statement_another_thread_runs_in_the_transaction(db):
    """Whichever thread gets the transaction first, commit() never returns
    without committing: a statement running on another thread finishes
    inside the transaction first, or finds it over and raises."""
    for _ in range(5):
        db.execute("DELETE FROM t")
        tx = db.transaction()
        started = threading.Event()
        outcome = []

        def long_statement():
            started.set()
            try:
                tx.execute(
                    "INSERT INTO t (who, n) SELECT 'slow', value FROM "
                    "(WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM c LIMIT 200000) SELECT value FROM c)"
                )
                outcome.append("inside")
            except lw.LitewardenError as error:
                assert "the transaction is over" in str(error)
                outcome.append("after")

        worker = threading.Thread(target=long_statement)
        worker.start()
        started.wait()
        tx.execute("INSERT INTO t (who, n) VALUES ('main', 1)")
        tx.commit()
        worker.join()
        slow = 200000 if outcome == ["inside"] else 0
        assert db.query("SELECT count(*) FROM t WHERE who = 'main'") == [(1,)]
        assert db.query("SELECT count(*) FROM t WHERE who = 'slow'") == [(slow,)], outcome
        assert db.execute("INSERT INTO t (who, n) VALUES ('after', 1)") == 1, "the writer was given back"


def test_begin_and_rollback_through_execute_mean_what_they_say(db):
    db.execute("BEGIN")
    db.execute("INSERT INTO t (who, n) VALUES ('rolled back', 1)")
    assert db.query("SELECT count(*) FROM t") == [(1,)], "the transaction's own reads see it"
    db.execute("ROLLBACK")
    assert db.query("SELECT count(*) FROM t") == [(0,)]

    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t (who, n) VALUES ('kept', 1)")
    db.execute("COMMIT")
    assert db.query("SELECT who FROM t") == [("kept",)]

    with pytest.raises(lw.SqlError, match="no transaction is active"):
        db.execute("COMMIT")


def test_a_missing_named_parameter_raises_as_sqlite3_does(db):
    with pytest.raises(lw.SqlError, match="did not supply a value for binding parameter :n"):
        db.execute("INSERT INTO t (who, n) VALUES (:who, :n)", {"who": "x"})
    with pytest.raises(lw.SqlError, match=":n"):
        db.query("SELECT * FROM t WHERE n = :n", {})
    with db.transaction() as tx:
        with pytest.raises(lw.SqlError, match=":n"):
            tx.execute("INSERT INTO t (who, n) VALUES (:who, :n)", {"who": "x"})
    assert db.query("SELECT count(*) FROM t") == [(0,)]
    assert db.execute("INSERT INTO t (who, n) VALUES (:who, :n)", {"who": "x", "n": None}) == 1


def test_a_reader_cannot_be_made_writable(db):
    db.query("PRAGMA query_only=0")
    with pytest.raises(lw.SqlError, match="readonly"):
        db.query("INSERT INTO t (who, n) VALUES ('reader', 1)")
    assert db.query("SELECT count(*) FROM t") == [(0,)]


def test_update_schema_safely_lets_sqlite_parse_each_definition(db, tmp_path):
    db.execute("INSERT INTO t (who, n) VALUES ('old', 1)")
    manager = lw.LiveDatabaseManager(db.path)
    added = manager.update_schema_safely(
        {
            "t": {
                "a": "TEXT DEFAULT NULL",
                "b": "BOOLEAN DEFAULT TRUE",
                "c": "TEXT DEFAULT 'it''s'",
                "d": "INTEGER DEFAULT 0x10",
                "e": "INTEGER NOT NULL DEFAULT 0",
                "f": "REAL DEFAULT -1.5",
            }
        }
    )
    assert added == ["t.a", "t.b", "t.c", "t.d", "t.e", "t.f"]
    assert db.query("SELECT a, b, c, d, e, f FROM t") == [(None, 1, "it's", 16, 0, -1.5)]
    with pytest.raises(lw.SqlError, match="non-constant default"):
        manager.update_schema_safely({"t": {"g": "TIMESTAMP DEFAULT CURRENT_TIMESTAMP"}})
    assert manager.update_schema_safely({"t": {"a": "TEXT"}}) == [], "an existing column is left alone"


def test_update_schema_safely_takes_the_seeds_string_of_definitions(db):
    manager = lw.LiveDatabaseManager(db.path)
    added = manager.update_schema_safely(
        {"t": "crawl_priority INTEGER DEFAULT 1, last_modified TIMESTAMP, price DECIMAL(10,2) DEFAULT 0"}
    )
    assert added == ["t.crawl_priority", "t.last_modified", "t.price"]
    with pytest.raises(lw.SqlError, match="there is no table `missing`"):
        manager.update_schema_safely({"missing": "x INTEGER"})
    db.execute("INSERT INTO t (who, n) VALUES ('old', 1)")
    with pytest.raises(lw.SqlError, match="Cannot add a NOT NULL column with default value NULL"):
        manager.update_schema_safely({"t": "y INTEGER NOT NULL"})
    with pytest.raises(lw.SqlError, match="Multiple statements|syntax error"):
        manager.update_schema_safely({"t": {"z": "INTEGER; DELETE FROM t"}})
    assert db.query("SELECT count(*) FROM t") == [(1,)]
    assert [row[0] for row in db.query("SELECT name FROM pragma_table_info('t')")][-1] == "price"


def test_a_rollback_journal_database_the_application_made_is_converged_to_wal(tmp_path):
    path = tmp_path / "made_by_the_app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    db = lw.Manager(path)
    assert db.query("PRAGMA journal_mode") == [("wal",)]
    assert db.optimize()["checkpoint"] != "not_wal"


def _child_exit_code(pid, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return "hung"


def test_a_child_forked_while_another_thread_is_inside_execute_refuses_the_database_at_once(db):
    started = threading.Event()
    slow = (
        "INSERT INTO t (who, n) SELECT 'slow', value FROM "
        "(WITH RECURSIVE c(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM c LIMIT 100000) SELECT value FROM c)"
    )
    worker = threading.Thread(target=lambda: (started.set(), db.execute(slow)))
    worker.start()
    started.wait()
    pid = os.fork()
    if pid == 0:
        refused = 0
        for attempt in (
            lambda: db.execute("INSERT INTO t (who, n) VALUES ('child', 1)"),
            lambda: lw.get_database_manager().query("SELECT 1"),
            lambda: lw.Manager(db.path),
        ):
            try:
                attempt()
            except lw.LitewardenError as error:
                refused += "cannot cross fork()" in str(error) and "'spawn'" in str(error)
        os._exit(0 if refused == 3 else 3)
    assert _child_exit_code(pid) == 0
    worker.join()
    assert db.query("SELECT count(*) FROM t WHERE who = 'slow'") == [(100000,)], "the parent goes on"


def test_a_child_forked_during_an_open_transaction_writes_nothing_and_the_parent_commits(db):
    db.execute("BEGIN")
    db.execute("INSERT INTO t (who, n) VALUES ('parent', 1)")
    pid = os.fork()
    if pid == 0:
        try:
            db.execute("INSERT INTO t (who, n) VALUES ('child', 1)")
            os._exit(3)
        except lw.LitewardenError as error:
            os._exit(0 if "cannot cross fork()" in str(error) else 4)
    db.execute("COMMIT")
    assert _child_exit_code(pid) == 0
    assert db.query("SELECT who FROM t") == [("parent",)]
