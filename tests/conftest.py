"""Session fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.prometheus import RunningPrometheus, build_history, run_prometheus


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPrometheus]:
    """Debian's real Prometheus on 127.0.0.1 (a free port) with six hours of known history."""
    with run_prometheus(tmp_path_factory.mktemp("prometheus"), build_history()) as running:
        yield running
