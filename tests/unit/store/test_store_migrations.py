from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from aiops.errors import ConfigError
from aiops.store import Store, accept_any_kind, migrations
from aiops.store.schema import metadata

TABLES = {
    "detector",
    "detector_datasource",
    "model_state",
    "checkpoint",
    "event",
    "collector_status",
    "log_report",
    "miner_state",
    "backfill_window",
}


def test_open_creates_every_table_on_an_empty_database(store):
    assert set(inspect(store.engine).get_table_names()) >= TABLES
    assert migrations.current_revision(store.engine) == migrations.head_revision()


def test_migrations_produce_exactly_the_declared_schema(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": migrations.VERSION_TABLE}
        )
        assert compare_metadata(ctx, metadata) == []


def test_open_works_without_alembic_ini_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store.open("sqlite:///relative/aiops.db") as s:
        assert migrations.current_revision(s.engine) == migrations.head_revision()
    assert (tmp_path / "relative" / "aiops.db").exists()


def test_reopening_an_existing_database_keeps_its_data(db_url, make_spec):
    with Store.open(db_url, kind_validator=accept_any_kind) as s:
        s.create_detector(make_spec())
    with Store.open(db_url, kind_validator=accept_any_kind) as s:
        assert [d.id for d in s.list_detectors()] == ["api-errors"]


def test_upgrade_is_idempotent_after_stamp(store, make_spec):
    store.create_detector(make_spec())
    with store.engine.begin() as conn:
        command.stamp(migrations.alembic_config(conn), "head")
    migrations.upgrade(store.engine)
    migrations.upgrade(store.engine)
    assert [d.id for d in store.list_detectors()] == ["api-errors"]


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_busy_timeout(sqlite_store):
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def test_a_database_from_a_newer_version_is_refused_with_a_config_error(store, backend_url):
    with store.engine.begin() as conn:
        conn.execute(text(f"UPDATE {migrations.VERSION_TABLE} SET version_num = 'f00d'"))
    with pytest.raises(ConfigError, match="newer aiops"):
        Store.open(backend_url)


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://localhost/aiops", "sqlite+aiosqlite:///x.db"]
)
def test_unsupported_database_urls_raise_config_error(url):
    with pytest.raises(ConfigError) as info:
        Store.open(url)
    assert info.value.setting == "AIOPS_DATABASE_URL"


def test_default_url_is_an_absolute_sqlite_file_in_a_created_data_dir(tmp_path):
    url = Store.default_url(tmp_path / "a" / "b")
    assert url == f"sqlite:///{tmp_path / 'a' / 'b' / 'aiops.db'}"
    assert (tmp_path / "a" / "b").is_dir()


def test_threads_opening_a_new_database_at_once_all_succeed(db_url):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        try:
            barrier.wait()
            Store.open(db_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path):
    url = Store.default_url(tmp_path)
    code = (
        "import sys; from datetime import datetime, UTC; from aiops.store import Store\n"
        "s = Store.open(sys.argv[1])\n"
        "s.insert_events([{'type': 'test', 'series_key': sys.argv[2], "
        "'ts': datetime(2024, 1, 1, tzinfo=UTC)}])\n"
        "s.close()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, url, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    assert [rc for rc, _ in results] == [0, 0, 0], results
    with Store.open(url) as s:
        assert len(s.events_after(0, types=["test"])) == 3


# A future revision on top of the current head.
REVISION_NEXT = f"""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{migrations.head_revision()}"


def upgrade():
    # a type change forces SQLite to rebuild the parent table (copy, drop, rename)
    with op.batch_alter_table("detector") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.alter_column("name", type_=sa.String(300), existing_nullable=False)
"""


def test_an_upgrade_that_rebuilds_a_parent_table_keeps_all_data(
    sqlite_store, db_url, make_spec, tmp_path, monkeypatch
):
    store = sqlite_store
    store.create_detector(make_spec())
    store.save_states("api-errors", {"": ({}, {"mean": 1.0})})
    store.advance_checkpoint("api-errors", "2024-01-01T00:00:00Z")
    store.close()

    scripts = tmp_path / "migrations"
    shutil.copytree(
        migrations.SCRIPT_LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__")
    )
    (scripts / "versions" / "9999_test.py").write_text(REVISION_NEXT)
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", scripts)

    with Store.open(db_url, kind_validator=accept_any_kind) as upgraded:
        assert migrations.current_revision(upgraded.engine) == "9999"
        assert "note" in {c["name"] for c in inspect(upgraded.engine).get_columns("detector")}
        # children survive: foreign keys were off while the parent was rebuilt
        assert upgraded.get_detector("api-errors").datasource is not None
        assert upgraded.load_states("api-errors") != {}
        assert upgraded.get_checkpoint("api-errors") is not None
        with upgraded.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
