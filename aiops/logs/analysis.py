"""Batch log analysis: one frame in, one :class:`LogReport` out. Pure: no I/O.

``analyze(frame)`` runs, per chunk of lines:

1. the template miner's batch path (shape keys, one dictionary lookup per line, Drain only
   for new shapes), which also groups lines into *shapes*;
2. the structural extractors (level, error types) once per shape;
3. one RE2 pass for values (durations, sizes, HTTP statuses, numeric levels) and one for the
   anomaly patterns over the whole chunk (lines joined by ``\\n``);
4. numpy aggregation per template, per time bucket, per level, per error type/category.

:class:`LogAnalyzer` is the incremental form (``update(frame)`` per chunk of a big file,
then ``report()``); :func:`compare` turns two reports into log-anomaly events.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from aiops.errors import InvalidInput
from aiops.logs.errortypes import CATEGORIES, categorize, extract_error_types
from aiops.logs.events import (
    Events,
    exception_type,
    header_first_chars,
    join_events,
    strict_header,
)
from aiops.logs.frame import validate_frame
from aiops.logs.headers import HeaderModel, Split, compile_format, learn_headers
from aiops.logs.levels import LEVEL_CODE, LEVELS, UNKNOWN, detect_level
from aiops.logs.patterns import PatternSet, compile_patterns
from aiops.logs.shapes import encode_lines, line_bytes, line_starts_of, shape_scan
from aiops.logs.templates import MAX_LINE_CHARS, Cluster, TemplateMiner, template_logql
from aiops.logs.values import slot_values, value_slots
from aiops.timeutil import parse_seconds

__all__ = [
    "LogReport",
    "LogAnalyzer",
    "analyze",
    "change_events",
    "compare",
    "line_template_ids",
    "EVENT_TYPES",
]

logger = logging.getLogger(__name__)

EVENT_TYPES = ("log.new_template", "log.rate_jump", "log.new_error_type")
_CAT_BIT = {c: 1 << i for i, c in enumerate(CATEGORIES)}
_ERR_LO = LEVEL_CODE["error"]
_WARN = LEVEL_CODE["warn"]
_PCTS = (50.0, 90.0, 95.0, 99.0)
_MAX_BUCKETS = 10_000


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat().replace("+00:00", "Z")


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _to_ns(value: Any) -> int:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError("NaT")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def _stats(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {"count": 0}
    p50, p90, p95, p99 = np.percentile(values, _PCTS).tolist()
    return {
        "count": int(values.size),
        "mean": _round(float(values.mean())),
        "min": _round(float(values.min())),
        "p50": _round(p50),
        "p90": _round(p90),
        "p95": _round(p95),
        "p99": _round(p99),
        "max": _round(float(values.max())),
    }


_FRAMES = ("{}", "<*> {}", "<*>{}<*>")  # whole line, after a header, inside the line


def _top(counts: Mapping[str, int]) -> str | None:
    return max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0] if counts else None


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def _rate(count: float, seconds: float | None) -> float | None:
    return None if not seconds else _round(count / seconds)


@dataclass
class LogReport:
    """The result of :func:`analyze`. ``to_dict()`` gives plain JSON types.

    See docs/log-analysis.md for every key.
    """

    total_logs: int = 0
    error_count: int = 0
    anomaly_count: int = 0
    error_rate: float = 0.0
    anomaly_rate: float = 0.0
    pattern_counts: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)
    error_categories: dict[str, int] = field(default_factory=dict)
    performance: dict[str, Any] = field(default_factory=dict)
    templates: list[dict[str, Any]] = field(default_factory=list)
    time_distribution: dict[str, int] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    rates: dict[str, Any] = field(default_factory=dict)
    template_counts: dict[str, int] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, dict[str, int]] = field(default_factory=dict)
    header: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogReport:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class _ShapeFeatures:
    __slots__ = ("level", "numeric_level", "types", "catmask", "slots", "component", "framing")

    def __init__(self, line: str, split: Split | None = None) -> None:
        data = line_bytes(line)
        one = shape_scan(data, 1, runs=True)
        assert one.run_starts is not None and one.run_ends is not None
        self.slots = value_slots(data, one.run_starts, one.run_ends)
        head = line[:MAX_LINE_CHARS]
        level, numeric = detect_level(head)
        self.level = LEVEL_CODE[level]
        self.numeric_level = numeric
        self.types = tuple(extract_error_types(head))
        self.component: str | None = None
        # how the message sits in the line, for LogQL: 0 whole line, 1 after a header,
        # 2 inside (a JSON/logfmt field)
        self.framing = 0
        if split is not None and split.has_header:
            self.framing = 2 if split.embedded else 1
        if split is not None:
            header_level = split.fields.get("level")
            if header_level in LEVEL_CODE and not numeric:
                self.level = LEVEL_CODE[header_level]
            self.component = split.fields.get("component") or None
        mask = 0
        for t in self.types:
            mask |= _CAT_BIT[categorize(t)]
        self.catmask = mask


def _bucket_ns(bucket: Any) -> int:
    """A bucket width in nanoseconds: our durations (``"5m"``, ``"1h"``, ``"1d"``, seconds) as
    everywhere else, or a pandas frequency such as ``"5min"``; positive, else InvalidInput."""
    try:
        return int(round(parse_seconds(bucket, field="bucket") * 1e9))
    except InvalidInput:
        pass
    try:
        delta = pd.Timedelta(bucket)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid bucket {bucket!r}", field="bucket") from exc
    if delta <= pd.Timedelta(0):
        raise InvalidInput("bucket must be positive", field="bucket")
    return int(delta.value)


@dataclass
class _Tpl:
    id: str
    template: str
    examples: list[str]
    count: int = 0
    errors: int = 0
    anomalies: int = 0
    first: int = np.iinfo(np.int64).max
    last: int = np.iinfo(np.int64).min
    levels: np.ndarray = field(default_factory=lambda: np.zeros(len(LEVELS), np.int64))
    components: dict[str, int] = field(default_factory=dict)
    framing: int = -1


class _Messages(Sequence[str]):
    """The miner's view of a chunk: each event's *message* (header split off; for a
    multi-line event its first line's message plus the exception type its continuation
    names), computed only for the lines the miner reads (one per new shape, and examples)."""

    def __init__(
        self,
        lines: list[str],
        header: HeaderModel | None,
        keys: list[bytes],
        cache: dict[bytes, Split],
    ) -> None:
        self._lines = lines
        self._header = header
        self._keys = keys
        self._splits = cache  # per shape key, kept by the analyzer across chunks

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self._lines)))

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self._lines)))]
        return self.split_at(int(i)).message

    def split_at(self, i: int) -> Split:
        """The split of line ``i``; lines of one shape share the first one's (they differ
        only in digits and ids, so they split the same way)."""
        key = self._keys[i]
        got = self._splits.get(key)
        if got is None:
            got = self._splits[key] = _split_event(self._lines[i], self._header)
        return got


def _split_event(text: str, header: HeaderModel | None) -> Split:
    first = text.split("\n", 1)[0] if "\n" in text else text
    split = header.split(first) if header is not None else Split(first)
    if first is not text:
        exc = exception_type(text)
        if exc and exc not in split.message:
            split = Split(f"{split.message} {exc}", split.fields, split.has_header, split.embedded)
    return split


class LogAnalyzer:
    """Incremental analysis: ``update(frame)`` any number of times, then ``report()``.

    Memory: per template and per time bucket counters, plus 24 bytes per extracted duration
    or size (exact percentiles); lines are not kept.
    """

    def __init__(
        self,
        *,
        patterns: Any = None,
        bucket: str = "1h",
        miner: TemplateMiner | None = None,
        top_templates: int = 100,
        selector: str | None = None,
        logql_range: str = "5m",
        chunk_lines: int = 65_536,
        log_format: str | None = None,
        headers: bool = True,
        multiline: bool = True,
    ) -> None:
        self.patterns: PatternSet = compile_patterns(patterns)
        # the header shape: explicit, else learned from the first frame (None: not yet)
        self._header: HeaderModel | None = (
            compile_format(log_format) if log_format else None if headers else HeaderModel()
        )
        self.log_format = log_format
        self.multiline = bool(multiline)
        self.joined_lines = 0
        self._strict: bool | None = None  # lines without the header continue an event
        self._common: frozenset[str] | None = None
        self._shape_info: dict[bytes, _ShapeFeatures] = {}
        self._splits: dict[bytes, Split] = {}
        self.bucket = bucket
        self._bucket_ns = _bucket_ns(bucket)
        self.miner = miner if miner is not None else TemplateMiner()
        if not isinstance(self.miner, TemplateMiner):
            raise InvalidInput("miner must be a TemplateMiner", field="miner")
        if top_templates < 0:
            raise InvalidInput("top_templates must not be negative", field="top_templates")
        self.top_templates = top_templates
        if selector is not None:
            template_logql("x", selector, logql_range)  # validates selector and range early
        self.selector = selector
        self.logql_range = logql_range
        self.chunk_lines = max(1024, int(chunk_lines))
        self.total = 0
        self.errors = 0
        self.anomalies = 0
        self._levels = np.zeros(len(LEVELS), np.int64)
        self._pattern_counts = np.zeros(len(self.patterns), np.int64)
        self._types: dict[str, int] = {}
        self._cats = np.zeros(len(CATEGORIES), np.int64)
        self._tpl: list[_Tpl] = []
        self._tid: dict[str, int] = {}
        self._buckets: dict[int, list[int]] = {}
        self._min_ts: int | None = None
        self._max_ts: int | None = None
        self._dur: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._size: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        # per input row, the template index of its event (only when recording; see
        # line_template_ids)
        self._row_tids: list[np.ndarray] | None = None

    # -- feeding ------------------------------------------------------------------------------
    def update(self, frame: pd.DataFrame) -> LogAnalyzer:
        frame = validate_frame(frame)
        if len(frame) == 0:
            return self
        col = frame["line"]
        if col.dtype == object:  # e.g. from a source that did not use the str dtype
            needs_text = pd.api.types.infer_dtype(col, skipna=False) != "string"
        else:
            needs_text = bool(col.isna().any())
        if needs_text:  # missing -> "", anything else -> str()
            col = col.map(lambda x: x if isinstance(x, str) else "" if _missing(x) else str(x))
        lines = col.tolist()
        ts = frame["timestamp"].array.asi8
        if self._header is None:
            self._header = learn_headers(lines)
            logger.debug("log header learned: %s", self._header.describe())
        events = self._events(lines, frame)
        flat = lines
        if events.joined:
            lines = flat = events.texts
            ts = ts[events.first_row]
            self.joined_lines += events.joined
            multi = np.flatnonzero(np.diff(np.append(events.first_row, len(events.row_event))) > 1)
            if multi.size:  # the batch path reads inner newlines as spaces
                flat = list(lines)
                for e in multi.tolist():
                    flat[e] = flat[e].replace("\n", " ")
        mark = None if self._row_tids is None else len(self._row_tids)
        for start in range(0, len(lines), self.chunk_lines):
            end = start + self.chunk_lines
            self._chunk(lines[start:end], np.ascontiguousarray(ts[start:end]), flat[start:end])
        if self._row_tids is not None and mark is not None and events.joined:
            per_event = np.concatenate(self._row_tids[mark:])
            del self._row_tids[mark:]
            self._row_tids.append(per_event[events.row_event])
        return self

    def _events(self, lines: list[str], frame: pd.DataFrame) -> Events:
        if not self.multiline or len(lines) < 2:
            idx = np.arange(len(lines), dtype=np.int64)
            return Events(lines, idx, idx, 0)
        streams = frame["labels"].to_numpy() if "labels" in frame.columns else None
        if self._strict is None:
            self._strict = strict_header(lines, self._header)
            self._common = header_first_chars(lines, self._header) if self._strict else frozenset()
        return join_events(
            lines, header=self._header, streams=streams, strict=self._strict, common=self._common
        )

    def _fold_merged(self) -> None:
        """Fold the counters of templates the miner has since merged into the template they
        merged into (``TemplateMiner.resolve``), so a merge in a later chunk or window does
        not leave the report with two rows for one template."""
        remap = np.arange(len(self._tpl), dtype=np.int64)
        moved = False
        for tid, tpl in enumerate(self._tpl):
            live = self.miner.resolve(tpl.id)
            if live == tpl.id:
                continue
            target = self._tid.get(live)
            del self._tid[tpl.id]
            if target is None:  # the survivor has no row here yet: this row becomes it
                tpl.id = live
                self._tid[live] = tid
                continue
            dst = self._tpl[target]
            dst.count += tpl.count
            dst.errors += tpl.errors
            dst.anomalies += tpl.anomalies
            dst.first = min(dst.first, tpl.first)
            dst.last = max(dst.last, tpl.last)
            dst.levels = dst.levels + tpl.levels
            for comp, count in tpl.components.items():
                dst.components[comp] = dst.components.get(comp, 0) + count
            for example in tpl.examples:
                if len(dst.examples) < self.miner.max_examples and example not in dst.examples:
                    dst.examples.append(example)
            if dst.framing < 0:
                dst.framing = tpl.framing
            tpl.count = tpl.errors = tpl.anomalies = 0
            tpl.id = f"{tpl.id}@merged"
            remap[tid] = target
            moved = True
        if not moved:
            return
        self._dur = [(v, remap[t], b) for v, t, b in self._dur]
        self._size = [(v, remap[t], b) for v, t, b in self._size]
        if self._row_tids is not None:
            self._row_tids = [remap[t] for t in self._row_tids]

    def _tid_of(self, cluster: Cluster) -> int:
        tid = self._tid.get(cluster.id)
        if tid is None:
            tid = len(self._tpl)
            self._tid[cluster.id] = tid
            self._tpl.append(_Tpl(cluster.id, cluster.template, []))
        else:
            self._tpl[tid].template = cluster.template
        return tid

    def _chunk(self, lines: list[str], ts: np.ndarray, flat: list[str] | None = None) -> None:
        n = len(lines)
        blob = encode_lines(lines if flat is None else flat)
        scan = shape_scan(blob, n, runs=True)
        if len(self._splits) > self.miner.cache_size:
            self._splits.clear()
        view = _Messages(lines, self._header, scan.keys, self._splits)
        batch = self.miner.add_batch(view, ts, keys=scan.keys)
        assert batch.shape_lo is not None and batch.shape_hi is not None
        shapes, codes, order, bounds = batch.shapes, batch.line_shape, batch.order, batch.bounds
        nshapes = len(shapes)
        shape_counts = np.diff(bounds)

        # structural features, once per shape, from the raw text (and its header fields)
        s_level = np.empty(nshapes, np.int8)
        s_cat = np.zeros(nshapes, np.uint8)
        shape_slots = []
        numeric = False
        if len(self._shape_info) > self.miner.cache_size:
            self._shape_info.clear()
        first_line = order[bounds[:-1]].tolist()
        s_comp: list[str | None] = []
        s_frame: list[int] = []
        keys = scan.keys
        info = self._shape_info
        for u in range(nshapes):
            i = first_line[u]
            feat = info.get(keys[i])
            if feat is None:
                feat = info[keys[i]] = _ShapeFeatures(lines[i], view.split_at(i))
            s_comp.append(feat.component)
            s_frame.append(feat.framing)
            s_level[u] = feat.level
            s_cat[u] = feat.catmask
            numeric = numeric or feat.numeric_level
            for t in feat.types:
                self._types[t] = self._types.get(t, 0) + int(shape_counts[u])
            shape_slots.append(feat.slots)
        level = s_level[codes]

        # values: per shape slots, read for all its lines at once
        assert scan.run_starts is not None and scan.run_ends is not None
        assert scan.line_first_run is not None
        values = slot_values(
            blob, scan.run_starts, scan.run_ends, scan.line_first_run, order, bounds, shape_slots
        )
        if numeric and values.level_line.size:
            level[values.level_line] = values.level_code
        catmask = None
        if values.status.size:
            catmask = s_cat[codes]
            key = np.unique(values.status_line * 1000 + values.status)
            sl, st = key // 1000, key % 1000
            for code, cnt in zip(*np.unique(st, return_counts=True)):
                name = f"http_{int(code)}"
                self._types[name] = self._types.get(name, 0) + int(cnt)
            cls_key = np.unique(sl * 10 + st // 100)
            for cls, cnt in zip(*np.unique(cls_key % 10, return_counts=True)):
                name = f"http_{int(cls)}xx"
                self._types[name] = self._types.get(name, 0) + int(cnt)
            for code in np.unique(st).tolist():
                bit = _CAT_BIT[categorize(f"http_{code}")]
                np.bitwise_or.at(catmask, sl[st == code], np.uint8(bit))
            unknown = level[sl] == UNKNOWN
            five = st >= 500
            level[sl[unknown & ~five]] = _WARN
            level[sl[unknown & five]] = _ERR_LO
        if catmask is not None:
            for i in range(len(CATEGORIES)):
                self._cats[i] += int(np.count_nonzero(catmask & np.uint8(1 << i)))
        else:
            for i in range(len(CATEGORIES)):
                hit = (s_cat & np.uint8(1 << i)) != 0
                if hit.any():
                    self._cats[i] += int(shape_counts[hit].sum())

        is_err = (level >= _ERR_LO) & (level != UNKNOWN)

        # patterns
        anomalous = None
        if len(self.patterns):
            p_lines, p_ids = self.patterns.scan(blob, line_starts_of(blob))
            if p_lines.size:
                anomalous = np.zeros(n, bool)
                anomalous[p_lines] = True
                self._pattern_counts += np.bincount(p_ids, minlength=len(self.patterns))

        # totals
        self.total += n
        n_err = int(is_err.sum())
        n_anom = 0 if anomalous is None else int(anomalous.sum())
        self.errors += n_err
        self.anomalies += n_anom
        self._levels += np.bincount(level, minlength=len(LEVELS))
        lo, hi = int(batch.shape_lo.min()), int(batch.shape_hi.max())
        self._min_ts = lo if self._min_ts is None else min(self._min_ts, lo)
        self._max_ts = hi if self._max_ts is None else max(self._max_ts, hi)

        # templates: per shape first, then folded into templates (few rows)
        shape_tid = np.fromiter(
            (self._tid_of(cluster) for cluster in batch.shape_templates()),
            np.int64,
            nshapes,
        )
        ntpl = len(self._tpl)
        nlev = len(LEVELS)
        s_err = np.bincount(codes[is_err], minlength=nshapes) if n_err else None
        s_anom = np.bincount(codes[anomalous], minlength=nshapes) if n_anom else None
        s_lev = np.bincount(codes.astype(np.int64) * nlev + level, minlength=nshapes * nlev)
        t_lev = np.zeros((ntpl, nlev), np.int64)
        np.add.at(t_lev, shape_tid, s_lev.reshape(nshapes, nlev))
        t_cnt = np.bincount(shape_tid, weights=shape_counts, minlength=ntpl)
        t_err = np.bincount(shape_tid, weights=s_err, minlength=ntpl) if s_err is not None else None
        t_anom = (
            np.bincount(shape_tid, weights=s_anom, minlength=ntpl) if s_anom is not None else None
        )
        t_first = np.full(ntpl, np.iinfo(np.int64).max, np.int64)
        t_last = np.full(ntpl, np.iinfo(np.int64).min, np.int64)
        np.minimum.at(t_first, shape_tid, batch.shape_lo)
        np.maximum.at(t_last, shape_tid, batch.shape_hi)
        if self._row_tids is not None:
            self._row_tids.append(shape_tid[codes])
        for u, comp in enumerate(s_comp):
            tpl = self._tpl[int(shape_tid[u])]
            room = self.miner.max_examples - len(tpl.examples)
            if room > 0:  # raw lines (the miner keeps messages)
                lo = int(bounds[u])
                hi = min(lo + 4 * self.miner.max_examples, int(bounds[u + 1]))
                for i in order[lo:hi].tolist():
                    if len(tpl.examples) >= self.miner.max_examples:
                        break
                    example = lines[i][:MAX_LINE_CHARS]  # a whole stack trace is bounded too
                    if example not in tpl.examples:
                        tpl.examples.append(example)
            if tpl.framing < 0:
                tpl.framing = s_frame[u]
            if comp is not None:
                tpl.components[comp] = tpl.components.get(comp, 0) + int(shape_counts[u])
        for tid in np.unique(shape_tid).tolist():
            tpl = self._tpl[tid]
            tpl.count += int(t_cnt[tid])
            if t_err is not None:
                tpl.errors += int(t_err[tid])
            if t_anom is not None:
                tpl.anomalies += int(t_anom[tid])
            tpl.first = min(tpl.first, int(t_first[tid]))
            tpl.last = max(tpl.last, int(t_last[tid]))
            tpl.levels += t_lev[tid]

        # time buckets
        bidx = np.floor_divide(ts, self._bucket_ns)
        b0 = int(bidx.min())
        span = int(bidx.max()) - b0 + 1
        if span <= 4 * n + 1024:
            rel = bidx - b0
            b_lines = np.bincount(rel, minlength=span)
            b_errs = np.bincount(rel[is_err], minlength=span) if n_err else np.zeros(span, np.int64)
            b_anom = (
                np.bincount(rel[anomalous], minlength=span) if n_anom else np.zeros(span, np.int64)
            )
            present = np.flatnonzero(b_lines)
            ub = present + b0
            b_lines, b_errs, b_anom = b_lines[present], b_errs[present], b_anom[present]
        else:  # timestamps spread over a huge range: sort instead
            ub, inv = np.unique(bidx, return_inverse=True)
            b_lines = np.bincount(inv, minlength=ub.size)
            b_errs = (
                np.bincount(inv[is_err], minlength=ub.size)
                if n_err
                else np.zeros(ub.size, np.int64)
            )
            b_anom = (
                np.bincount(inv[anomalous], minlength=ub.size)
                if n_anom
                else np.zeros(ub.size, np.int64)
            )
        for b, c, e, a in zip(ub.tolist(), b_lines.tolist(), b_errs.tolist(), b_anom.tolist()):
            acc = self._buckets.get(b)
            if acc is None:
                self._buckets[b] = [c, e, a]
            else:
                acc[0] += c
                acc[1] += e
                acc[2] += a

        # performance values
        if values.duration_ms.size:
            dl = values.duration_line
            self._dur.append((values.duration_ms, shape_tid[codes[dl]], bidx[dl]))
        if values.size_bytes.size:
            zl = values.size_line
            self._size.append((values.size_bytes, shape_tid[codes[zl]], bidx[zl]))

    # -- reporting ----------------------------------------------------------------------------
    def report(self, *, previous: Any = None, window: Any = None) -> LogReport:
        """Build the report. ``window``: ``(start, end)`` of the analysed period (used for
        rates and for listing empty buckets); default: first to last timestamp seen.
        ``previous``: an earlier report (or its dict) or a miner state, for ``changes``."""
        start_ns, end_ns = self._min_ts, self._max_ts
        if window is not None:
            try:
                ws, we = window
                start_ns, end_ns = _to_ns(ws), _to_ns(we)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(
                    "window must be a (start, end) pair of times", field="window"
                ) from exc
            if end_ns < start_ns:
                raise InvalidInput("window end is before its start", field="window")
        seconds = None
        if start_ns is not None and end_ns is not None and end_ns > start_ns:
            seconds = (end_ns - start_ns) / 1e9
        total = self.total

        # templates, most frequent first
        self._fold_merged()
        order = sorted(range(len(self._tpl)), key=lambda t: (-self._tpl[t].count, self._tpl[t].id))
        order = [t for t in order if self._tpl[t].count > 0]
        for t in order:  # pick up generalised template text
            live = self.miner.current_template(self._tpl[t].id)
            if live is not None:
                self._tpl[t].template = live
        listed = order[: self.top_templates]
        templates = []
        for t in listed:
            tpl = self._tpl[t]
            entry: dict[str, Any] = {
                "template_id": tpl.id,
                "template": tpl.template,
                "count": tpl.count,
                "share": _round(tpl.count / total) if total else 0.0,
                "error_count": tpl.errors,
                "anomaly_count": tpl.anomalies,
                "level": LEVELS[int(np.argmax(tpl.levels))],
                "first_seen": _iso(tpl.first),
                "last_seen": _iso(tpl.last),
                "rate_per_second": _rate(tpl.count, seconds),
                "examples": list(tpl.examples),
                "component": _top(tpl.components),
            }
            if self.selector is not None:
                framed = _FRAMES[max(tpl.framing, 0)].format(tpl.template)
                entry["logql"] = template_logql(framed, self.selector, self.logql_range)
            templates.append(entry)
        listed_lines = sum(self._tpl[t].count for t in listed)
        repeated = sum(self._tpl[t].count for t in order if self._tpl[t].count > 1)
        coverage = {
            "templates": len(order),
            "listed_templates": len(listed),
            "listed_share": _round(listed_lines / total) if total else 0.0,
            "repeated_share": _round(repeated / total) if total else 0.0,
        }

        # time distribution and rates
        keys = sorted(self._buckets)
        if keys and start_ns is not None and end_ns is not None:
            lo = min(keys[0], start_ns // self._bucket_ns)
            hi = max(keys[-1], end_ns // self._bucket_ns)
            if hi - lo < _MAX_BUCKETS:
                keys = list(range(lo, hi + 1))
        zero = [0, 0, 0]
        time_distribution = {}
        errors_by_bucket = {}
        anomalies_by_bucket = {}
        bucket_s = self._bucket_ns / 1e9
        for b in keys:
            c, e, a = self._buckets.get(b, zero)
            label = _iso(b * self._bucket_ns)
            time_distribution[label] = c
            errors_by_bucket[label] = e
            anomalies_by_bucket[label] = a
        peak = max(time_distribution.values(), default=0)
        rates = {
            "bucket": self.bucket,
            "lines_per_second": _rate(total, seconds),
            "errors_per_second": _rate(self.errors, seconds),
            "anomalies_per_second": _rate(self.anomalies, seconds),
            "peak_bucket_lines_per_second": _round(peak / bucket_s) if peak else 0.0,
            "errors_by_bucket": errors_by_bucket,
            "anomalies_by_bucket": anomalies_by_bucket,
            "patterns_per_second": {
                name: _rate(int(c), seconds)
                for name, c in zip(self.patterns.names, self._pattern_counts)
            },
        }

        report = LogReport(
            total_logs=total,
            error_count=self.errors,
            anomaly_count=self.anomalies,
            error_rate=_round(self.errors / total) if total else 0.0,
            anomaly_rate=_round(self.anomalies / total) if total else 0.0,
            pattern_counts={
                name: int(c) for name, c in zip(self.patterns.names, self._pattern_counts)
            },
            error_types=dict(sorted(self._types.items(), key=lambda kv: (-kv[1], kv[0]))),
            error_categories={c: int(n) for c, n in zip(CATEGORIES, self._cats) if n},
            performance=self._performance(order),
            templates=templates,
            time_distribution=time_distribution,
            levels={name: int(c) for name, c in zip(LEVELS, self._levels) if c},
            coverage=coverage,
            window={
                "start": _iso(start_ns),
                "end": _iso(end_ns),
                "seconds": seconds,
            },
            rates=rates,
            template_counts={self._tpl[t].id: self._tpl[t].count for t in order},
            components=self._components(order),
            header={
                "format": self._header.describe() if self._header is not None else "none",
                "explicit": self.log_format is not None,
                "joined_lines": self.joined_lines,
            },
        )
        if previous is not None:
            texts = {self._tpl[t].id: (self._tpl[t].template, self._tpl[t].errors) for t in order}
            report.changes = _compare(previous, report, texts=texts)
        return report

    def _components(self, order: list[int], top: int = 100) -> dict[str, dict[str, int]]:
        """Per component (logger): events, distinct templates and error events."""
        acc: dict[str, list[int]] = {}
        for t in order:
            tpl = self._tpl[t]
            for comp, count in tpl.components.items():
                row = acc.setdefault(comp, [0, 0, 0])
                row[0] += count
                row[1] += 1
                if tpl.count:
                    row[2] += round(tpl.errors * count / tpl.count)
        ranked = sorted(acc.items(), key=lambda kv: (-kv[1][0], kv[0]))[:top]
        return {c: {"count": v[0], "templates": v[1], "error_count": v[2]} for c, v in ranked}

    def _performance(self, order: list[int], top: int = 20) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, parts in (("durations_ms", self._dur), ("sizes_bytes", self._size)):
            if parts:
                vals = np.concatenate([p[0] for p in parts])
                tids = np.concatenate([p[1] for p in parts])
                bks = np.concatenate([p[2] for p in parts])
            else:
                vals = np.zeros(0)
                tids = np.zeros(0, np.int32)
                bks = np.zeros(0, np.int64)
            section: dict[str, Any] = {"overall": _stats(vals), "by_template": [], "by_bucket": {}}
            if vals.size:
                srt = np.argsort(tids, kind="stable")
                t_sorted, v_sorted = tids[srt], vals[srt]
                ut, first, cnt = np.unique(t_sorted, return_index=True, return_counts=True)
                best = np.argsort(-cnt, kind="stable")[:top]
                for i in best.tolist():
                    tpl = self._tpl[int(ut[i])]
                    chunk = v_sorted[first[i] : first[i] + cnt[i]]
                    section["by_template"].append(
                        {"template_id": tpl.id, "template": tpl.template, **_stats(chunk)}
                    )
                srt = np.argsort(bks, kind="stable")
                b_sorted, v_sorted = bks[srt], vals[srt]
                ub, first, cnt = np.unique(b_sorted, return_index=True, return_counts=True)
                for b, f, c in zip(ub.tolist(), first.tolist(), cnt.tolist()):
                    section["by_bucket"][_iso(b * self._bucket_ns)] = _stats(v_sorted[f : f + c])
            out[name] = section
        return out


def analyze(
    frame: pd.DataFrame,
    *,
    patterns: Any = None,
    bucket: str = "1h",
    miner: TemplateMiner | None = None,
    previous: Any = None,
    window: Any = None,
    selector: str | None = None,
    top_templates: int = 100,
    log_format: str | None = None,
) -> LogReport:
    """Analyse a log frame (see :mod:`aiops.logs.frame`).

    ``patterns``: named anomaly regexes (``None``: defaults; see :mod:`aiops.logs.patterns`).
    ``bucket``: time-distribution bucket (pandas duration, e.g. ``"1h"``, ``"5min"``).
    ``miner``: a :class:`TemplateMiner` to use and update (persist it for stable template ids
    and new-template detection across windows); default: a fresh one.
    ``previous``: an earlier report / report dict / miner state: fills ``changes``.
    ``window``: ``(start, end)`` of the period, for rates. ``selector``: a LogQL stream
    selector; when given each listed template carries ready-to-run LogQL.
    ``log_format``: an explicit header format (:func:`aiops.logs.headers.compile_format`);
    default: the header is learned from the lines.
    """
    analyzer = LogAnalyzer(
        patterns=patterns,
        bucket=bucket,
        miner=miner,
        selector=selector,
        top_templates=top_templates,
        log_format=log_format,
    )
    return analyzer.update(frame).report(previous=previous, window=window)


def line_template_ids(frame: pd.DataFrame, **analyzer_kwargs: Any) -> list[str]:
    """The template id of every input row of ``frame``, through the same code path as
    :func:`analyze` (``analyzer_kwargs`` go to :class:`LogAnalyzer`).

    One id per row, in row order; a row joined into a multi-line event gets its event's id.
    Meant for scoring grouping quality (benchmarks), not for the report.
    """
    analyzer = LogAnalyzer(**analyzer_kwargs)
    analyzer._row_tids = []
    analyzer.update(frame)
    analyzer._fold_merged()
    if not analyzer._row_tids:
        return []
    tids = np.concatenate(analyzer._row_tids)
    names = [tpl.id for tpl in analyzer._tpl]
    return [names[t] for t in tids.tolist()]


# ---------------------------------------------------------------------------------------------
# Comparison with a previous window
# ---------------------------------------------------------------------------------------------
def _as_previous(previous: Any) -> tuple[dict[str, int], float | None, dict[str, int] | None, bool]:
    """``(template_counts, seconds, error_types, is_window)`` from a report or a miner state."""
    if isinstance(previous, LogReport):
        previous = previous.to_dict()
    if isinstance(previous, TemplateMiner):
        previous = previous.state()
    if not isinstance(previous, Mapping):
        raise InvalidInput(
            "previous must be a log report, its dict, or a miner state", field="previous"
        )
    if "clusters" in previous and "version" in previous:
        counts = {str(c["id"]): int(c.get("count") or 0) for c in previous["clusters"]}
        return counts, None, None, False
    if "template_counts" not in previous and "templates" not in previous:
        raise InvalidInput("previous report has no templates", field="previous")
    counts = dict(previous.get("template_counts") or {})
    if not counts:
        counts = {t["template_id"]: int(t["count"]) for t in previous.get("templates") or []}
    seconds = (previous.get("window") or {}).get("seconds")
    return counts, seconds, dict(previous.get("error_types") or {}), True


def compare(
    previous: Any,
    current: Any,
    *,
    ratio: float = 3.0,
    min_count: int = 10,
) -> list[dict[str, Any]]:
    """Log-anomaly events between a previous window and the current one.

    ``previous``: a :class:`LogReport`, its dict, or a :meth:`TemplateMiner.state` (a state has
    cumulative counts and no error types, so it yields only ``log.new_template`` events).
    ``current``: a :class:`LogReport` or its dict.

    * ``log.new_template``: a template id absent before.
    * ``log.rate_jump``: a template seen before whose rate (count per window second; count
      when a window length is unknown) grew at least ``ratio`` times, with at least
      ``min_count`` lines now.
    * ``log.new_error_type``: an error type absent before.

    Severity: ``warning`` for new error types and for new/jumping templates with error lines
    (``critical`` when such a jump is 10x or more), otherwise ``info``.
    """
    return _compare(previous, current, ratio=ratio, min_count=min_count)


def change_events(
    source: str, at: datetime, report: Mapping[str, Any], flow_run_id: str | None
) -> list[dict[str, Any]]:
    """The report's changes (from :func:`compare`) as event rows of ``source`` at ``at`` (the
    window's end), ready for ``Store.commit_log_window``."""
    return [
        {
            "type": change["type"],
            "series_key": f"{source}|{change.get('template_id') or change.get('error_type') or ''}",
            "labels": {"source": source},
            "ts": at,
            "value": float(change.get("count") or 0),
            "severity": change.get("severity") or "info",
            "payload": dict(change),
            "flow_run_id": flow_run_id,
        }
        for change in report.get("changes") or []
    ]


def _compare(
    previous: Any,
    current: Any,
    *,
    ratio: float = 3.0,
    min_count: int = 10,
    texts: Mapping[str, tuple[str, int]] | None = None,
) -> list[dict[str, Any]]:
    if ratio <= 0 or min_count < 0:
        raise InvalidInput("ratio must be positive and min_count not negative", field="ratio")
    if isinstance(current, LogReport):
        current = current.to_dict()
    if not isinstance(current, Mapping):
        raise InvalidInput("current must be a log report or its dict", field="current")
    prev_counts, prev_seconds, prev_types, is_window = _as_previous(previous)
    cur_counts = dict(current.get("template_counts") or {}) or {
        t["template_id"]: int(t["count"]) for t in current.get("templates") or []
    }
    cur_seconds = (current.get("window") or {}).get("seconds")
    info = {
        t["template_id"]: (t["template"], int(t.get("error_count") or 0))
        for t in current.get("templates") or []
    }
    if texts:
        info = {**texts, **info}
    events: list[dict[str, Any]] = []
    for tid, count in sorted(cur_counts.items(), key=lambda kv: (-kv[1], kv[0])):
        template, errors = info.get(tid, (None, 0))
        before = prev_counts.get(tid)
        if before is None:
            events.append(
                {
                    "type": "log.new_template",
                    "template_id": tid,
                    "template": template,
                    "count": int(count),
                    "previous_count": 0,
                    "severity": "warning" if errors else "info",
                }
            )
            continue
        if not is_window or count < min_count:
            continue
        if prev_seconds and cur_seconds:
            prev_rate, cur_rate = before / prev_seconds, count / cur_seconds
        else:
            prev_rate, cur_rate = float(before), float(count)
        if prev_rate <= 0:
            continue
        jump = cur_rate / prev_rate
        if jump >= ratio:
            severity = "info"
            if errors:
                severity = "critical" if jump >= 10 else "warning"
            events.append(
                {
                    "type": "log.rate_jump",
                    "template_id": tid,
                    "template": template,
                    "count": int(count),
                    "previous_count": int(before),
                    "ratio": _round(jump),
                    "severity": severity,
                }
            )
    if prev_types is not None:
        for name, count in (current.get("error_types") or {}).items():
            if name not in prev_types:
                events.append(
                    {
                        "type": "log.new_error_type",
                        "error_type": name,
                        "category": categorize(name),
                        "count": int(count),
                        "previous_count": 0,
                        "severity": "warning",
                    }
                )
    return events
