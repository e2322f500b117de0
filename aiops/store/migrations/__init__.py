"""Schema migrations (Alembic), run programmatically: no ``alembic.ini`` is needed anywhere.

:func:`upgrade` is what ``Store.open`` calls. It is safe when several processes open the same
database at once: the whole upgrade runs in one transaction that first takes a lock
(``BEGIN IMMEDIATE`` on SQLite, ``pg_advisory_xact_lock`` on PostgreSQL), so the second
process waits, then finds the schema at head and does nothing.

On SQLite, foreign keys are switched off while migrating: batch migrations rebuild tables
(copy, drop, rename), and dropping a parent table with foreign keys on would cascade-delete
its children. ``PRAGMA foreign_key_check`` runs before commit instead.

Developers make new revisions with::

    python -m aiops.store.migrations --url sqlite:///tmp/dev.db upgrade head
    python -m aiops.store.migrations --url sqlite:///tmp/dev.db revision --autogenerate -m "..."
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, text

from aiops.errors import ConfigError

__all__ = [
    "VERSION_TABLE",
    "SCRIPT_LOCATION",
    "SQLITE_BEGIN_OPTION",
    "alembic_config",
    "upgrade",
    "current_revision",
    "head_revision",
]

logger = logging.getLogger(__name__)

# Own version table, so the store can share a PostgreSQL database with other Alembic users
# (Prefect's server uses the default ``alembic_version``).
VERSION_TABLE = "aiops_alembic_version"
SCRIPT_LOCATION = Path(__file__).resolve().parent
# Connection execution option read by the store engine's "begin" hook: BEGIN <mode> on SQLite.
SQLITE_BEGIN_OPTION = "aiops_sqlite_begin"
# Key of the PostgreSQL advisory lock that serialises migrations ("aiops" in ASCII).
PG_MIGRATION_LOCK = 0x61696F7073


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic ``Config`` built in code, pointing at this package's scripts."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this code knows."""
    return _head(str(SCRIPT_LOCATION))


@functools.lru_cache(maxsize=4)
def _head(location: str) -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {location}"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the database to ``revision`` in one locked transaction (a no-op, without
    taking the lock, when it is already at head)."""
    if revision == "head" and current_revision(engine) == head_revision():
        return
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            # must happen outside a transaction; the begin hook has not run yet
            conn.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}).begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK}
                    )
                before = MigrationContext.configure(
                    conn, opts={"version_table": VERSION_TABLE}
                ).get_current_revision()
                try:
                    command.upgrade(alembic_config(conn), revision)
                except CommandError as exc:
                    raise ConfigError(
                        f"cannot upgrade the store schema from revision {before!r}: {exc}. "
                        "Was the database written by a newer aiops version?",
                        setting="AIOPS_DATABASE_URL",
                    ) from exc
                if sqlite:
                    problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if problems:
                        raise ConfigError(
                            f"store migration left {len(problems)} foreign key violations; "
                            "rolled back",
                            setting="AIOPS_DATABASE_URL",
                        )
                after = MigrationContext.configure(
                    conn, opts={"version_table": VERSION_TABLE}
                ).get_current_revision()
                if before != after:
                    logger.info("store schema upgraded from %s to %s", before, after)
        finally:
            if sqlite:
                conn.connection.driver_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
