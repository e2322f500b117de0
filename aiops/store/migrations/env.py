"""Alembic environment for the aiops store.

Normally run through :func:`aiops.store.migrations.upgrade` (``Store.open`` does it), which
passes an open connection in ``config.attributes["connection"]`` inside a transaction that
already holds the migration lock. For development, a URL also works::

    python -m aiops.store.migrations --url sqlite:///dev.db revision --autogenerate -m "add x"
"""

from __future__ import annotations

from alembic import context

from aiops.store.migrations import SQLITE_BEGIN_OPTION, VERSION_TABLE
from aiops.store.schema import metadata

config = context.config


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        compare_type=True,
        render_as_batch=True,  # SQLite cannot ALTER most things: copy-and-move tables
        **kwargs,
    )


def run_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from aiops.store.repo import create_store_engine

    engine = create_store_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with (
            engine.connect() as conn,
            conn.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}).begin(),
        ):
            _configure(connection=conn, transactional_ddl=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
