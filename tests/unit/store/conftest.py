from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aiops.store import Store, accept_any_kind


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return Store.default_url(tmp_path / "data")


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url, kind_validator=accept_any_kind) as s:
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
