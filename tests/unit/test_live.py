"""Real-time log analysis in short windows (aiops.live): window bookkeeping on a controlled
clock, changes between windows, bounded chunks, and run_live's clean stop."""

from __future__ import annotations

import asyncio

import pytest

from aiops.errors import DatasourceUnavailable, InvalidInput
from aiops.live import LiveLogAnalysis, run_live
from aiops.sources.tail import TailBatch

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of 60


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def batch(*lines: str, ns: float | None = None) -> TailBatch:
    if ns is None:
        return TailBatch(lines=list(lines), labels={"file": "app.log"})
    return TailBatch(
        lines=list(lines),
        timestamps_ns=[int(ns * 1e9)] * len(lines),
        labels=[{"app": "api"}] * len(lines),
    )


def test_windows_are_aligned_and_each_report_compares_with_the_previous():
    clock = Clock(T0 + 10)
    live = LiveLogAnalysis(60, clock=clock)
    assert live.window_end == T0 + 60 and live.seconds_left() == 50
    live.add(batch("INFO heartbeat ok", "INFO heartbeat ok", ns=T0 + 11))
    clock.now = T0 + 60
    first = live.close_window()
    assert (first.start.timestamp(), first.end.timestamp(), first.lines, first.partial) == (
        T0,
        T0 + 60,
        2,
        False,
    )
    assert live.window_end == T0 + 120
    live.add(batch("ERROR java.net.ConnectException: Connection refused to db-1:5432", ns=T0 + 70))
    live.add(batch("INFO heartbeat ok", ns=T0 + 71))
    clock.now = T0 + 121
    second = live.close_window()
    kinds = {c["type"] for c in second.report.to_dict()["changes"]}
    assert "log.new_template" in kinds and second.report.to_dict()["error_count"] == 1
    # the heartbeat was seen in the first window: not new in the second
    new = [c for c in second.report.to_dict()["changes"] if c["type"] == "log.new_template"]
    assert new and all("heartbeat" not in c["template"] for c in new)


def test_an_idle_stretch_skips_to_the_window_holding_now_and_a_partial_window_ends_now():
    clock = Clock(T0)
    live = LiveLogAnalysis(60, clock=clock)
    clock.now = T0 + 600.5
    live.close_window()
    assert live.window_end == T0 + 660
    live.add(batch("2026-01-01T00:10:01Z INFO hello"))  # timestamps read from the line
    partial = live.close_window(partial=True)
    assert partial.partial and partial.end.timestamp() == T0 + 600.5 and partial.lines == 1


def test_lines_go_to_the_analyzer_in_bounded_chunks():
    live = LiveLogAnalysis(60, clock=Clock(T0), chunk_lines=10)
    for i in range(35):
        live.add(batch(f"GET /item/{i} 200", ns=T0 + 1))
        assert live._buffered < 10  # never more than a chunk waits
    assert live.close_window().report.to_dict()["total_logs"] == 35


def test_a_bad_window_is_refused():
    with pytest.raises(InvalidInput, match="window"):
        LiveLogAnalysis(0.5)


async def test_run_live_stops_cleanly_reporting_the_window_so_far_and_closing_the_source():
    clock = Clock(T0)
    live = LiveLogAnalysis(3600, clock=clock)
    fed, closed, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
    reports = []

    async def source():
        try:
            yield batch("INFO one", ns=T0 + 1)
            yield batch("INFO two", ns=T0 + 2)
            fed.set()
            await asyncio.Event().wait()  # a live source: nothing more for now
        finally:
            closed.set()

    def emit(w):
        reports.append(w)

    task = asyncio.create_task(run_live(source(), live, emit, stop=stop))
    await asyncio.wait_for(fed.wait(), 10)
    stop.set()  # what SIGINT/SIGTERM do
    assert await asyncio.wait_for(task, 10) == 1
    assert closed.is_set()
    (w,) = reports
    assert w.partial and w.lines == 2


async def test_run_live_reports_then_raises_a_source_failure():
    live = LiveLogAnalysis(3600, clock=Clock(T0))
    reports = []

    async def source():
        yield batch("INFO one", ns=T0 + 1)
        raise DatasourceUnavailable("loki is gone", datasource="loki")

    with pytest.raises(DatasourceUnavailable):
        await asyncio.wait_for(run_live(source(), live, reports.append, stop=asyncio.Event()), 10)
    assert reports[0].lines == 1


async def test_run_live_closes_windows_as_the_clock_passes_them():
    clock = Clock(T0 + 59.999)
    live = LiveLogAnalysis(60, clock=clock)
    reports = []

    async def source():
        yield batch("INFO a", ns=T0 + 1)
        clock.now = T0 + 60.5  # the window's end passes after this batch
        await asyncio.Event().wait()

    n = await asyncio.wait_for(
        run_live(source(), live, reports.append, stop=asyncio.Event(), max_windows=1), 10
    )
    assert n == 1 and reports[0].lines == 1 and not reports[0].partial
    assert reports[0].end.timestamp() == T0 + 60
