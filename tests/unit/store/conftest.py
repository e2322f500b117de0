from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiops.store import Store, accept_any_kind


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return Store.default_url(tmp_path / "data")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Debian's real PostgreSQL, one throw-away cluster per test session."""
    import shutil
    import tempfile

    from tests.support.postgres import run_postgres

    # Not under pytest's tmp dir: when the tests run as root the server runs as `postgres`,
    # which cannot traverse root's private pytest directory.
    workdir = Path(tempfile.mkdtemp(prefix="aiops-pg-"))
    try:
        with run_postgres(workdir) as url:
            yield url
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, db_url: str) -> str:
    """The store's two backends: the embedded SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return db_url
    from tests.support.postgres import create_database

    return create_database(request.getfixturevalue("postgres_server"), f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def sqlite_store(db_url: str) -> Iterator[Store]:
    """For what only SQLite has (pragmas, table rebuilds)."""
    with Store.open(db_url, kind_validator=accept_any_kind) as s:
        yield s


@pytest.fixture
def store(backend_url: str) -> Iterator[Store]:
    with Store.open(backend_url, kind_validator=accept_any_kind) as s:
        yield s


@pytest.fixture
def make_spec() -> Callable[..., dict[str, Any]]:
    def make(id: str = "api-errors", **overrides: Any) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "id": id,
            "kind": "zscore",
            "params": {"window": 60},
            "datasource": {"query": "sum(rate(http_requests_total[5m]))"},
        }
        spec.update(overrides)
        return spec

    return make
