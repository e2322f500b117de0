"""Backfill planning: what a backfill request means, which windows it covers, its id, the
pieces each window is read in, and how far it got.

A backfill runs detectors (or log jobs) over ``[start, end)`` cut into windows. The flow
(``flows/backfill.py``) processes each detector's windows in time order, so its models evolve
as they would have live; the store records each window as it completes, so the same request
run again (same id) skips what is done.

:func:`resolve_backfill` is the one place a request is checked and resolved (times, windows,
detectors with a configured datasource, configured log jobs, the id): the command
(``aiops backfill``), ``POST /api/runs`` and the flow itself all call it, so they accept and
refuse the same requests with the same errors; each names the fields its own way
(:data:`FLOW_FIELDS`, :data:`API_FIELDS`, :data:`CLI_FIELDS`).

I/O happens only where a name says so: the resolver looks detectors up (through the
``get_detector`` it is given), :class:`PendingWindows`, :class:`PiecePlan` and
:class:`ProgressWatcher` read the store, and :func:`check_dask_scheduler` opens one TCP
connection; the rest is pure.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiops.errors import ConfigError, InvalidInput, NotFound
from aiops.pipeline import Window, next_piece
from aiops.timeutil import datetime_from_seconds, parse_seconds

if TYPE_CHECKING:
    from aiops.config import LogJob, Settings
    from aiops.store import DetectorRecord

__all__ = [
    "BackfillRequest",
    "TrainRule",
    "ResolvedBackfill",
    "resolve_backfill",
    "FLOW_FIELDS",
    "API_FIELDS",
    "CLI_FIELDS",
    "WindowBudget",
    "Piece",
    "PendingWindows",
    "PiecePlan",
    "ProgressWatcher",
    "check_dask_scheduler",
    "plan_windows",
    "backfill_id_for",
    "step_span",
    "progress_bar",
    "progress_counts",
    "log_source",
    "MAX_WINDOWS",
]

log = logging.getLogger(__name__)

#: Windows per detector (or log job) in one backfill: 30 days of 1-minute windows is 43,200.
MAX_WINDOWS = 50_000

#: A backfill id given by the caller (the API's model checks the same pattern).
BACKFILL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

_FIELD_NAMES = (
    "detector_ids",
    "log_jobs",
    "start",
    "end",
    "window",
    "train",
    "log_window",
    "backfill_id",
)
#: How each caller names a request's fields in its errors: the flow's parameters, the API's
#: ``parameters.<name>``, the command's options.
FLOW_FIELDS: Mapping[str, str] = {n: n for n in _FIELD_NAMES}
API_FIELDS: Mapping[str, str] = {n: f"parameters.{n}" for n in _FIELD_NAMES}
CLI_FIELDS: Mapping[str, str] = {
    "detector_ids": "--detector",
    "log_jobs": "--log-job",
    "start": "--start",
    "end": "--end",
    "window": "--window",
    "train": "--train",
    "log_window": "--log-window",
    "backfill_id": "--id",
}


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


def step_span(
    window_start: datetime, window_end: datetime, step: float
) -> tuple[datetime, datetime] | None:
    """The evaluation timestamps of a window, aligned to ``step``: the first at or after the
    start, the last before the end (both inclusive), or None when no step falls inside."""
    first = math.ceil(window_start.timestamp() / step) * step
    last = math.ceil(window_end.timestamp() / step) * step - step
    if last < first:
        return None
    return datetime_from_seconds(first), datetime_from_seconds(last)


_TRAIN_POINTS = re.compile(r"^(\d{1,9})\s*(?:p|pts|points?)$", re.IGNORECASE)
_TRAIN_PERCENT = re.compile(r"^(\d{1,3}(?:\.\d+)?)\s*%$")
_TRAIN_FRACTION = re.compile(r"^0?\.\d+$")


@dataclass(frozen=True)
class TrainRule:
    """How much of a backfill's range is fitted without being scored, one rule for every
    detector of the request: a duration (``"3d"``, ``"36h"``; a bare number is seconds), a
    fraction of the range (``"0.2"`` or ``"20%"``), or a number of points (``"500 points"``,
    ``"500p"``). Points count steps of the coarsest detector, so every detector of the request
    fits at least that many; all share one cut, so each window is wholly fitted or scored."""

    text: str
    seconds: float | None = None
    fraction: float | None = None
    points: int | None = None

    @classmethod
    def parse(cls, text: str, *, field: str = "train") -> TrainRule:
        value = text.strip() if isinstance(text, str) else text
        if isinstance(value, str):
            if m := _TRAIN_POINTS.match(value):
                if int(m[1]) < 1:
                    raise InvalidInput("train must be at least 1 point", field=field)
                return cls(text, points=int(m[1]))
            if m := _TRAIN_PERCENT.match(value):
                fraction = float(m[1]) / 100
            elif _TRAIN_FRACTION.match(value):
                fraction = float(value)
            else:
                fraction = None
            if fraction is not None:
                if not 0 < fraction < 1:
                    raise InvalidInput(
                        f"train {text!r}: a fraction of the range must be between 0 and 1 "
                        "(0%-100%)",
                        field=field,
                    )
                return cls(text, fraction=fraction)
        try:
            return cls(str(text), seconds=parse_seconds(value, field=field))
        except InvalidInput:
            raise InvalidInput(
                f"train {text!r} is not a duration (3d), a fraction of the range (0.2 or 20%) or "
                "a number of points (500 points)",
                field=field,
            ) from None

    def train_seconds(
        self, span_seconds: float, steps: Sequence[float], *, field: str = "train"
    ) -> float:
        """The prefix in seconds for a range of ``span_seconds`` and detectors of ``steps``."""
        if self.seconds is not None:
            return self.seconds
        if self.fraction is not None:
            return self.fraction * span_seconds
        if not steps:
            raise InvalidInput(
                "train as a number of points needs a detector (log jobs have no step)", field=field
            )
        return float(self.points or 0) * max(steps)


@dataclass(frozen=True)
class BackfillRequest:
    """A backfill request's times and sizes, checked (:func:`resolve_backfill` adds the
    detectors, the log jobs and the id)."""

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
        fields: Mapping[str, str] = FLOW_FIELDS,
    ) -> BackfillRequest:
        """The request's times and sizes checked; errors carry ``fields[name]`` as their field."""
        f = fields
        if start is None or end is None:
            raise InvalidInput(
                "a backfill needs a start and an end",
                field=f["start"] if start is None else f["end"],
            )
        start, end = _utc(start, f["start"]), _utc(end, f["end"])
        if end <= start:
            raise InvalidInput("end must be after start", field=f["end"])
        if end > (now or datetime.now(UTC)):
            raise InvalidInput("a backfill covers the past: end is in the future", field=f["end"])
        detectors = tuple(dict.fromkeys(detector_ids or ()))
        jobs = tuple(dict.fromkeys(log_jobs or ()))
        if not detectors and not jobs:
            raise InvalidInput(
                "give at least one detector id (or log job)", field=f["detector_ids"]
            )
        span = (end - start).total_seconds()
        for name, size in (("window", window_seconds), ("log_window", log_window_seconds)):
            if size <= 0:
                raise InvalidInput(f"{name} must be longer than zero", field=f[name])
        if detectors and span / window_seconds > MAX_WINDOWS:
            raise InvalidInput(
                f"{math.ceil(span / window_seconds)} windows per detector is more than "
                f"{MAX_WINDOWS}: use a larger window",
                field=f["window"],
            )
        if jobs and span / log_window_seconds > MAX_WINDOWS:
            raise InvalidInput(
                f"{math.ceil(span / log_window_seconds)} log windows is more than {MAX_WINDOWS}: "
                "use a larger log_window",
                field=f["log_window"],
            )
        request = cls(
            detectors, jobs, start, end, float(window_seconds), None, float(log_window_seconds)
        )
        return request if train_seconds is None else request.with_train(train_seconds, fields=f)

    def with_train(
        self, train_seconds: float, *, fields: Mapping[str, str] = FLOW_FIELDS
    ) -> BackfillRequest:
        """This request with a training prefix of ``train_seconds`` (checked)."""
        span = (self.end - self.start).total_seconds()
        if train_seconds <= 0:
            raise InvalidInput("train must be longer than zero", field=fields["train"])
        if train_seconds >= span:
            raise InvalidInput(
                "the training prefix covers the whole range: nothing would be scored",
                field=fields["train"],
            )
        return replace(self, train_until=self.start + timedelta(seconds=train_seconds))


@dataclass(frozen=True)
class ResolvedBackfill:
    """A backfill request resolved against the settings and the store: what the flow runs."""

    backfill_id: str
    request: BackfillRequest
    detectors: tuple[DetectorRecord, ...]
    log_jobs: tuple[LogJob, ...]
    window: str
    train: str | None
    log_window: str

    @property
    def windows(self) -> list[tuple[datetime, datetime]]:
        """The detector windows (a training prefix ends one)."""
        r = self.request
        return plan_windows(
            r.start, r.end, r.window_seconds, cut_at=[r.train_until] if r.train_until else []
        )

    @property
    def log_windows(self) -> list[tuple[datetime, datetime]]:
        r = self.request
        return plan_windows(r.start, r.end, r.log_window_seconds) if self.log_jobs else []


def resolve_backfill(
    *,
    detector_ids: Sequence[str] | None,
    log_jobs: Sequence[str] | None,
    start: datetime | None,
    end: datetime | None,
    window: str = "1d",
    train: str | None = None,
    log_window: str = "1h",
    backfill_id: str | None = None,
    settings: Settings,
    get_detector: Callable[[str], DetectorRecord],
    fields: Mapping[str, str] = FLOW_FIELDS,
    now: datetime | None = None,
) -> ResolvedBackfill:
    """Check a backfill request and resolve it, the same way for every caller: durations,
    times and sizes (:meth:`BackfillRequest.check`), then every detector exists
    (:class:`NotFound`), has a datasource and reads one that is configured, then every log
    job is configured, then the id (given, or derived from the request so a rerun resumes).
    Every refusal but a missing detector is an :class:`InvalidInput` whose field is named
    by ``fields``. Reads detectors with ``get_detector`` (a store's: blocking, so call this
    off an event loop), only once the times and sizes are found good."""
    f = fields
    request = BackfillRequest.check(
        detector_ids=detector_ids,
        log_jobs=log_jobs,
        start=start,
        end=end,
        window_seconds=parse_seconds(window, field=f["window"]),
        train_seconds=None,
        log_window_seconds=parse_seconds(log_window, field=f["log_window"]),
        now=now,
        fields=f,
    )
    rule = None if train is None else TrainRule.parse(train, field=f["train"])
    span = (request.end - request.start).total_seconds()
    if rule is not None and rule.points is None:  # needs no detector: checked before any is read
        request = request.with_train(rule.train_seconds(span, ()), fields=f)
    configured = settings.datasource_configs()
    detectors = []
    for det_id in request.detector_ids:
        det = get_detector(det_id)  # NotFound names it
        if not det.datasources:
            raise InvalidInput(
                f"detector {det_id!r} has no datasource to backfill from", field=f["detector_ids"]
            )
        name = det.datasources[0].name
        if name not in configured:
            raise InvalidInput(
                f"detector {det_id!r} reads datasource {name!r}, which is not configured "
                f"(configured: {', '.join(sorted(configured)) or 'none'})",
                field=f["detector_ids"],
            )
        detectors.append(det)
    if (
        rule is not None and rule.points is not None
    ):  # one cut for every detector: the coarsest step
        steps = [d.datasources[0].step_seconds for d in detectors]
        request = request.with_train(rule.train_seconds(span, steps, field=f["train"]), fields=f)
    known_jobs = {j.name: j for j in settings.log_jobs}
    for name in request.log_jobs:
        if name not in known_jobs:
            raise InvalidInput(
                f"no log job named {name!r} (configured: "
                f"{', '.join(sorted(known_jobs)) or 'none'})",
                field=f["log_jobs"],
            )
    if backfill_id is not None and not BACKFILL_ID_PATTERN.match(backfill_id):
        raise InvalidInput(
            f"backfill id {backfill_id!r} must be 1-64 letters, digits and _.:- (starting with a "
            "letter or digit)",
            field=f["backfill_id"],
        )
    bf_id = backfill_id or backfill_id_for(
        list(request.detector_ids),
        request.start,
        request.end,
        window,
        train=train,
        log_jobs=list(request.log_jobs),
        log_window=log_window,
    )
    return ResolvedBackfill(
        bf_id,
        request,
        tuple(detectors),
        tuple(known_jobs[n] for n in request.log_jobs),
        window,
        train,
        log_window,
    )


class WindowBudget:
    """How many more windows this run may process (``max_windows``), shared by every
    detector and log job of the run (thread-safe)."""

    def __init__(self, limit: int | None) -> None:
        self._left = math.inf if limit is None else limit
        self._lock = threading.Lock()

    def take(self, n: int = 1) -> int:
        """Up to ``n`` windows; how many were granted (0 when the budget is spent)."""
        with self._lock:
            granted = int(min(n, self._left))
            self._left -= granted
            return granted

    def give_back(self, n: int) -> None:
        with self._lock:
            self._left += n


@dataclass(frozen=True, slots=True)
class Piece:
    """What to read next for one detector."""

    window: Any  # the stored BackfillWindow
    span: Window | None  # its steps to fetch now; None when the window holds no step
    first: bool  # the window's first piece
    last: bool  # ... and its last: commit after scoring it


class PendingWindows:
    """A detector's pending windows in time order, read from the store a page at a time:
    :meth:`peek` the next, :meth:`pop` it once taken. Blocking (store reads)."""

    def __init__(self, db: Any, bf_id: str, detector_id: str, *, page: int = 500) -> None:
        self.db, self.bf_id, self.detector_id, self.page = db, bf_id, detector_id, page
        self._windows: list[Any] = []
        self._after: datetime | None = None

    def peek(self) -> Any | None:
        if not self._windows:
            page = self.db.next_pending_windows(
                self.bf_id, detector_id=self.detector_id, limit=self.page
            )
            self._windows = [w for w in page if self._after is None or w.window_start > self._after]
        return self._windows[0] if self._windows else None

    def pop(self) -> Any:
        w = self._windows.pop(0)
        self._after = w.window_start
        return w


class PiecePlan:
    """The pieces of a detector's pending windows, in time order: each window cut into
    pieces that fit ``capacity`` samples for the series seen so far (a short probe first
    when none is known yet). Takes windows from the store a page at a time, within
    ``budget``, and not past ``until`` (a window start) when given. Blocking (store reads):
    call :meth:`next` off an event loop."""

    def __init__(
        self,
        db: Any,
        bf_id: str,
        detector_id: str,
        step: float,
        capacity: int,
        budget: WindowBudget,
        *,
        until: datetime | None = None,
    ) -> None:
        self.step, self.capacity, self.budget, self.until = step, capacity, budget, until
        self._pending = PendingWindows(db, bf_id, detector_id)
        self._current: tuple[Any, Window | None, datetime] | None = None
        self.empty_probes = 0  # probes in a row that found no series

    def _next_window(self) -> Any | None:
        w = self._pending.peek()
        if w is None or (self.until is not None and w.window_start > self.until):
            return None
        if not self.budget.take():
            return None
        return self._pending.pop()

    def next(self, known_series: int) -> Piece | None:
        first = False
        if self._current is None or (
            self._current[1] is not None and self._current[2] > self._current[1].end
        ):
            w = self._next_window()
            if w is None:
                return None
            span = step_span(w.window_start, w.window_end, self.step)
            whole = Window(span[0], span[1], self.step) if span else None
            self._current = (w, whole, whole.start if whole else w.window_start)
            first = True
        w, whole, cursor = self._current
        if whole is None:
            self._current = None
            return Piece(w, None, True, True)
        piece = next_piece(
            whole, cursor, known_series, self.capacity, empty_probes=self.empty_probes
        )
        after = piece.end + timedelta(seconds=self.step)
        self._current = (w, whole, after)
        return Piece(w, piece, first, after > whole.end)


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


@dataclass
class ProgressWatcher:
    """A thread that redraws a backfill's progress bar from the store while it runs (the
    command's bar): ``show(text, final)`` is called when the text changes and once at the
    end. Reads its own store (``open_store()``), so it never waits on the run's."""

    open_store: Callable[[], Any]
    resolved: ResolvedBackfill
    show: Callable[[str, bool], None]
    interval: float = 5.0
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def text(self, db: Any) -> str:
        r = self.resolved
        p = progress_counts(
            db,
            r.backfill_id,
            detectors=bool(r.detectors),
            log_jobs=[j.name for j in r.log_jobs],
            log_windows=r.log_windows,
        )
        return progress_bar(p["done"], p["total"])

    def _watch(self) -> None:
        last = ""
        with self.open_store() as db:
            while not self._stop.wait(self.interval):
                try:
                    text = self.text(db)
                except Exception as exc:  # a locked or busy store: try again next time
                    log.debug("backfill %s: progress not read: %s", self.resolved.backfill_id, exc)
                    continue
                if text != last:
                    self.show(text, False)
                    last = text
            try:
                self.show(self.text(db), True)
            except Exception as exc:
                log.debug("backfill %s: progress not read: %s", self.resolved.backfill_id, exc)

    def __enter__(self) -> ProgressWatcher:
        self._thread = threading.Thread(target=self._watch, name="backfill-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)


def check_dask_scheduler(address: str, *, timeout: float = 5.0) -> None:
    """A :class:`ConfigError` naming ``AIOPS_DASK_ADDRESS`` unless something accepts TCP
    connections at the Dask scheduler ``address`` (``tcp://host:port``), so a command fails
    with one line before any flow starts, not with a connection error from inside the run."""
    m = re.fullmatch(r"(?:\w+://)?\[?([^\]]+?)\]?:(\d+)", address)
    if m is None:
        raise ConfigError(
            f"{address!r} is not a Dask scheduler address (AIOPS_DASK_ADDRESS)",
            setting="AIOPS_DASK_ADDRESS",
        )
    try:
        with socket.create_connection((m.group(1), int(m.group(2))), timeout=timeout):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {address} (AIOPS_DASK_ADDRESS): "
            f"{exc.strerror or exc}",
            setting="AIOPS_DASK_ADDRESS",
        ) from None
