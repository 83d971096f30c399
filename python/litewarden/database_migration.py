"""The seed's `database_migration` module, served by litewarden: an
application changes only the package prefix of its import
(`from litewarden.database_migration import run_pending_migrations`)."""

from . import run_pending_migrations, update_schema_safely

__all__ = ["run_pending_migrations", "update_schema_safely"]
