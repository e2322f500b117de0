"""Real-time log analysis: lines from a live source (:mod:`aiops.sources.tail`) analysed in
short windows by the same :class:`~aiops.logs.LogAnalyzer` as a batch report.

Windows are consecutive ``[start, start + window)`` spans of the wall clock, aligned to the
window length (a 1 m window closes at every full minute). Each closed window gives a report
whose ``changes`` compare it with the previous window (new templates, rate jumps, new error
types), with one template miner for the whole run so template ids stay stable.

Memory is bounded whatever the rate or the run's length: lines are handed to the analyzer in
chunks of at most ``chunk_lines`` (they are not kept: the analyzer keeps counters), a window
holds one analyzer, the run keeps one previous report and the miner, and the source's batches
wait in a queue of at most ``queue_batches``. Stopping (``stop`` set, e.g. on SIGINT/SIGTERM)
closes the current window early (``partial``), reports it, and closes the source.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aiops.errors import InvalidInput
from aiops.logs import LogAnalyzer, TemplateMiner
from aiops.logs.frame import from_lines, make_frame
from aiops.sources.tail import TailBatch

__all__ = ["LiveLogAnalysis", "WindowReport", "run_live"]


@dataclass
class WindowReport:
    start: pd.Timestamp
    end: pd.Timestamp
    lines: int
    dropped: int
    partial: bool
    notes: list[str]
    report: Any  # aiops.logs.LogReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "lines": self.lines,
            "dropped": self.dropped,
            "partial": self.partial,
            "notes": self.notes,
            "report": self.report.to_dict(),
        }


@dataclass
class LiveLogAnalysis:
    """Window bookkeeping and the analyzer of the current window."""

    window_seconds: float
    patterns: Mapping[str, str] | None = None
    bucket: str | None = None
    selector: str | None = None
    chunk_lines: int = 5_000
    top_templates: int = 20
    clock: Callable[[], float] = time.time
    miner: TemplateMiner = field(default_factory=TemplateMiner)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_seconds) and self.window_seconds >= 1):
            raise InvalidInput("the window must be at least 1 second", field="window")
        if self.chunk_lines < 1:
            raise InvalidInput("chunk_lines must be positive", field="chunk_lines")
        # one bucket per window unless asked: the window is the unit of comparison
        self.bucket = self.bucket or f"{int(self.window_seconds)}s"
        self._previous: Any = None
        self._start = math.floor(self.clock() / self.window_seconds) * self.window_seconds
        self._new_analyzer()

    def _new_analyzer(self) -> None:
        self._analyzer = LogAnalyzer(
            patterns=self.patterns,
            bucket=self.bucket,
            miner=self.miner,
            selector=self.selector,
            top_templates=self.top_templates,
        )
        self._frames: list[pd.DataFrame] = []
        self._buffered = 0
        self._lines = 0
        self._dropped = 0
        self._notes: list[str] = []

    @property
    def window_end(self) -> float:
        return self._start + self.window_seconds

    def seconds_left(self) -> float:
        return max(0.0, self.window_end - self.clock())

    def add(self, batch: TailBatch) -> None:
        """Take a batch into the current window (analysed in chunks, not kept)."""
        self._dropped += batch.dropped
        self._notes.extend(batch.notes)
        if not batch.lines:
            return
        if batch.timestamps_ns is None:
            labels = batch.labels if isinstance(batch.labels, Mapping) else None
            frame = from_lines(
                batch.lines,
                labels=labels,
                default_time=pd.Timestamp(self.clock(), unit="s", tz="UTC"),
            )
        else:
            frame = make_frame(batch.lines, np.asarray(batch.timestamps_ns, np.int64), batch.labels)
        self._frames.append(frame)
        self._buffered += len(frame)
        self._lines += len(frame)
        if self._buffered >= self.chunk_lines:
            self._feed()

    def _feed(self) -> None:
        if self._frames:
            frame = (
                self._frames[0]
                if len(self._frames) == 1
                else pd.concat(self._frames, ignore_index=True)
            )
            self._analyzer.update(frame)
        self._frames, self._buffered = [], 0

    def close_window(self, *, partial: bool = False) -> WindowReport:
        """Report the current window and start the next (the one holding now)."""
        self._feed()
        end = self.clock() if partial else self.window_end
        span = (
            pd.Timestamp(self._start, unit="s", tz="UTC"),
            pd.Timestamp(max(end, self._start + 1e-3), unit="s", tz="UTC"),
        )
        report = self._analyzer.report(previous=self._previous, window=span)
        out = WindowReport(
            span[0], span[1], self._lines, self._dropped, partial, self._notes, report
        )
        self._previous = report
        now = self.clock()
        self._start = max(
            self.window_end, math.floor(now / self.window_seconds) * self.window_seconds
        )
        self._new_analyzer()
        return out


async def run_live(
    source: AsyncIterator[TailBatch],
    analysis: LiveLogAnalysis,
    emit: Callable[[WindowReport], None],
    *,
    stop: asyncio.Event,
    max_windows: int | None = None,
    queue_batches: int = 64,
) -> int:
    """Feed ``source`` into ``analysis`` and ``emit`` each closed window until ``stop`` is set,
    ``max_windows`` windows were reported, or the source fails (its error is raised after the
    window so far is reported). Returns the number of windows reported."""
    queue: asyncio.Queue[TailBatch | BaseException | None] = asyncio.Queue(maxsize=queue_batches)

    async def produce() -> None:
        try:
            async for batch in source:
                await queue.put(batch)  # waits when the analysis is behind: bounded
            await queue.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, raised there
            await queue.put(exc)
        finally:
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    producer = asyncio.create_task(produce(), name="live-log-source")
    stopper = asyncio.create_task(stop.wait(), name="live-log-stop")
    windows = 0
    failure: BaseException | None = None
    try:
        while max_windows is None or windows < max_windows:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait(
                {getter, stopper},
                timeout=analysis.seconds_left(),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter in done:
                item = getter.result()
                if isinstance(item, BaseException):
                    failure = item
                    break
                if item is None:  # the source ended
                    break
                analysis.add(item)
            else:
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
            if stopper in done:
                break
            if analysis.seconds_left() <= 0:
                emit(analysis.close_window())
                windows += 1
        else:
            return windows
        emit(analysis.close_window(partial=True))
        windows += 1
    finally:
        stopper.cancel()
        producer.cancel()
        for task in (stopper, producer):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if failure is not None:
        raise failure
    return windows
