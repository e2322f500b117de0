"""AIOPS_RETRY_ATTEMPTS bounds every task that talks to a datasource, whether or not its flow
sets ``with_options(retries=...)`` (the Loki load of analyze-logs does not)."""

from __future__ import annotations

import pytest
from prefect import flow, task

from aiops.errors import DatasourceUnavailable, InvalidInput
from tasks._runtime import TRANSIENT_RETRIES


def _counting_task(exc: Exception):
    calls: list[int] = []

    @task(**{**TRANSIENT_RETRIES, "retry_delay_seconds": 0, "retry_jitter_factor": None})
    def load() -> None:
        calls.append(1)
        raise exc

    @flow
    def run() -> None:
        load()

    return run, calls


@pytest.mark.parametrize("attempts", [1, 4])
def test_a_transient_failure_is_tried_as_often_as_the_setting_says(attempts, monkeypatch, tmp_path):
    monkeypatch.setenv("AIOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'aiops.db'}")
    monkeypatch.setenv("AIOPS_RETRY_ATTEMPTS", str(attempts))
    run, calls = _counting_task(DatasourceUnavailable("down"))
    with pytest.raises(DatasourceUnavailable):
        run()
    assert len(calls) == attempts


def test_a_bad_query_is_never_retried(monkeypatch, tmp_path):
    monkeypatch.setenv("AIOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'aiops.db'}")
    monkeypatch.setenv("AIOPS_RETRY_ATTEMPTS", "5")
    run, calls = _counting_task(InvalidInput("bad"))
    with pytest.raises(InvalidInput):
        run()
    assert len(calls) == 1
