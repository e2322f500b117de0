"""Detection quality: stored detections scored against labelled anomaly windows.

Pure (no Prefect, no Starlette, no store): the caller hands in the labels and the detections
(``(labels, unix_seconds)`` pairs, e.g. from :meth:`aiops.store.Store.list_anomalies`).

::

    from aiops.evaluation import load_labels, evaluate

    labels = load_labels("labels.json")             # InvalidInput naming file, row and field
    result = evaluate(labels, [(e.labels, e.ts) for e in events], tolerance=300)
    result.overall.recall, result.overall.precision, result.overall.f1, result.to_dict()

The label file formats and every definition (window recall, events, precision, F1,
time to detect, tolerance, merge gap, range) are in docs/evaluation.md.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from aiops.errors import InvalidInput
from aiops.incidents import DEFAULT_RESOLVE_AFTER, check_resolve_after, onsets
from aiops.labels import series_key
from aiops.timeutil import datetime_from_seconds, parse_unix_seconds

__all__ = [
    "DEFAULT_GAP_SECONDS",
    "Evaluation",
    "LabelWindow",
    "LabelledSeries",
    "Labels",
    "NAB_PROBATION",
    "NAB_PROFILES",
    "NabProfile",
    "NabScore",
    "NabEvaluation",
    "NabSeries",
    "NabSeriesResult",
    "SeriesQuality",
    "dump_labels_json",
    "evaluate",
    "incident_onsets",
    "labels_for_series",
    "load_labels",
    "nab_evaluate",
    "nab_probation_rows",
    "nab_score",
    "nab_score_rows",
    "parse_labels_csv",
    "parse_labels_json",
]

log = logging.getLogger(__name__)

DEFAULT_GAP_SECONDS = 300.0
"""Detections of one series closer than this (inclusive) belong to the same event."""


# --------------------------------------------------------------------------- labels


@dataclass(frozen=True)
class LabelWindow:
    """A labelled anomaly ``[start, end)`` in Unix seconds; ``where`` locates it in its file."""

    start: float
    end: float
    where: str = ""


@dataclass(frozen=True)
class LabelledSeries:
    """A series of the labels file: its label set (matched as a subset of a detection's labels)
    and its windows, sorted and non-overlapping (possibly none: a known-normal series)."""

    labels: Mapping[str, str]
    windows: tuple[LabelWindow, ...]

    @property
    def key(self) -> str:
        return series_key(self.labels)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class Labels:
    series: tuple[LabelledSeries, ...]
    source: str = "<labels>"

    @property
    def windows(self) -> int:
        return sum(len(s.windows) for s in self.series)


def labels_for_series(
    labels: Labels, known: Iterable[Mapping[str, str]]
) -> tuple[Labels, list[LabelledSeries]]:
    """The series of ``labels`` that match at least one of ``known`` (the label sets of the
    series a detector watches or flagged), and those left out. A labels file may describe
    the series of several detectors: the windows of a series a detector never saw are not
    its misses. With nothing known, every series is kept (nothing says which are foreign)."""
    seen = [dict(k) for k in known]
    if not seen:
        return labels, []
    kept = [s for s in labels.series if any(s.matches(k) for k in seen)]
    left = [s for s in labels.series if not any(s.matches(k) for k in seen)]
    return Labels(series=tuple(kept), source=labels.source), left


def _bad(source: str, where: str, field_name: str, problem: str) -> InvalidInput:
    at = f", {where}" if where else ""
    return InvalidInput(
        f"labels file {source}{at}, field {field_name!r}: {problem}",
        field=field_name,
        file=source,
        row=where or None,
    )


def _time(value: Any, source: str, where: str, name: str) -> float:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise _bad(source, where, name, "is empty (use RFC 3339 or Unix seconds)")
        if text.startswith(("now", "-", "+")):
            raise _bad(source, where, name, f"{value!r} is relative; use RFC 3339 or Unix seconds")
    elif value is None or isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(source, where, name, f"{value!r} is not a time (use RFC 3339 or Unix seconds)")
    try:
        return parse_unix_seconds(value, field=name)
    except InvalidInput as exc:
        raise _bad(
            source,
            where,
            name,
            f"{value!r} is not a time (use RFC 3339 or Unix seconds): {exc.message}",
        ) from None


def _label_set(value: Any, source: str, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _bad(
            source,
            where,
            "labels",
            f"must be an object of label name -> value, got {type(value).__name__}",
        )
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k:
            raise _bad(source, where, "labels", f"label name {k!r} must be a non-empty string")
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise _bad(source, where, f"labels.{k}", f"must be a string, got {v!r}")
        out[k] = str(v)
    return out


def _build(source: str, entries: list[tuple[dict[str, str], list[LabelWindow]]]) -> Labels:
    """Group windows by label set, check order/overlap and that no label set nests in another."""
    grouped: dict[str, tuple[dict[str, str], list[LabelWindow]]] = {}
    for labels, windows in entries:
        key = series_key(labels)
        grouped.setdefault(key, (labels, []))[1].extend(windows)
    series: list[LabelledSeries] = []
    for labels, windows in grouped.values():
        windows.sort(key=lambda w: (w.start, w.end))
        for a, b in zip(windows, windows[1:]):
            if b.start < a.end:
                raise _bad(
                    source,
                    b.where,
                    "start",
                    f"window overlaps the window at {a.where} of the same series "
                    f"{series_key(labels) or '{}'}",
                )
        series.append(LabelledSeries(labels=labels, windows=tuple(windows)))
    for i, a in enumerate(series):
        for b in series[i + 1 :]:
            small, big = (a, b) if len(a.labels) <= len(b.labels) else (b, a)
            if small.matches(big.labels):
                raise InvalidInput(
                    f"labels file {source}: label set {{{small.key}}} is contained in "
                    f"{{{big.key}}}, so a series could belong to both; make the label sets "
                    "disjoint",
                    field="labels",
                    file=source,
                )
    if not series:
        raise InvalidInput(f"labels file {source} lists no series", field="labels", file=source)
    log.debug(
        "labels %s: %d series, %d windows", source, len(series), sum(len(s.windows) for s in series)
    )
    return Labels(series=tuple(series), source=source)


def _window(item: Mapping[str, Any], source: str, where: str) -> LabelWindow:
    for name in ("start", "end"):
        if name not in item:
            raise _bad(source, where, name, "is missing")
    start = _time(item["start"], source, where, "start")
    end = _time(item["end"], source, where, "end")
    if end <= start:
        raise _bad(source, where, "end", f"{item['end']!r} must be after start {item['start']!r}")
    return LabelWindow(start, end, where)


def parse_labels_json(data: Any, source: str = "<json>") -> Labels:
    """Labels from decoded JSON: a list of ``{"labels", "start", "end"}`` windows, or
    ``{"series": [{"labels", "windows": [{"start", "end"}, ...]}, ...]}``."""
    entries: list[tuple[dict[str, str], list[LabelWindow]]] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            where = f"entry {i}"
            if not isinstance(item, Mapping):
                raise _bad(source, where, "entry", "must be an object with labels, start and end")
            unknown = set(item) - {"labels", "start", "end", "kind", "note"}
            if unknown:
                raise _bad(
                    source,
                    where,
                    sorted(unknown)[0],
                    "is not a field (labels, start, end, kind, note)",
                )
            labels = _label_set(item.get("labels", {}), source, where)
            entries.append((labels, [_window(item, source, where)]))
    elif isinstance(data, Mapping) and "series" in data:
        if not isinstance(data["series"], list):
            raise _bad(source, "", "series", "must be a list")
        for i, item in enumerate(data["series"]):
            where = f"series {i}"
            if not isinstance(item, Mapping):
                raise _bad(source, where, "series", "must be an object with labels and windows")
            unknown = set(item) - {"labels", "windows"}
            if unknown:
                raise _bad(source, where, sorted(unknown)[0], "is not a field (labels, windows)")
            labels = _label_set(item.get("labels", {}), source, where)
            windows = item.get("windows", [])
            if not isinstance(windows, list):
                raise _bad(source, where, "windows", "must be a list of {start, end}")
            parsed = []
            for j, w in enumerate(windows):
                wwhere = f"series {i} window {j}"
                if not isinstance(w, Mapping):
                    raise _bad(source, wwhere, "windows", "must be an object with start and end")
                unknown = set(w) - {"start", "end", "kind", "note"}
                if unknown:
                    raise _bad(
                        source,
                        wwhere,
                        sorted(unknown)[0],
                        "is not a field (start, end, kind, note)",
                    )
                parsed.append(_window(w, source, wwhere))
            entries.append((labels, parsed))
    else:
        raise _bad(
            source, "", "series", 'expected a list of windows or an object {"series": [...]}'
        )
    return _build(source, entries)


def parse_labels_csv(text: str, source: str = "<csv>") -> Labels:
    """Labels from CSV text: a header with ``start`` and ``end``; every other column is a
    label (an empty cell: the label is absent). A row with both times empty lists a series
    without windows. Lines starting with ``#`` are comments."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise InvalidInput(
            f"labels file {source} is empty (expected a header with start,end)",
            field="header",
            file=source,
        ) from None
    header = [h.strip() for h in header]
    for name in ("start", "end"):
        if name not in header:
            raise _bad(
                source,
                "header",
                name,
                "column is missing (columns: start, end, then one per label)",
            )
    if len(set(header)) != len(header) or "" in header:
        raise _bad(source, "header", "header", "column names must be unique and non-empty")
    label_cols = [h for h in header if h not in ("start", "end")]
    entries: list[tuple[dict[str, str], list[LabelWindow]]] = []
    # csv line numbers: the header is line 1 of the non-comment lines; report the data row.
    for row_no, row in enumerate(reader, start=1):
        if not any(cell.strip() for cell in row):
            continue
        where = f"row {row_no}"
        if len(row) != len(header):
            raise _bad(source, where, "row", f"has {len(row)} cells, the header has {len(header)}")
        cells = dict(zip(header, (c.strip() for c in row), strict=True))
        labels = {k: cells[k] for k in label_cols if cells[k] != ""}
        if cells["start"] == "" and cells["end"] == "":
            entries.append((labels, []))
            continue
        for name in ("start", "end"):
            if cells[name] == "":
                raise _bad(
                    source, where, name, "is empty (both empty lists a series without windows)"
                )
        entries.append((labels, [_window(cells, source, where)]))
    return _build(source, entries)


def load_labels(path: str | Path) -> Labels:
    """Read a labels file: ``.json`` or ``.csv`` (format in docs/evaluation.md)."""
    p = Path(path)
    source = str(path)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise InvalidInput(
            f"labels file {source}: unknown format {suffix or '(no extension)'!r}; use .json or "
            ".csv",
            field="labels",
            file=source,
        )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InvalidInput(
            f"cannot read labels file {source}: {reason}", field="labels", file=source
        ) from None
    if suffix == ".csv":
        return parse_labels_csv(text, source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"labels file {source} is not valid JSON: {exc.msg} at line {exc.lineno}, column "
            f"{exc.colno}",
            field="labels",
            file=source,
        ) from None
    return parse_labels_json(data, source)


def dump_labels_json(
    series: Iterable[tuple[Mapping[str, str], Iterable[tuple[float, float, str]]]],
) -> dict[str, Any]:
    """The ``{"series": [...]}`` form for ``(labels, [(start, end, kind), ...])`` items,
    times as RFC 3339 UTC."""
    out = []
    for labels, windows in series:
        out.append(
            {
                "labels": dict(labels),
                "windows": [
                    {"start": _rfc3339(s), "end": _rfc3339(e), "kind": k} for s, e, k in windows
                ],
            }
        )
    return {"series": out}


def _rfc3339(ts: float) -> str:
    return datetime_from_seconds(ts).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- scoring


@dataclass
class SeriesQuality:
    """Counts for one series (or the sum over series: ``overall``)."""

    labels: Mapping[str, str] | None
    windows: int = 0
    detected_windows: int = 0
    detections: int = 0
    outside_detections: int = 0
    events: int = 0
    true_events: int = 0
    ttd_seconds: list[float] = field(default_factory=list)
    labelled: bool = True

    @property
    def false_events(self) -> int:
        return self.events - self.true_events

    @property
    def recall(self) -> float | None:
        return self.detected_windows / self.windows if self.windows else None

    @property
    def precision(self) -> float | None:
        return self.true_events / self.events if self.events else None

    @property
    def f1(self) -> float | None:
        r, p = self.recall, self.precision
        if r is None:
            return None
        if p is None or p + r == 0:
            return 0.0
        return 2 * p * r / (p + r)

    @property
    def mean_ttd_seconds(self) -> float | None:
        return sum(self.ttd_seconds) / len(self.ttd_seconds) if self.ttd_seconds else None

    def add(self, other: SeriesQuality) -> None:
        self.windows += other.windows
        self.detected_windows += other.detected_windows
        self.detections += other.detections
        self.outside_detections += other.outside_detections
        self.events += other.events
        self.true_events += other.true_events
        self.ttd_seconds.extend(other.ttd_seconds)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.labels is not None:
            out["labels"] = dict(self.labels)
            out["series"] = series_key(self.labels)
            out["labelled"] = self.labelled
        out.update(
            windows=self.windows,
            detected_windows=self.detected_windows,
            recall=self.recall,
            events=self.events,
            true_events=self.true_events,
            false_events=self.false_events,
            precision=self.precision,
            f1=self.f1,
            mean_ttd_seconds=self.mean_ttd_seconds,
            detections=self.detections,
            outside_detections=self.outside_detections,
        )
        return out


@dataclass
class Evaluation:
    overall: SeriesQuality
    series: list[SeriesQuality]
    tolerance_seconds: float
    gap_seconds: float
    start: float | None
    end: float | None
    ignored_detections: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": None if self.start is None else _rfc3339(self.start),
            "end": None if self.end is None else _rfc3339(self.end),
            "tolerance_seconds": self.tolerance_seconds,
            "gap_seconds": self.gap_seconds,
            "ignored_detections": self.ignored_detections,
            "overall": self.overall.to_dict(),
            "series": [s.to_dict() for s in self.series],
        }


def _seconds(ts: Any) -> float:
    if isinstance(ts, int | float) and not isinstance(ts, bool):
        return float(ts)
    if isinstance(ts, datetime):
        return parse_unix_seconds(ts)
    ts_fn = getattr(ts, "timestamp", None)
    if callable(ts_fn):
        return float(ts_fn())
    raise InvalidInput(f"detection time {ts!r} is not a time", field="detections.ts")


def evaluate(
    labels: Labels,
    detections: Iterable[tuple[Mapping[str, str], Any]],
    *,
    tolerance: float = 0.0,
    gap: float = DEFAULT_GAP_SECONDS,
    start: float | None = None,
    end: float | None = None,
) -> Evaluation:
    """Score ``detections`` (``(labels, time)``: Unix seconds or aware datetimes) against
    ``labels``. ``tolerance``: seconds after a window's end in which a detection still finds
    it; ``gap``: detections of a series at most this far apart are one event; ``[start, end)``
    restricts both detections and windows (a window counts when it starts in the range; the
    detections that fall in a window starting before it are ignored)."""
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise InvalidInput(f"tolerance must be >= 0 seconds, got {tolerance!r}", field="tolerance")
    if not (math.isfinite(gap) and gap >= 0):
        raise InvalidInput(f"gap must be >= 0 seconds, got {gap!r}", field="gap")
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end must be after start", field="end")
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end

    labelled = list(labels.series)
    times: dict[int, list[float]] = {i: [] for i in range(len(labelled))}
    extra: dict[str, tuple[dict[str, str], list[float]]] = {}
    for det_labels, ts in detections:
        t = _seconds(ts)
        if not lo <= t < hi:
            continue
        hits = [i for i, s in enumerate(labelled) if s.matches(det_labels)]
        if len(hits) > 1:
            names = " and ".join("{" + labelled[i].key + "}" for i in hits)
            raise InvalidInput(
                f"labels file {labels.source}: series {{{series_key(det_labels)}}} matches both "
                f"{names}; make the label sets more specific",
                field="labels",
                file=labels.source,
            )
        if hits:
            times[hits[0]].append(t)
        else:
            key = series_key(det_labels)
            extra.setdefault(key, ({str(k): str(v) for k, v in det_labels.items()}, []))[1].append(
                t
            )

    ignored = 0
    results: list[SeriesQuality] = []
    for i, s in enumerate(labelled):
        q, n_ignored = _score_series(s.labels, s.windows, sorted(times[i]), tolerance, gap, lo, hi)
        ignored += n_ignored
        results.append(q)
    for key in sorted(extra):
        lab, ts_list = extra[key]
        q, _ = _score_series(lab, (), sorted(ts_list), tolerance, gap, lo, hi)
        q.labelled = False
        results.append(q)
    overall = SeriesQuality(labels=None)
    for q in results:
        overall.add(q)
    return Evaluation(
        overall=overall,
        series=results,
        tolerance_seconds=float(tolerance),
        gap_seconds=float(gap),
        start=start,
        end=end,
        ignored_detections=ignored,
    )


def _score_series(
    labels: Mapping[str, str],
    windows: Sequence[LabelWindow],
    ts: list[float],
    tolerance: float,
    gap: float,
    lo: float,
    hi: float,
) -> tuple[SeriesQuality, int]:
    counted = [w.start >= lo and w.start < hi for w in windows]
    starts = [w.start for w in windows]
    q = SeriesQuality(labels=dict(labels), windows=sum(counted))
    first: dict[int, float] = {}
    kept: list[tuple[float, bool]] = []  # (time, inside a counted window)
    ignored = 0
    for t in ts:
        j = _credited_window(windows, starts, t, tolerance)
        if j is not None and not counted[j]:
            ignored += 1
            continue
        if j is not None:
            first.setdefault(j, t)
        kept.append((t, j is not None))
    q.detections = len(kept)
    q.outside_detections = sum(1 for _, inside in kept if not inside)
    q.detected_windows = len(first)
    q.ttd_seconds = [first[j] - windows[j].start for j in sorted(first)]
    prev: float | None = None
    true_now = False
    for t, inside in kept:
        if prev is None or t - prev > gap:
            if prev is not None:
                q.true_events += true_now
            q.events += 1
            true_now = False
        true_now = true_now or inside
        prev = t
    if prev is not None:
        q.true_events += true_now
    return q, ignored


def _credited_window(
    windows: Sequence[LabelWindow], starts: list[float], t: float, tolerance: float
) -> int | None:
    """The window ``t`` finds: the one holding it, else the latest one that ended at most
    ``tolerance`` before it."""
    j = bisect_right(starts, t) - 1  # the last window starting at or before t
    if j < 0:
        return None
    w = windows[j]
    return j if t < w.end + tolerance else None


# --------------------------------------------------------------------------- NAB score
#
# The Numenta Anomaly Benchmark's score (Lavin & Ahmad 2015), written from the method's
# description: per series of rows, labelled windows as inclusive row ranges; the first rows
# are a probation period that is not scored; inside a window only the earliest detection
# counts, worth more the earlier it is; every detection outside windows costs the
# false-positive weight, less when it falls just after a window; the raw sum is normalised
# so that a detector that never fires scores 0 and a perfect one 100. Definitions in
# docs/evaluation.md ("NAB score").


@dataclass(frozen=True)
class NabProfile:
    """A NAB cost matrix: the weights of a true positive, a false positive, a missed window."""

    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


NAB_PROFILES: tuple[NabProfile, ...] = (
    NabProfile("standard", 1.0, 0.11, 1.0),
    NabProfile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    NabProfile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)
"""NAB's three profiles (its ``config/profiles.json``)."""

NAB_PROBATION = 0.15
"""NAB's probation: this fraction of each series' rows, at most ``5000 *`` it (750 rows)."""


def nab_probation_rows(n: int, fraction: float = NAB_PROBATION) -> int:
    """Rows of a probation period as NAB defines it: ``min(floor(fraction n), 5000 fraction)``
    (rounded up: the first scored row)."""
    if not (math.isfinite(fraction) and 0 <= fraction < 1):
        raise InvalidInput(
            f"probation must be a fraction in [0, 1), got {fraction!r}", field="probation"
        )
    return int(math.ceil(min(math.floor(fraction * n), fraction * 5000)))


def _nab_sigmoid(x: np.ndarray) -> np.ndarray:
    """NAB's scaled sigmoid ``2 / (1 + exp(5x)) - 1`` (1 far left, 0 at 0, -1 for x > 3)."""
    with np.errstate(over="ignore"):
        out = 2.0 / (1.0 + np.exp(5.0 * x)) - 1.0
    out[x > 3.0] = -1.0
    return out


_NAB_LEFT_EDGE = float(_nab_sigmoid(np.array([-1.0]))[0])


@dataclass(frozen=True)
class NabSeries:
    """One series as NAB scores it: ``n`` rows, labelled windows as inclusive row ranges
    ``(first, last)`` (sorted, not overlapping), the first ``probation`` rows not scored."""

    n: int
    windows: tuple[tuple[int, int], ...]
    probation: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        if self.n < 0 or not 0 <= self.probation <= max(self.n, 0):
            raise InvalidInput(
                f"NAB series {self.name!r}: {self.n} rows, probation {self.probation}",
                field="probation",
            )
        prev = -1
        for first, last in self.windows:
            if not (prev < first <= last < self.n):
                raise InvalidInput(
                    f"NAB series {self.name!r}: window rows ({first}, {last}) must be sorted, "
                    f"disjoint and within 0..{self.n - 1}",
                    field="windows",
                )
            prev = last

    @classmethod
    def with_probation(
        cls,
        n: int,
        windows: Sequence[tuple[int, int]],
        fraction: float = NAB_PROBATION,
        name: str = "",
    ) -> NabSeries:
        """The series with NAB's probation period (:func:`nab_probation_rows`)."""
        return cls(
            n, tuple((int(a), int(b)) for a, b in windows), nab_probation_rows(n, fraction), name
        )

    @property
    def scorable(self) -> list[int]:
        """Windows that end after the probation period (the others are never scored)."""
        return [k for k, (_, last) in enumerate(self.windows) if last >= self.probation]

    def row_values(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per row (every row, or ``rows``): its window (-1 outside) and its unweighted value: the
        reward of a detection there inside a window (1 at the left edge, towards 0 at the right),
        the cost (-1 .. 0) outside, scaled by the distance to the closest preceding window."""
        rows = (
            np.arange(self.n, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        )
        win = np.full(len(rows), -1, dtype=np.int64)
        val = np.full(len(rows), -1.0)
        if not self.windows or not len(rows):
            return win, val
        firsts = np.array([first for first, _ in self.windows], dtype=np.int64)
        rights = np.array([last for _, last in self.windows], dtype=np.int64)
        k = np.searchsorted(firsts, rows, side="right") - 1  # the last window starting at or before
        inside = (k >= 0) & (rows <= rights[np.maximum(k, 0)])
        ki, ri = k[inside], rows[inside]
        width = (rights[ki] - firsts[ki] + 1).astype(np.float64)
        win[inside] = ki
        val[inside] = _nab_sigmoid(-(rights[ki] - ri + 1) / width) / _NAB_LEFT_EDGE
        outside = ~inside
        prev = (
            np.searchsorted(rights, rows[outside], side="left") - 1
        )  # the last window ending before
        has = prev >= 0
        r, j = rows[outside][has], prev[has]
        denom = (rights[j] - firsts[j]).astype(np.float64)  # width - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.where(
                denom > 0, np.abs(r - rights[j]) / np.where(denom > 0, denom, 1.0), np.inf
            )
        out_val = val[outside]
        out_val[has] = _nab_sigmoid(dist)
        val[outside] = out_val
        return win, val


@dataclass(frozen=True)
class NabScore:
    """One profile's NAB score of a set of series at one threshold."""

    profile: str
    threshold: float
    """A row is a detection when its score is >= this (``inf``: nothing detected)."""
    raw: float
    null: float
    perfect: float
    windows: int
    detected_windows: int
    detections: int
    false_detections: int
    swept: bool = False

    @property
    def normalized(self) -> float | None:
        """``100 (raw - null) / (perfect - null)``: 0 for a detector that never fires, 100 for a
        perfect one; ``None`` without windows."""
        if self.perfect == self.null:
            return None
        return 100.0 * (self.raw - self.null) / (self.perfect - self.null)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "score": self.normalized,
            "raw": self.raw,
            "null": self.null,
            "perfect": self.perfect,
            "threshold": None if math.isinf(self.threshold) else self.threshold,
            "swept": self.swept,
            "windows": self.windows,
            "detected_windows": self.detected_windows,
            "detections": self.detections,
            "false_detections": self.false_detections,
        }


class _NabCorpus:
    """The scored (post-probation) rows of every series, flattened: score, window, value."""

    def __init__(self, series: Sequence[NabSeries], scores: Sequence[Any]) -> None:
        if len(series) != len(scores):
            raise InvalidInput(
                f"{len(series)} NAB series but {len(scores)} score arrays", field="scores"
            )
        s_parts, g_parts, v_parts = [], [], []
        offset = 0
        self.scorable: list[int] = []
        self.windows_total = 0
        for ser, sc in zip(series, scores, strict=True):
            arr = np.asarray(sc, dtype=np.float64)
            if arr.shape != (ser.n,):
                raise InvalidInput(
                    f"NAB series {ser.name!r}: {ser.n} rows but {arr.size} scores", field="scores"
                )
            arr = np.where(np.isnan(arr), 0.0, arr)  # no score: no detection
            win, val = ser.row_values()
            p = ser.probation
            g = win[p:]
            s_parts.append(arr[p:])
            g_parts.append(np.where(g >= 0, g + offset, -1))
            v_parts.append(val[p:])
            self.scorable.extend(k + offset for k in ser.scorable)
            offset += len(ser.windows)
        self.windows_total = offset
        self.S = np.concatenate(s_parts) if s_parts else np.empty(0)
        self.G = np.concatenate(g_parts) if g_parts else np.empty(0, dtype=np.int64)
        self.V = np.concatenate(v_parts) if v_parts else np.empty(0)

    def null_perfect(self, p: NabProfile) -> tuple[float, float]:
        # as NAB: a window inside the probation period costs nothing missed, yet counts in perfect
        return -p.fn_weight * len(self.scorable), p.tp_weight * self.windows_total

    def at(self, p: NabProfile, threshold: float, swept: bool = False) -> NabScore:
        flags = self.S >= threshold
        inside = self.G >= 0
        fp = flags & ~inside
        raw = float(p.fp_weight * self.V[fp].sum())
        best = np.full(max(self.windows_total, 1), -np.inf)
        hit = flags & inside
        np.maximum.at(best, self.G[hit], self.V[hit])
        detected = 0
        for k in self.scorable:
            if best[k] > -np.inf:
                raw += p.tp_weight * best[k]
                detected += 1
            else:
                raw -= p.fn_weight
        null, perfect = self.null_perfect(p)
        return NabScore(
            profile=p.name,
            threshold=threshold,
            raw=float(raw),
            null=null,
            perfect=perfect,
            windows=len(self.scorable),
            detected_windows=detected,
            detections=int(flags.sum()),
            false_detections=int(fp.sum()),
            swept=swept,
        )

    def best_threshold(self, p: NabProfile) -> float:
        """The threshold of the highest raw score over every distinct score (ties: the highest
        threshold; ``inf`` when never firing is best)."""
        n = len(self.S)
        if n == 0:
            return math.inf
        order = np.argsort(-self.S, kind="stable")
        s_sorted = self.S[order]
        g = self.G[order]
        v = self.V[order]
        delta = np.where(g < 0, p.fp_weight * v, 0.0)
        best: dict[int, float] = {}
        for i in np.flatnonzero(g >= 0).tolist():
            k = int(g[i])
            val = p.tp_weight * float(v[i])
            b = best.get(k)
            if b is None:
                delta[i] = val + p.fn_weight
                best[k] = val
            elif val > b:
                delta[i] = val - b
                best[k] = val
        null, _ = self.null_perfect(p)
        total = null + np.cumsum(delta)
        ends = np.flatnonzero(np.append(s_sorted[1:] != s_sorted[:-1], True))
        j = int(np.argmax(total[ends]))  # the first maximum: the highest threshold
        if total[ends][j] > null:
            return float(s_sorted[ends[j]])
        return math.inf


def nab_score(
    series: Sequence[NabSeries],
    scores: Sequence[Any],
    *,
    threshold: float | None = 0.5,
    profiles: Sequence[NabProfile] = NAB_PROFILES,
) -> dict[str, NabScore]:
    """NAB score per profile of ``scores`` (one array per series, one value per row).

    A row is a detection when its score is ``>= threshold``. ``threshold=None`` sweeps: each
    profile gets the threshold (among the distinct scores) that maximises its raw score over
    all the series together, as NAB's published board does. NaN scores are no detection.
    """
    corpus = _NabCorpus(series, scores)
    out: dict[str, NabScore] = {}
    for p in profiles:
        if threshold is None:
            out[p.name] = corpus.at(p, corpus.best_threshold(p), swept=True)
        else:
            out[p.name] = corpus.at(p, float(threshold))
    return out


def nab_score_rows(
    series: Sequence[NabSeries],
    rows: Sequence[Any],
    *,
    profiles: Sequence[NabProfile] = NAB_PROFILES,
) -> dict[str, NabScore]:
    """:func:`nab_score` of detections given as row numbers (one sequence per series): the
    same scores, in memory proportional to the detections, not the rows (``threshold`` 0.5)."""
    if len(series) != len(rows):
        raise InvalidInput(f"{len(series)} NAB series but {len(rows)} row lists", field="rows")
    parts = []
    for ser, r in zip(series, rows, strict=True):
        r = np.unique(np.asarray(r, dtype=np.int64))
        if len(r) and (r[0] < 0 or r[-1] >= ser.n):
            raise InvalidInput(
                f"NAB series {ser.name!r}: detection rows must be within 0..{ser.n - 1}",
                field="rows",
            )
        r = r[r >= ser.probation]
        parts.append((ser, *ser.row_values(r)))
    windows_total = sum(len(ser.windows) for ser in series)
    scorable = sum(len(ser.scorable) for ser in series)
    out: dict[str, NabScore] = {}
    for p in profiles:
        raw, detected, detections, false = 0.0, 0, 0, 0
        for ser, win, val in parts:
            fp = win < 0
            raw += p.fp_weight * float(val[fp].sum())
            best = np.full(max(len(ser.windows), 1), -np.inf)
            np.maximum.at(best, win[~fp], val[~fp])
            for k in ser.scorable:
                if best[k] > -np.inf:
                    raw += p.tp_weight * float(best[k])
                    detected += 1
                else:
                    raw -= p.fn_weight
            detections += len(win)
            false += int(fp.sum())
        out[p.name] = NabScore(
            profile=p.name,
            threshold=0.5,
            raw=raw,
            null=-p.fn_weight * scorable,
            perfect=p.tp_weight * windows_total,
            windows=scorable,
            detected_windows=detected,
            detections=detections,
            false_detections=false,
        )
    return out


# -------------------------------------------------------------------- NAB score of stored anomalies

MAX_NAB_ROWS = 1_000_000_000
"""At most this many grid rows (30 years at 1 s): beyond, the range or step is a mistake."""


@dataclass
class NabSeriesResult:
    """One series of a :class:`NabEvaluation`: its incidents and its standard-profile score."""

    labels: Mapping[str, str]
    labelled: bool
    windows: int
    detected_windows: int
    incidents: int
    false_incidents: int
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "series": series_key(self.labels),
            "labelled": self.labelled,
            "windows": self.windows,
            "detected_windows": self.detected_windows,
            "incidents": self.incidents,
            "false_incidents": self.false_incidents,
            "standard": self.score,
        }


@dataclass
class NabEvaluation:
    """The NAB score of stored anomalies: incident onsets on a grid of ``step`` seconds."""

    profiles: dict[str, NabScore]
    series: list[NabSeriesResult]
    step: float
    resolve_after: int
    probation: float
    grid_start: float | None
    rows: int

    @property
    def incidents(self) -> int:
        return sum(s.incidents for s in self.series)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step_seconds": self.step,
            "resolve_after": self.resolve_after,
            "probation": self.probation,
            "grid_start": None if self.grid_start is None else _rfc3339(self.grid_start),
            "rows": self.rows,
            "incidents": self.incidents,
            "profiles": {k: v.to_dict() for k, v in self.profiles.items()},
            "series": [s.to_dict() for s in self.series],
        }


def incident_onsets(times: Iterable[float], step: float, resolve_after: int) -> list[float]:
    """The times at which incidents open, for the anomalous points ``times`` of ONE series
    sampled every ``step`` seconds (:func:`aiops.incidents.onsets`: more than ``resolve_after``
    steps without an anomalous point start a new incident)."""
    ts = np.unique(np.asarray(list(times), dtype=np.float64))
    if len(ts) == 0:
        return []
    rows = np.floor((ts - ts[0]) / step + 1e-6).astype(np.int64)
    flags = np.zeros(int(rows[-1]) + 1, dtype=bool)
    flags[rows] = True
    first_at = {}
    for r, t in zip(rows.tolist(), ts.tolist(), strict=True):
        first_at.setdefault(r, t)
    return [first_at[int(r)] for r in onsets(flags, resolve_after)]


def nab_evaluate(
    labels: Labels,
    detections: Iterable[tuple[Mapping[str, str], Any]],
    *,
    step: float,
    resolve_after: int | None = None,
    start: float | None = None,
    end: float | None = None,
    probation: float = 0.0,
    profiles: Sequence[NabProfile] = NAB_PROFILES,
) -> NabEvaluation:
    """NAB score of stored anomalies (``(labels, time)`` pairs) against ``labels``, counting
    each incident onset as one detection (definitions in docs/evaluation.md, "NAB score").

    The anomalies of each detected series are grouped into incidents (``resolve_after``
    steps, default :data:`aiops.incidents.DEFAULT_RESOLVE_AFTER`). Every series is scored on
    one grid of ``step`` seconds over ``[start, end)`` (default: from the first window start
    or anomaly to the last window end or anomaly); windows become the grid rows they cover
    (clipped to the grid); the first ``probation`` fraction of the rows is not scored (NAB's
    benchmark uses 0.15). Detected series that match no label set are scored as series
    without windows."""
    if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
        raise InvalidInput(f"step must be > 0 seconds, got {step!r}", field="step")
    r = check_resolve_after(DEFAULT_RESOLVE_AFTER if resolve_after is None else resolve_after)
    nab_probation_rows(0, probation)  # checks the fraction
    if start is not None and end is not None and end <= start:
        raise InvalidInput("end must be after start", field="end")
    lo = -math.inf if start is None else start
    hi = math.inf if end is None else end

    labelled = list(labels.series)
    by_series: dict[str, tuple[dict[str, str], list[float]]] = {}
    for det_labels, ts in detections:
        t = _seconds(ts)
        if lo <= t < hi:
            lab = {str(k): str(v) for k, v in det_labels.items()}
            by_series.setdefault(series_key(lab), (lab, []))[1].append(t)
    onset_times: dict[int, list[float]] = {i: [] for i in range(len(labelled))}
    extra: list[tuple[dict[str, str], list[float]]] = []
    for key in sorted(by_series):
        lab, ts_list = by_series[key]
        hits = [i for i, s in enumerate(labelled) if s.matches(lab)]
        if len(hits) > 1:
            names = " and ".join("{" + labelled[i].key + "}" for i in hits)
            raise InvalidInput(
                f"labels file {labels.source}: series {{{key}}} matches both {names}; make the "
                "label sets more specific",
                field="labels",
                file=labels.source,
            )
        found = incident_onsets(ts_list, step, r)
        if hits:
            onset_times[hits[0]].extend(found)
        else:
            extra.append((lab, found))

    # the grid: aligned to multiples of the step, as range queries are
    edges = [w.start for s in labelled for w in s.windows] + [
        w.end for s in labelled for w in s.windows
    ]
    dets = [t for _, ts_list in by_series.values() for t in ts_list]
    first = start if start is not None else min([*edges, *dets], default=None)
    last = end if end is not None else max([*edges, *(t + step for t in dets)], default=None)
    if first is None or last is None:  # nothing to place: no windows, no anomalies
        first = last = 0.0
    g0 = math.floor(first / step + 1e-9) * step
    n = max(0, math.ceil((last - g0) / step - 1e-9))
    if n > MAX_NAB_ROWS:
        raise InvalidInput(
            f"the range holds {n:,} steps of {step:g}s, more than {MAX_NAB_ROWS:,}; pass a "
            "shorter --start/--end",
            field="start",
        )
    p_rows = nab_probation_rows(n, probation)

    def rows_of(times: list[float]) -> np.ndarray:
        idx = np.floor((np.asarray(times, dtype=np.float64) - g0) / step + 1e-6).astype(np.int64)
        return np.unique(idx[(idx >= 0) & (idx < n)])

    series: list[NabSeries] = []
    scores: list[np.ndarray] = []  # detection rows per series
    meta: list[tuple[Mapping[str, str], bool]] = []
    for i, s in enumerate(labelled):
        wins: list[tuple[int, int]] = []
        for w in s.windows:
            a = max(0, math.ceil((w.start - g0) / step - 1e-9))
            b = min(n - 1, max(a, math.ceil((w.end - g0) / step - 1e-9) - 1))
            if wins and a <= wins[-1][1]:
                a = wins[-1][1] + 1  # a window shorter than a step touching the previous one
            if a <= b:
                wins.append((a, b))
        series.append(NabSeries(n, tuple(wins), p_rows, s.key))
        scores.append(rows_of(onset_times[i]))
        meta.append((s.labels, True))
    for lab, found in extra:
        series.append(NabSeries(n, (), p_rows, series_key(lab)))
        scores.append(rows_of(found))
        meta.append((lab, False))
    overall = nab_score_rows(series, scores, profiles=profiles)
    results = []
    std = next((p for p in profiles if p.name == "standard"), profiles[0])
    for ser, sc, (lab, is_labelled) in zip(series, scores, meta, strict=True):
        one = nab_score_rows([ser], [sc], profiles=(std,))[std.name]
        results.append(
            NabSeriesResult(
                labels=lab,
                labelled=is_labelled,
                windows=one.windows,
                detected_windows=one.detected_windows,
                incidents=one.detections,
                false_incidents=one.false_detections,
                score=one.normalized,
            )
        )
    return NabEvaluation(
        profiles=overall,
        series=results,
        step=float(step),
        resolve_after=r,
        probation=probation,
        grid_start=g0 if n else None,
        rows=n,
    )
