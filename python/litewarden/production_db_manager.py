"""The seed's `production_db_manager` module, served by litewarden: an
application changes only the package prefix of its import
(`from litewarden.production_db_manager import get_database_manager`)."""

from . import (
    LiveDatabaseManager,
    backup_database,
    db_query,
    db_update,
    execute_query,
    get_database_manager,
    get_performance_metrics,
    health_check,
    optimize_for_live_updates,
)

__all__ = [
    "LiveDatabaseManager",
    "backup_database",
    "db_query",
    "db_update",
    "execute_query",
    "get_database_manager",
    "get_performance_metrics",
    "health_check",
    "optimize_for_live_updates",
]
