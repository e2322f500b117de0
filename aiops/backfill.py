"""Backfill planning, pure: which windows a backfill covers, its id, and how far it got.

A backfill runs detectors (or log jobs) over ``[start, end)`` cut into windows. The flow
(``flows/backfill.py``) processes each detector's windows in time order, so its models evolve
as they would have live; the store records each window as it completes, so the same request
run again (same id) skips what is done. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from datetime import UTC, datetime, timedelta

from aiops.errors import InvalidInput, NotFound

__all__ = [
    "BackfillRequest",
    "plan_windows",
    "backfill_id_for",
    "step_span",
    "progress_bar",
    "progress_counts",
    "log_source",
    "MAX_WINDOWS",
]

#: Windows per detector (or log job) in one backfill: 30 days of 1-minute windows is 43,200.
MAX_WINDOWS = 50_000


def _utc(value: datetime, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidInput(f"{field} must be a date and time, not {value!r}", field=field)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def plan_windows(
    start: datetime, end: datetime, size_seconds: float, *, cut_at: Iterable[datetime] = ()
) -> list[tuple[datetime, datetime]]:
    """``[start, end)`` cut into consecutive windows of ``size_seconds`` (the last may be
    shorter). Every time in ``cut_at`` inside the range also starts a new window (the end of a
    training prefix, so no window is half training and half scoring)."""
    if size_seconds <= 0:
        raise InvalidInput("the window must be longer than zero", field="window")
    cuts = sorted({c for c in cut_at if start < c < end})
    out: list[tuple[datetime, datetime]] = []
    size = timedelta(seconds=size_seconds)
    for lo, hi in zip([start, *cuts], [*cuts, end], strict=True):
        cursor = lo
        while cursor < hi:
            out.append((cursor, min(hi, cursor + size)))
            cursor += size
    return out


def backfill_id_for(
    detector_ids: Sequence[str],
    start: datetime,
    end: datetime,
    window: str,
    *,
    train: str | None = None,
    log_jobs: Sequence[str] = (),
    log_window: str | None = None,
) -> str:
    """The same request always gets the same id, so running it again resumes it."""
    parts = [",".join(sorted(detector_ids)), start.isoformat(), end.isoformat(), window]
    if train:
        parts.append(f"train={train}")
    if log_jobs:
        parts.append(f"logs={','.join(sorted(log_jobs))}/{log_window}")
    return "bf-" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def step_span(window_start: datetime, window_end: datetime, step: float) -> tuple[datetime, datetime] | None:
    """The evaluation timestamps of a window, aligned to ``step``: the first at or after the
    start, the last before the end (both inclusive), or None when no step falls inside."""
    first = math.ceil(window_start.timestamp() / step) * step
    last = math.ceil(window_end.timestamp() / step) * step - step
    if last < first:
        return None
    return datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last, UTC)


@dataclass(frozen=True)
class BackfillRequest:
    """A validated backfill request (the flow and the CLI share the checks)."""

    detector_ids: tuple[str, ...]
    log_jobs: tuple[str, ...]
    start: datetime
    end: datetime
    window_seconds: float
    train_until: datetime | None
    log_window_seconds: float

    @classmethod
    def check(
        cls,
        *,
        detector_ids: Sequence[str] | None,
        log_jobs: Sequence[str] | None,
        start: datetime | None,
        end: datetime | None,
        window_seconds: float,
        train_seconds: float | None,
        log_window_seconds: float,
        now: datetime | None = None,
    ) -> BackfillRequest:
        if start is None or end is None:
            raise InvalidInput("a backfill needs a start and an end", field="start" if start is None else "end")
        start, end = _utc(start, "start"), _utc(end, "end")
        if end <= start:
            raise InvalidInput("end must be after start", field="end")
        if end > (now or datetime.now(UTC)):
            raise InvalidInput("a backfill covers the past: end is in the future", field="end")
        detectors = tuple(dict.fromkeys(detector_ids or ()))
        jobs = tuple(dict.fromkeys(log_jobs or ()))
        if not detectors and not jobs:
            raise InvalidInput("give at least one detector id (or log job)", field="detector_ids")
        span = (end - start).total_seconds()
        for name, size in (("window", window_seconds), ("log_window", log_window_seconds)):
            if size <= 0:
                raise InvalidInput(f"{name} must be longer than zero", field=name)
        if detectors and span / window_seconds > MAX_WINDOWS:
            raise InvalidInput(
                f"{math.ceil(span / window_seconds)} windows per detector is more than {MAX_WINDOWS}: use a larger window",
                field="window",
            )
        if jobs and span / log_window_seconds > MAX_WINDOWS:
            raise InvalidInput(
                f"{math.ceil(span / log_window_seconds)} log windows is more than {MAX_WINDOWS}: use a larger log_window",
                field="log_window",
            )
        train_until = None
        if train_seconds is not None:
            if train_seconds <= 0:
                raise InvalidInput("train must be longer than zero", field="train")
            if train_seconds >= span:
                raise InvalidInput("the training prefix covers the whole range: nothing would be scored", field="train")
            train_until = start + timedelta(seconds=train_seconds)
        return cls(detectors, jobs, start, end, float(window_seconds), train_until, float(log_window_seconds))


def log_source(backfill_id: str, job: str) -> str:
    """Where a backfill stores a log job's reports and template miner (apart from live)."""
    return f"backfill:{backfill_id}:job:{job}"


def progress_counts(
    store: Any,
    backfill_id: str,
    *,
    detectors: bool,
    log_jobs: Sequence[str] = (),
    log_windows: Sequence[tuple[datetime, datetime]] = (),
) -> dict[str, int]:
    """Windows ``total``/``done``/``failed``/``pending``/``running`` of a backfill: the
    detector windows planned in ``store`` plus, per log job, ``log_windows`` with a stored
    report (the flow and the command's progress bar count alike)."""
    counts = {"total": 0, "done": 0, "failed": 0, "pending": 0, "running": 0}
    if detectors:
        try:
            counts.update(store.backfill_progress(backfill_id).model_dump())
        except NotFound:  # not planned yet
            pass
    wanted = set(log_windows)
    for job in log_jobs:
        finished = len(wanted & store.log_report_windows(log_source(backfill_id, job)))
        counts["total"] += len(wanted)
        counts["done"] += finished
        counts["pending"] += len(wanted) - finished
    return counts


def progress_bar(done: int, total: int, width: int = 30) -> str:
    """``[#########.........]  30% 3/10`` (text, for the CLI)."""
    total = max(total, 0)
    share = 1.0 if total == 0 else min(1.0, done / total)
    filled = int(round(share * width))
    return f"[{'#' * filled}{'.' * (width - filled)}] {share:4.0%} {done}/{total}"
