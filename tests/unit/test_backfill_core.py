"""The backfill's planning in the core: the window budget, the piece planner's bounds, and
the Dask setting's checks (plain pytest, no Prefect)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from aiops.backfill import PiecePlan, WindowBudget, check_dask_scheduler, plan_windows
from aiops.config import Settings
from aiops.errors import ConfigError
from aiops.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_the_budget_grants_what_is_left_and_no_more():
    budget = WindowBudget(5)
    assert budget.take(3) == 3 and budget.take(3) == 2 and budget.take() == 0
    assert WindowBudget(None).take(10**6) == 10**6


def test_the_piece_plan_stops_at_until_and_at_the_budget(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as db:
        db.create_detector({"id": "d", "kind": "zscore", "datasource": {"query": "up", "step": 60}})
        db.plan_backfill("bf", ["d"], plan_windows(T0, T0 + timedelta(hours=4), 3600))

        def starts(plan: PiecePlan) -> list[datetime]:
            seen = []
            while (piece := plan.next(1)) is not None:
                if piece.first:
                    seen.append(piece.window.window_start)
            return seen

        one = PiecePlan(
            db, "bf", "d", 60.0, 10_000, WindowBudget(None), until=T0 + timedelta(hours=1)
        )
        assert starts(one) == [T0, T0 + timedelta(hours=1)]
        assert starts(PiecePlan(db, "bf", "d", 60.0, 10_000, WindowBudget(3))) == [
            T0 + timedelta(hours=i) for i in range(3)
        ]


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("tcp://10.0.0.5:8786", "tcp://10.0.0.5:8786"),
        ("scheduler:8786", "tcp://scheduler:8786"),
        ("tls://[::1]:8786", "tls://[::1]:8786"),
        ("", None),
    ],
)
def test_a_dask_address_is_kept_as_a_scheduler_url(given, stored):
    assert Settings(config_file=None, dask_address=given).dask_address == stored


@pytest.mark.parametrize(
    "bad", ["scheduler", "http://scheduler:8786", "tcp://scheduler:99999", "tcp://:8786"]
)
def test_a_malformed_dask_address_is_refused_when_the_settings_load(bad, monkeypatch, tmp_path):
    from aiops.config import load_settings

    monkeypatch.chdir(tmp_path)  # no config file of the checkout
    monkeypatch.setenv("AIOPS_DASK_ADDRESS", bad)
    with pytest.raises(ConfigError, match="AIOPS_DASK_ADDRESS: .* is not a Dask scheduler address"):
        load_settings()


def test_the_scheduler_check_passes_when_something_listens_and_names_the_setting_when_not():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        check_dask_scheduler(f"tcp://127.0.0.1:{listening.getsockname()[1]}", timeout=5)
        with socket.socket() as probe:  # a port nothing listens on: bound, never listening
            probe.bind(("127.0.0.1", 0))
            closed = probe.getsockname()[1]
            with pytest.raises(
                ConfigError,
                match=r"cannot reach the Dask scheduler at tcp://127\.0\.0\.1:\d+ "
                r"\(AIOPS_DASK_ADDRESS\)",
            ):
                check_dask_scheduler(f"tcp://127.0.0.1:{closed}", timeout=5)
