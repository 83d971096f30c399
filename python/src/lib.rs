//! `litewarden._native`: the Python binding of `litewarden::live`.
//!
//! Owns the conversions between Python and SQLite values and the mapping of
//! `LiveError` to Python exceptions; everything else is the Rust
//! `Manager`. SQLite runs with the GIL released (`Python::detach`), so
//! Python threads sharing one manager run their queries in parallel and
//! writes queue on the manager's writer instead of failing with "database
//! is locked". The seed's module-level functions live in
//! `litewarden/__init__.py`, on top of this.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use litewarden::live::{LiveError, NewColumn, Options};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use rusqlite::types::Value;

create_exception!(
    litewarden,
    LitewardenError,
    PyException,
    "Base class of litewarden's errors."
);
create_exception!(
    litewarden,
    SqlError,
    LitewardenError,
    "SQLite refused a statement; the message names the SQL."
);
create_exception!(
    litewarden,
    PoolExhaustedError,
    LitewardenError,
    "Every pooled connection stayed checked out past connection_timeout."
);
create_exception!(
    litewarden,
    DatabaseOpenError,
    LitewardenError,
    "The path is not a usable database (not SQLite, read-only, missing and managed)."
);

fn to_py_error(error: LiveError) -> PyErr {
    let text = error.to_string();
    match error {
        LiveError::Sql { .. } | LiveError::Decode { .. } | LiveError::Sqlite { .. } => {
            SqlError::new_err(text)
        }
        LiveError::PoolExhausted { .. } => PoolExhaustedError::new_err(text),
        LiveError::Db(litewarden::db::DbError::BadColumn { .. }) => SqlError::new_err(text),
        LiveError::Open { .. } | LiveError::UnknownDatabase { .. } => {
            DatabaseOpenError::new_err(text)
        }
        _ => LitewardenError::new_err(text),
    }
}

/// One Python value as a SQLite value.
fn to_value(object: &Bound<'_, PyAny>) -> PyResult<Value> {
    if object.is_none() {
        Ok(Value::Null)
    } else if object.is_instance_of::<PyBool>() {
        Ok(Value::Integer(i64::from(object.extract::<bool>()?)))
    } else if object.is_instance_of::<PyInt>() {
        Ok(Value::Integer(object.extract()?))
    } else if object.is_instance_of::<PyFloat>() {
        Ok(Value::Real(object.extract()?))
    } else if object.is_instance_of::<PyString>() {
        Ok(Value::Text(object.extract()?))
    } else if let Ok(bytes) = object.cast::<PyBytes>() {
        Ok(Value::Blob(bytes.as_bytes().to_vec()))
    } else {
        Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "cannot bind a {} as an SQL parameter (use None, int, float, str or bytes)",
            object.get_type().name()?
        )))
    }
}

/// Parameters as `sqlite3` takes them: a sequence (positional) or a
/// mapping (named, `:name`).
enum Parameters {
    Positional(Vec<Value>),
    Named(Vec<(String, Value)>),
}

impl Parameters {
    fn from_python(params: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(params) = params.filter(|p| !p.is_none()) else {
            return Ok(Parameters::Positional(Vec::new()));
        };
        if let Ok(mapping) = params.cast::<PyDict>() {
            let mut named = Vec::with_capacity(mapping.len());
            for (key, value) in mapping.iter() {
                let key: String = key.extract()?;
                let key = if key.starts_with([':', '@', '$']) {
                    key
                } else {
                    format!(":{key}")
                };
                named.push((key, to_value(&value)?));
            }
            return Ok(Parameters::Named(named));
        }
        if params.is_instance_of::<PyString>() || params.is_instance_of::<PyBytes>() {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "parameters must be a sequence or a mapping, not a string",
            ));
        }
        let mut positional = Vec::new();
        for item in params.try_iter()? {
            positional.push(to_value(&item?)?);
        }
        Ok(Parameters::Positional(positional))
    }
}

impl Parameters {
    /// `params` as `sqlite3` binds them: named values checked against the
    /// statement's parameter names (asked of `names` only for a mapping).
    fn checked(
        params: Option<&Bound<'_, PyAny>>,
        names: impl FnOnce() -> PyResult<Vec<Option<String>>>,
    ) -> PyResult<Self> {
        let params = Parameters::from_python(params)?;
        if !matches!(params, Parameters::Named(_)) {
            return Ok(params);
        }
        params.ordered(&names()?)
    }

    /// Named values put in the statement's order (`names`, SQLite's
    /// numbering); a name the statement uses that the mapping lacks is an
    /// error, as in Python's `sqlite3`, never a silent NULL.
    fn ordered(self, names: &[Option<String>]) -> PyResult<Self> {
        let Parameters::Named(pairs) = self else {
            return Ok(self);
        };
        let bare = |name: &str| name.trim_start_matches([':', '@', '$']).to_string();
        let mut values = Vec::with_capacity(names.len());
        for (index, name) in names.iter().enumerate() {
            let Some(name) = name else {
                return Err(SqlError::new_err(format!(
                    "binding {} has no name, but you supplied a dictionary (which has only names)",
                    index + 1
                )));
            };
            let wanted = bare(name);
            let value = pairs
                .iter()
                .find(|(key, _)| bare(key) == wanted)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| {
                    SqlError::new_err(format!(
                        "You did not supply a value for binding parameter {name}."
                    ))
                })?;
            values.push(value);
        }
        Ok(Parameters::Positional(values))
    }
}

/// Evaluates `$body` with `$p` bound to `$params` as rusqlite takes them
/// (rusqlite's `Params` is not object-safe, so each form is its own type).
macro_rules! with_params {
    ($params:expr, |$p:ident| $body:expr) => {
        match $params {
            Parameters::Positional(values) => {
                let $p = rusqlite::params_from_iter(values.iter());
                $body
            }
            Parameters::Named(pairs) => {
                let refs: Vec<(&str, &dyn rusqlite::ToSql)> = pairs
                    .iter()
                    .map(|(k, v)| (k.as_str(), v as &dyn rusqlite::ToSql))
                    .collect();
                let $p = refs.as_slice();
                $body
            }
        }
    };
}

fn to_object(py: Python<'_>, value: Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Integer(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Real(f) => f.into_pyobject(py)?.into_any().unbind(),
        Value::Text(text) => text.into_pyobject(py)?.into_any().unbind(),
        Value::Blob(bytes) => PyBytes::new(py, &bytes).into_any().unbind(),
    })
}

fn rows_to_python<'py>(
    py: Python<'py>,
    table: litewarden::live::Table,
    as_dict: bool,
) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    let columns: Vec<Bound<'py, PyString>> =
        table.columns.iter().map(|c| PyString::new(py, c)).collect();
    for row in table.rows {
        if as_dict {
            let dict = PyDict::new(py);
            for (column, value) in columns.iter().zip(row) {
                dict.set_item(column, to_object(py, value)?)?;
            }
            list.append(dict)?;
        } else {
            let values = row
                .into_iter()
                .map(|v| to_object(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            list.append(PyTuple::new(py, values)?)?;
        }
    }
    Ok(list)
}

fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| LitewardenError::new_err(e.to_string()))
}

/// Pooled access to one SQLite database (see `litewarden.Manager`).
#[pyclass(frozen, module = "litewarden._native")]
struct Manager {
    inner: Arc<litewarden::live::Manager>,
}

impl Manager {
    /// `params` as `sqlite3` binds them: named values checked against the
    /// statement's parameter names.
    fn parameters(
        &self,
        py: Python<'_>,
        sql: &str,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Parameters> {
        Parameters::checked(params, || {
            let inner = Arc::clone(&self.inner);
            py.detach(|| inner.parameter_names(sql))
                .map_err(to_py_error)
        })
    }
}

#[pymethods]
impl Manager {
    /// Opens `path`, or database `database` of the `jobs.yaml` at `config`.
    #[new]
    #[pyo3(signature = (path=None, *, config=None, database=None, pool_size=8, connection_timeout=30.0, slow_query=0.1, backup_dir=None, state_dir=None, migrations_dir=None, retention_days=7))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: Option<PathBuf>,
        config: Option<PathBuf>,
        database: Option<String>,
        pool_size: u32,
        connection_timeout: f64,
        slow_query: f64,
        backup_dir: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        migrations_dir: Option<PathBuf>,
        retention_days: u32,
    ) -> PyResult<Self> {
        let seconds = |s: f64| Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX);
        let options = Options {
            pool_size,
            connection_timeout: seconds(connection_timeout),
            slow_query: seconds(slow_query),
            backup_dir,
            state_dir,
            migrations_dir,
            retention_days,
            ..Options::default()
        };
        let manager = py.detach(move || match (config, path) {
            (Some(config), _) => {
                let loaded = litewarden::config::load(
                    &config,
                    &litewarden::config::Environment::from_process(),
                )
                .map_err(|e| LiveError::Config(e.to_string()))?;
                let name = match database {
                    Some(name) => name,
                    None => loaded
                        .database_order
                        .first()
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                };
                litewarden::live::Manager::from_config(&loaded.config, &name, options)
            }
            (None, Some(path)) => litewarden::live::Manager::open(path, options),
            (None, None) => Err(LiveError::Config(
                "give a database path, or config= (a jobs.yaml) and database=".into(),
            )),
        });
        Ok(Self {
            inner: Arc::new(manager.map_err(to_py_error)?),
        })
    }

    /// The database's name.
    #[getter]
    fn name(&self) -> String {
        self.inner.name().to_string()
    }

    /// The database file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    /// Rows of a query: tuples, or dicts with `as_dict=True`.
    #[pyo3(signature = (sql, params=None, *, as_dict=false))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = self.parameters(py, sql, params)?;
        let inner = Arc::clone(&self.inner);
        let table = py
            .detach(|| with_params!(&params, |p| inner.query_table(sql, p)))
            .map_err(to_py_error)?;
        rows_to_python(py, table, as_dict)
    }

    /// The first row of a query, or None.
    #[pyo3(signature = (sql, params=None, *, as_dict=false))]
    fn query_row<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let rows = self.query(py, sql, params, as_dict)?;
        Ok(rows.iter().next())
    }

    /// Runs one statement that changes the database; returns rows changed.
    #[pyo3(signature = (sql, params=None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: &str,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let params = self.parameters(py, sql, params)?;
        let inner = Arc::clone(&self.inner);
        py.detach(|| with_params!(&params, |p| inner.execute(sql, p)))
            .map_err(to_py_error)
    }

    /// Whether SQLite says `sql` only reads.
    fn is_read_only(&self, py: Python<'_>, sql: &str) -> PyResult<bool> {
        let inner = Arc::clone(&self.inner);
        py.detach(|| inner.is_read_only(sql)).map_err(to_py_error)
    }

    /// Runs `;`-separated statements in one transaction.
    fn execute_batch(&self, py: Python<'_>, sql: &str) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        py.detach(|| inner.execute_batch(sql)).map_err(to_py_error)
    }

    /// Runs `sql` for each parameter set of `rows` in one transaction.
    fn insert_many(&self, py: Python<'_>, sql: &str, rows: &Bound<'_, PyAny>) -> PyResult<usize> {
        let mut sets = Vec::new();
        for row in rows.try_iter()? {
            sets.push(self.parameters(py, sql, Some(&row?))?);
        }
        let inner = Arc::clone(&self.inner);
        py.detach(|| {
            inner.transaction(|tx| {
                let mut changed = 0;
                let mut statement = tx.prepare_cached(sql).map_err(|source| LiveError::Sql {
                    database: inner.name().to_string(),
                    sql: sql.to_string(),
                    source,
                })?;
                for set in &sets {
                    changed += with_params!(set, |p| statement.execute(p)).map_err(|source| {
                        LiveError::Sql {
                            database: inner.name().to_string(),
                            sql: sql.to_string(),
                            source,
                        }
                    })?;
                }
                Ok(changed)
            })
        })
        .map_err(to_py_error)
    }

    /// Begins an IMMEDIATE transaction that holds the writer until it
    /// commits or rolls back (a context manager).
    fn begin(&self, py: Python<'_>) -> PyResult<Transaction> {
        let inner = Arc::clone(&self.inner);
        let tx = py
            .detach(move || litewarden::live::Manager::begin(&inner))
            .map_err(to_py_error)?;
        Ok(Transaction {
            tx: std::sync::Mutex::new(Some(tx)),
        })
    }

    /// The health checks as JSON.
    fn health_json(&self, py: Python<'_>) -> PyResult<String> {
        let inner = Arc::clone(&self.inner);
        let report = py.detach(|| inner.health()).map_err(to_py_error)?;
        json(&report)
    }

    /// Sizes, pool and query figures as JSON.
    fn metrics_json(&self) -> PyResult<String> {
        json(&self.inner.metrics())
    }

    /// Takes a verified, catalogued backup; its report as JSON.
    fn backup_now_json(&self, py: Python<'_>) -> PyResult<String> {
        let inner = Arc::clone(&self.inner);
        let done = py.detach(|| inner.backup_now()).map_err(to_py_error)?;
        json(&done)
    }

    /// Writes a checked copy to `path` (which must not exist).
    fn backup_to(&self, py: Python<'_>, path: PathBuf) -> PyResult<PathBuf> {
        let inner = Arc::clone(&self.inner);
        py.detach(|| inner.backup_to(path)).map_err(to_py_error)
    }

    /// Applies pending migrations (of `dir`, else the configured ones);
    /// the report as JSON.
    #[pyo3(signature = (dir=None))]
    fn run_pending_migrations_json(
        &self,
        py: Python<'_>,
        dir: Option<PathBuf>,
    ) -> PyResult<String> {
        let inner = Arc::clone(&self.inner);
        let report = py
            .detach(|| match dir {
                Some(dir) => inner.run_migrations_in(dir),
                None => inner.run_pending_migrations(),
            })
            .map_err(to_py_error)?;
        json(&report)
    }

    /// Whether the configuration names a migrations directory.
    #[getter]
    fn has_migrations(&self) -> bool {
        self.inner.has_migrations()
    }

    /// PRAGMA optimize and a checkpoint; the report as JSON.
    fn optimize_json(&self, py: Python<'_>) -> PyResult<String> {
        let inner = Arc::clone(&self.inner);
        let report = py.detach(|| inner.optimize()).map_err(to_py_error)?;
        json(&report)
    }

    /// Adds each column definition (`"name TYPE [DEFAULT x] [NOT NULL]"`)
    /// missing from `table`, parsed by SQLite; the `table.column`s added.
    fn add_column_definitions(
        &self,
        py: Python<'_>,
        table: &str,
        definitions: Vec<String>,
    ) -> PyResult<Vec<String>> {
        let inner = Arc::clone(&self.inner);
        py.detach(|| inner.add_column_definitions(table, &definitions))
            .map_err(to_py_error)
    }

    /// Adds missing columns: `(table, column, type, default, not_null)`.
    fn add_columns(
        &self,
        py: Python<'_>,
        columns: Vec<(String, String, String, Option<String>, bool)>,
    ) -> PyResult<Vec<String>> {
        let columns: Vec<NewColumn> = columns
            .into_iter()
            .map(|(table, column, sql_type, default, not_null)| NewColumn {
                table,
                column,
                sql_type,
                default,
                not_null,
            })
            .collect();
        let inner = Arc::clone(&self.inner);
        py.detach(|| inner.add_columns(&columns))
            .map_err(to_py_error)
    }
}

/// An open transaction: `with db.transaction() as tx:` commits when the
/// block ends and rolls back when it raises. Its reads see its writes;
/// other writes of the process wait for it.
#[pyclass(frozen, module = "litewarden._native")]
struct Transaction {
    tx: std::sync::Mutex<Option<litewarden::live::OwnedTransaction>>,
}

impl Transaction {
    /// Runs `work` on the transaction with the GIL released, holding the
    /// transaction's lock for the whole statement: another thread's
    /// statement, commit or rollback waits for it (taken with the GIL
    /// released too, so the two never wait for each other).
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&litewarden::live::OwnedTransaction) -> Result<T, LiveError> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            let tx = guard.as_ref().ok_or(Failed::Ended)?;
            work(tx).map_err(Failed::Live)
        })
        .map_err(PyErr::from)
    }

    fn end(&self, py: Python<'_>, commit: bool) -> PyResult<()> {
        py.detach(|| {
            let Some(tx) = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                return Ok(());
            };
            if commit {
                tx.commit()
            } else {
                tx.rollback();
                Ok(())
            }
        })
        .map_err(to_py_error)
    }

    /// `params` checked against the statement's parameter names.
    fn parameters(
        &self,
        py: Python<'_>,
        sql: &str,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Parameters> {
        Parameters::checked(params, || self.with(py, |tx| tx.parameter_names(sql)))
    }
}

/// Why a statement in a transaction failed, decided without the GIL.
enum Failed {
    /// Committed or rolled back already.
    Ended,
    /// The statement failed.
    Live(LiveError),
}

impl From<Failed> for PyErr {
    fn from(failed: Failed) -> Self {
        match failed {
            Failed::Ended => {
                LitewardenError::new_err("the transaction is over (committed or rolled back)")
            }
            Failed::Live(error) => to_py_error(error),
        }
    }
}

#[pymethods]
impl Transaction {
    /// Runs one statement in the transaction; returns the rows it changed.
    #[pyo3(signature = (sql, params=None))]
    fn execute(
        &self,
        py: Python<'_>,
        sql: &str,
        params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let params = self.parameters(py, sql, params)?;
        self.with(py, |tx| with_params!(&params, |p| tx.execute(sql, p)))
    }

    /// Rows of a query in the transaction (it sees the transaction's writes).
    #[pyo3(signature = (sql, params=None, *, as_dict=false))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        sql: &str,
        params: Option<&Bound<'py, PyAny>>,
        as_dict: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let params = self.parameters(py, sql, params)?;
        let table = self.with(py, |tx| with_params!(&params, |p| tx.query_table(sql, p)))?;
        rows_to_python(py, table, as_dict)
    }

    /// Commits (the transaction is over).
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, true)
    }

    /// Rolls back (the transaction is over).
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        self.end(py, false)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (kind, _value, _traceback))]
    fn __exit__(
        &self,
        py: Python<'_>,
        kind: Option<&Bound<'_, PyAny>>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.end(py, kind.is_none_or(|k| k.is_none()))?;
        Ok(false)
    }
}

/// The address of `sqlite3_libversion` in the SQLite this module calls:
/// the package compares it with the one Python's `sqlite3` calls, so one
/// process never runs two SQLite libraries (whose POSIX locks would not see
/// each other) on one file.
#[pyfunction]
fn sqlite_library_address() -> usize {
    rusqlite::ffi::sqlite3_libversion as *const () as usize
}

/// The databases the `jobs.yaml` at `config` declares, as `(name, path)`
/// in file order.
#[pyfunction]
fn config_databases(py: Python<'_>, config: PathBuf) -> PyResult<Vec<(String, PathBuf)>> {
    let loaded = py
        .detach(|| {
            litewarden::config::load(&config, &litewarden::config::Environment::from_process())
        })
        .map_err(|e| LitewardenError::new_err(e.to_string()))?;
    Ok(loaded
        .database_order
        .iter()
        .filter_map(|name| loaded.config.databases.get(name))
        .map(|db| (db.name.to_string(), db.path.clone()))
        .collect())
}

/// The version of the SQLite this module calls.
#[pyfunction]
fn sqlite_version() -> &'static str {
    rusqlite::version()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(sqlite_library_address, m)?)?;
    m.add_function(wrap_pyfunction!(sqlite_version, m)?)?;
    m.add_function(wrap_pyfunction!(config_databases, m)?)?;
    m.add_class::<Manager>()?;
    m.add_class::<Transaction>()?;
    m.add("LitewardenError", py.get_type::<LitewardenError>())?;
    m.add("SqlError", py.get_type::<SqlError>())?;
    m.add("PoolExhaustedError", py.get_type::<PoolExhaustedError>())?;
    m.add("DatabaseOpenError", py.get_type::<DatabaseOpenError>())?;
    Ok(())
}
