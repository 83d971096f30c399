"""litewarden for Python applications: pooled SQLite access with the health
checks, metrics, migrations and verified backups of the litewarden daemon.

    from litewarden import get_database_manager, db_query, db_update

    db = get_database_manager()                 # DATABASE1_PATH, BACKUP_DIR, ... or jobs.yaml
    db_update("INSERT INTO crawled_pages (url) VALUES (?)", ("https://example.com",))
    rows = db_query("SELECT url FROM crawled_pages")   # [{'url': 'https://example.com'}]

`Manager` is the Rust `litewarden::live::Manager`: a pool of readers and
one writer that every write of the process queues on, so threads never see
"database is locked"; SQLite runs with the GIL released. The module-level
functions keep the names and return shapes of the application's original
database module.
"""

import ctypes
import json
import logging
import os
import threading

from . import _native


def _check_one_sqlite():
    """Refuses to load beside a second SQLite library: POSIX locks belong to
    the process, so two SQLite copies on one file delete each other's WAL
    and lose acknowledged writes. The package links the SQLite that
    Python's sqlite3 module uses; this proves it at import."""
    import _sqlite3

    ours = _native.sqlite_library_address()
    theirs = ctypes.cast(
        ctypes.CDLL(_sqlite3.__file__).sqlite3_libversion, ctypes.c_void_p
    ).value
    if ours == theirs or os.environ.get("LITEWARDEN_ALLOW_SECOND_SQLITE") == "1":
        return
    raise ImportError(
        "litewarden's native module calls another SQLite library (%s) than "
        "Python's sqlite3 module (%s, in %s): both in one process on one file "
        "lose acknowledged writes. Rebuild the package against the shared "
        "libsqlite3 that this Python's sqlite3 links (pip install --no-binary "
        "litewarden litewarden, or maturin develop), or, if this process never "
        "opens a litewarden database with sqlite3, set "
        "LITEWARDEN_ALLOW_SECOND_SQLITE=1"
        % (_native.sqlite_version(), _sqlite3.sqlite_version, _sqlite3.__file__)
    )


_check_one_sqlite()

_log = logging.getLogger("litewarden")

# fork(): the child gets copies of every SQLite connection, lock and
# transaction of the parent, and of SQLite's record of which locks this
# process holds, some by threads that do not exist in the child. Measured:
# a child that opened the same file anew blocked forever, or had a write
# acknowledged and then lost under the parent's open transaction. So a
# child refuses the managers, and the files, its parent had open.
_fork_generation = [0]
_open_files = set()
_forked_files = set()
_FORKED = (
    "%s: this process was forked from one that had the database open; SQLite "
    "connections and locks cannot cross fork() (a write could be lost). Open "
    "it only in a process that never had it open: open managers after "
    "forking (e.g. a gunicorn post_fork hook), or use the multiprocessing "
    "start method 'spawn' or 'forkserver'"
)


def _target(path, options):
    """The real path of the file a Manager(path, **options) would open."""
    if path is None and options.get("config"):
        databases = _config_databases(os.fspath(options["config"]))
        wanted = options.get("database") or (databases[0][0] if databases else None)
        path = next((p for name, p in databases if name == wanted), None)
    return os.path.realpath(path) if path is not None else None


def _after_fork_in_child():
    _fork_generation[0] += 1
    _forked_files.update(_open_files)
    _open_files.clear()
    _managers.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
from ._native import (
    DatabaseOpenError,
    LitewardenError,
    PoolExhaustedError,
    SqlError,
)

__all__ = [
    "Manager",
    "LiveDatabaseManager",
    "LitewardenError",
    "SqlError",
    "PoolExhaustedError",
    "DatabaseOpenError",
    "get_database_manager",
    "db_query",
    "db_update",
    "execute_query",
    "backup_database",
    "health_check",
    "get_performance_metrics",
    "optimize_for_live_updates",
    "run_pending_migrations",
    "update_schema_safely",
]


def _first_keyword(sql):
    """The statement's first keyword, upper-case, after comments."""
    text = sql.lstrip()
    while True:
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1:].lstrip()
        elif text.startswith("/*"):
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2:].lstrip()
        else:
            break
    word = ""
    for char in text:
        if not char.isalpha():
            break
        word += char
    return word.upper(), text[len(word):].lstrip()


class Manager:
    """Pooled access to one database.

    Manager(path, pool_size=8, connection_timeout=30.0, slow_query=0.1,
            backup_dir=None, state_dir=None, migrations_dir=None, retention_days=7)
    Manager(config="jobs.yaml", database="website_crawler")

    As with Python's sqlite3, `execute("BEGIN")` starts a transaction that
    the calling thread's next statements run in (and see), until
    `execute("COMMIT")` or `execute("ROLLBACK")`; meanwhile other threads'
    writes wait for it, up to busy_timeout.
    """

    def __init__(self, path=None, *, create=False, **options):
        if path is not None and "config" not in options:
            path = os.fspath(path)
            declared = _declared(_find_config(None), path, strict=False)
            if declared is not None and not _directories_given(options):
                options["config"], options["database"] = declared
                path = None
            elif not create and not os.path.exists(path):
                raise DatabaseOpenError(
                    "%s: no such database (from %s); pass create=True to create it, or "
                    "point LITEWARDEN_CONFIG at the jobs.yaml that declares it"
                    % (os.path.abspath(path), os.getcwd())
                )
        if _forked_files and _target(path, options) in _forked_files:
            raise LitewardenError(_FORKED % (path or options.get("database")))
        self._opened = _native.Manager(path, **options)
        self._generation = _fork_generation[0]
        self._local = threading.local()
        _open_files.add(os.path.realpath(self._opened.path))

    @property
    def _native(self):
        """The native manager, refused in a child process after fork()."""
        if self._generation != _fork_generation[0]:
            raise LitewardenError(_FORKED % self._opened.name)
        return self._opened

    @property
    def name(self):
        return self._native.name

    @property
    def path(self):
        return self._native.path

    def _open_transaction(self):
        self._native  # refused after fork, with the transaction it would reach
        return getattr(self._local, "transaction", None)

    def _transaction_control(self, sql):
        """Runs BEGIN / COMMIT / END / ROLLBACK as the calling thread's
        transaction; returns False for any other statement."""
        keyword, rest = _first_keyword(sql)
        tx = self._open_transaction()
        if keyword == "BEGIN":
            if tx is not None:
                raise SqlError("%s: cannot start a transaction within a transaction" % self.name)
            self._local.transaction = self._native.begin()
            return True
        if keyword in ("COMMIT", "END") and tx is not None:
            self._local.transaction = None
            tx.commit()
            return True
        if keyword == "ROLLBACK" and tx is not None and not rest.upper().startswith("TO"):
            self._local.transaction = None
            tx.rollback()
            return True
        return False

    def query(self, sql, params=None, *, as_dict=False):
        """Rows of a query: tuples, or dicts with as_dict=True."""
        tx = self._open_transaction()
        if tx is not None:
            return tx.query(sql, params, as_dict=as_dict)
        return self._native.query(sql, params, as_dict=as_dict)

    def query_row(self, sql, params=None, *, as_dict=False):
        """The first row, or None."""
        rows = self.query(sql, params, as_dict=as_dict)
        return rows[0] if rows else None

    def execute(self, sql, params=None):
        """Runs a statement that changes the database; returns rows changed."""
        if self._transaction_control(sql):
            return 0
        tx = self._open_transaction()
        if tx is not None:
            return tx.execute(sql, params)
        return self._native.execute(sql, params)

    def execute_query(self, sql, params=None, *, as_dict=True):
        """Rows for a statement that only reads, else the rows it changed."""
        if self._open_transaction() is None:
            reads = self._native.is_read_only(sql)
        else:
            reads = _first_keyword(sql)[0] in ("SELECT", "WITH", "VALUES", "EXPLAIN")
        if reads:
            return self.query(sql, params, as_dict=as_dict)
        return self.execute(sql, params)

    def execute_batch(self, sql):
        """Runs ;-separated statements in one transaction."""
        self._native.execute_batch(sql)

    def insert_many(self, sql, rows):
        """Runs sql once per parameter set, in one transaction."""
        return self._native.insert_many(sql, rows)

    def transaction(self):
        """`with db.transaction() as tx:` an IMMEDIATE transaction that holds the
        writer: tx.execute(...) and tx.query(...) (which sees its writes);
        committed when the block ends, rolled back when it raises. Other
        writes of the process wait for it (up to busy_timeout)."""
        return self._native.begin()

    def health(self):
        """The health checks: {'status': 'healthy', 'db_size_mb': ..., 'checks': [...]}."""
        return json.loads(self._native.health_json())

    def metrics(self):
        """Sizes, pool (size, in_use, idle, waits) and query figures."""
        return json.loads(self._native.metrics_json())

    def backup_now(self):
        """A verified, catalogued backup (then the retention); its report."""
        return json.loads(self._native.backup_now_json())

    def backup_to(self, path):
        """A checked copy at path (which must not exist)."""
        return self._native.backup_to(os.fspath(path))

    def run_pending_migrations(self, migrations_dir=None):
        """Applies the pending migrations (of migrations_dir, else jobs.yaml's
        migrations:, else the shipped layout's migrations/<name>/ under the
        working directory); the report. With none of them it does nothing
        and says so (a warning), returning {"applied": []}."""
        if migrations_dir is None and not self._native.has_migrations:
            shipped = os.path.join("migrations", self.name)
            if not os.path.isdir(shipped):
                _log.warning(
                    "%s: no migrations directory is configured and %s does not exist; "
                    "no migration was run", self.name, os.path.abspath(shipped)
                )
                return {"applied": []}
            migrations_dir = shipped
        if migrations_dir is not None:
            migrations_dir = os.fspath(migrations_dir)
        return json.loads(self._native.run_pending_migrations_json(migrations_dir))

    def backup_database(self):
        """The seed's db_manager.backup_database(): a verified backup; its path."""
        return self.backup_now()["backup"]["path"]

    def health_check(self):
        """The seed's db_manager.health_check(): the health report with
        'status', 'db_size_mb' and 'connection_pool' (size, in_use, idle, waits)."""
        report = self.health()
        report["connection_pool"] = self.metrics()["pool"]
        return report

    def get_performance_metrics(self):
        """The seed's db_manager.get_performance_metrics(): metrics() ('db_size_mb', ...)."""
        return self.metrics()

    def optimize_for_live_updates(self):
        """The seed's db_manager.optimize_for_live_updates(): optimize()."""
        return self.optimize()

    def optimize(self):
        """PRAGMA optimize and a passive checkpoint; the report."""
        return json.loads(self._native.optimize_json())

    def add_columns(self, columns):
        """Adds missing columns, given as (table, column, type, default, not_null)."""
        return self._native.add_columns(list(columns))


def _split_definitions(text):
    """'a INTEGER DEFAULT 1, b DECIMAL(10,2)' -> ['a INTEGER DEFAULT 1', 'b DECIMAL(10,2)']:
    commas inside parentheses or quotes do not split."""
    parts, current, depth, quote = [], "", 0, None
    closing = {"'": "'", '"': '"', "`": "`", "[": "]"}
    for char in text:
        if quote:
            if char == quote:
                quote = None
        elif char in closing:
            quote = closing[char]
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    parts.append(current.strip())
    return [part for part in parts if part]


class LiveDatabaseManager(Manager):
    """The seed's LiveDatabaseManager(path): a Manager with its schema helper."""

    def update_schema_safely(self, schema):
        """Adds each missing column with ALTER TABLE ... ADD COLUMN only, SQLite
        parsing each definition. schema is {table: "col TYPE [DEFAULT x], col2 TYPE"}
        (the seed's shape) or {table: {column: "TYPE [DEFAULT x] [NOT NULL]"}};
        returns ['table.column', ...] added. A missing table raises."""
        added = []
        for table, wanted in schema.items():
            if isinstance(wanted, str):
                definitions = _split_definitions(wanted)
            else:
                definitions = ["%s %s" % (column, declaration) for column, declaration in wanted.items()]
            added += self._native.add_column_definitions(table, definitions)
        return added


_managers = {}
_managers_lock = threading.Lock()


def _directories_given(options):
    return any(options.get(key) is not None for key in ("backup_dir", "state_dir", "migrations_dir"))


def _find_config(config):
    """The jobs.yaml the CLI reads: config=, LITEWARDEN_CONFIG, then ./jobs.yaml."""
    for candidate in (config, os.environ.get("LITEWARDEN_CONFIG")):
        if candidate:
            return os.path.abspath(os.fspath(candidate))
    return os.path.abspath("jobs.yaml") if os.path.isfile("jobs.yaml") else None


_config_cache = {}


def _config_databases(config):
    """The (name, path) pairs config declares, in file order; loaded again
    only when the file or the environment its ${VAR}s read changed (the
    module-level functions ask on every call)."""
    stat = os.stat(config)
    key = (config, stat.st_mtime_ns, stat.st_size, tuple(sorted(os.environ.items())))
    databases = _config_cache.get(key)
    if databases is None:
        databases = _native.config_databases(config)
        _config_cache.clear()
        _config_cache[key] = databases
    return databases


def _declared(config, path, strict=True):
    """(config, name) of the database config declares at path, else None.
    Not strict: a jobs.yaml that cannot be loaded declares nothing."""
    if config is None or path is None:
        return None
    wanted = os.path.realpath(path)
    try:
        databases = _config_databases(config)
    except LitewardenError:
        if strict:
            raise
        return None
    for name, declared in databases:
        if os.path.realpath(declared) == wanted:
            return config, name
    return None


_resolve_cache = {}


def _resolved(db_path, config, database):
    """_resolve, remembered for the same arguments, working directory, the
    variables it reads and the same ./jobs.yaml: the module-level
    functions resolve on every call."""
    try:
        stat = os.stat("jobs.yaml")
        found = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        found = None
    key = (
        db_path,
        config,
        database,
        os.getcwd(),
        os.environ.get("LITEWARDEN_CONFIG"),
        os.environ.get("DATABASE1_PATH"),
        found,
    )
    resolved = _resolve_cache.get(key)
    if resolved is None:
        resolved = _resolve(db_path, config, database)
        if len(_resolve_cache) > 64:
            _resolve_cache.clear()
        _resolve_cache[key] = resolved
    return resolved


def _resolve(db_path, config, database):
    """What a module-level call means: ("config", jobs.yaml, name) for a
    database the daemon's jobs.yaml declares, else ("path", file)."""
    found = _find_config(config)
    if found is not None:
        if database is not None:
            return ("config", found, database)
        declared = _declared(found, db_path or os.environ.get("DATABASE1_PATH"))
        if declared is not None:
            return ("config",) + declared
        if db_path is None:
            databases = _config_databases(found)
            if databases:
                return ("config", found, databases[0][0])
    elif database is not None:
        raise DatabaseOpenError(
            "database=%r needs a jobs.yaml: pass config=, set LITEWARDEN_CONFIG, or run "
            "from the directory that holds jobs.yaml" % database
        )
    return ("path", os.path.abspath(db_path or os.environ.get("DATABASE1_PATH", "website_crawler.db")))


def get_database_manager(db_path=None, *, config=None, database=None, create=False):
    """The process's shared manager for a database.

    It finds the daemon's jobs.yaml as the CLI does (config=, then
    LITEWARDEN_CONFIG, then ./jobs.yaml) and shares its state directory, so
    backups and health agree with the daemon's. The database is database=,
    else the one at db_path, else the one at DATABASE1_PATH, else the first
    the file lists. Without a jobs.yaml it opens db_path (or DATABASE1_PATH,
    or website_crawler.db) with the shipped defaults, BACKUP_DIR and
    BACKUP_RETENTION_DAYS; a file that does not exist is an error unless
    create=True.
    """
    key = _resolved(db_path, config, database)
    with _managers_lock:
        manager = _managers.get(key)
        if manager is None:
            if key[0] == "config":
                manager = LiveDatabaseManager(config=key[1], database=key[2])
            else:
                manager = LiveDatabaseManager(
                    key[1],
                    create=create,
                    backup_dir=os.environ.get("BACKUP_DIR") or None,
                    retention_days=int(os.environ.get("BACKUP_RETENTION_DAYS", "7")),
                )
            _managers[key] = manager
        return manager


def db_query(query, params=None, db_path=None, *, database=None):
    """Rows of a read query, as dicts."""
    return get_database_manager(db_path, database=database).query(query, params, as_dict=True)


def db_update(query, params=None, db_path=None, *, database=None):
    """Runs a write; returns the number of rows changed."""
    return get_database_manager(db_path, database=database).execute(query, params)


def execute_query(query, params=None, db_path=None, *, database=None):
    """Rows (dicts) for a read, the number of rows changed for a write."""
    return get_database_manager(db_path, database=database).execute_query(query, params)


def backup_database(db_path=None, *, database=None):
    """Takes a verified backup; returns its path."""
    return get_database_manager(db_path, database=database).backup_database()


def health_check(db_path=None, *, database=None):
    """{'status': 'healthy' | 'degraded' | 'unhealthy', 'db_size_mb': ...,
    'connection_pool': {...}, 'checks': [...]}."""
    return get_database_manager(db_path, database=database).health_check()


def get_performance_metrics(db_path=None, *, database=None):
    """{'db_size_mb', 'wal_size_mb', 'pool': {...}, 'queries': {...}}."""
    return get_database_manager(db_path, database=database).metrics()


def optimize_for_live_updates(db_path=None, *, database=None):
    """PRAGMA optimize and a passive checkpoint."""
    return get_database_manager(db_path, database=database).optimize()


def update_schema_safely(schema, db_path=None, *, database=None):
    """Adds the missing columns of schema ({table: "col TYPE [DEFAULT x], ..."}
    or {table: {column: "TYPE ..."}}) with ADD COLUMN only."""
    return get_database_manager(db_path, database=database).update_schema_safely(schema)


def run_pending_migrations(db_path=None, *, database=None, migrations_dir=None):
    """Applies pending migrations (migrations_dir, else jobs.yaml's
    migrations:, else migrations/<name>/ under the working directory);
    returns the applied migrations' names. With no migrations directory it
    does nothing and says so."""
    manager = get_database_manager(db_path, database=database)
    report = manager.run_pending_migrations(migrations_dir)
    return [applied["migration"] for applied in report.get("applied", [])]
