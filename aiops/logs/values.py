"""Values in log lines: durations (ms), sizes (bytes), HTTP statuses and numeric levels.

A value regex (RE2, digit-length agnostic) runs once per *shape*, on its first line, and
records value *slots*: which digit runs of the line form a duration/size/status/level and
with which unit. Lines of one shape have the same digit runs in the same places, so the batch
path reads every line's values with numpy gathers (see ``slot_values``), never calling a
regex per line.

:func:`value_slots` and :func:`slot_values` are the batch path; :func:`extract_durations`,
:func:`extract_sizes` and :func:`extract_http_statuses` run the same rules on one line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import re2

from aiops.logs.levels import LEVEL_CODE, NUMERIC_LEVELS
from aiops.logs.patterns import re2_options, re2_spans
from aiops.logs.shapes import line_bytes, shape_scan

__all__ = [
    "Slot",
    "ValueScan",
    "extract_durations",
    "extract_http_statuses",
    "extract_sizes",
    "parse_duration_ms",
    "parse_size_bytes",
    "run_values",
    "slot_values",
    "value_slots",
]

_NUM = r"\d+(?:\.\d+)?"
_GO = r"\d+h\d+m\d+(?:\.\d+)?s|\d+h\d+m|\d+h\d+(?:\.\d+)?s|\d+m\d+(?:\.\d+)?s"
_TUNIT = (
    r"nanoseconds?|nsec|ns|microseconds?|usec|us|µs|μs|milliseconds?|millis|msec|ms"
    r"|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h"
)
_TUNIT_ATTACHED = (
    r"nanoseconds?|nsec|ns|microseconds?|usec|us|µs|μs|milliseconds?|millis|msec|ms"
    r"|seconds?|secs?|s|minutes?|mins?|hours?|hrs?|h"
)
_TUNIT_SPACED = (
    r"nanoseconds?|nsec|ns|microseconds?|usec|us|µs|μs|milliseconds?|millis|msec|ms"
    r"|seconds?|secs?|minutes?|mins?|hours?|hrs?"
)
_SUNIT = r"[KMGTP]i?B|kB|[KMGTP]i|bytes?|B|[KMGTkmgt]"
_SUNIT_FREE = r"[KMGTP]iB|[KMGTP]B|kB|[KMGTP]i|bytes"
_SEP = r"[\"']?\s*[=:]\s*[\"']?"
_DKEY = (
    r"(?i:duration|latency|elapsed|took|response_?time|request_?time"
    r"|upstream_(?:response|connect|header)_time|exec(?:ution)?_?time|processing_?time"
    r"|time_?taken|elapsed_?time|rtt|[a-z0-9_.]*_(?:ms|us|ns|sec|secs|seconds|millis|msec))"
    r"|[a-z][A-Za-z0-9]*(?:Ms|Millis|Seconds|Secs|Micros|Nanos)"
)
_BKEY = (
    r"(?i:bytes|bytes_(?:sent|received|in|out|read|written)|body_bytes_sent|content_?length"
    r"|[a-z0-9_.]*_(?:bytes|kb|mb|gb))|[a-z][A-Za-z0-9]*Bytes"
)
_ZKEY = (
    r"(?i:size|[a-z0-9_.]*_size|mem|memory|heap|rss|[a-z0-9_.]*_(?:mem|memory|heap))"
    r"|[a-z][A-Za-z0-9]*Size"
)
_STATUS_KEY = r"(?i:status|status_?code|http_?status|http\.status_code|response_?code|resp_?code)"

_VALUES_REGEX = (
    rf"\b(?P<dk>{_DKEY}){_SEP}(?P<dv>{_GO}|{_NUM})(?:\s?(?P<du>{_TUNIT}))?\b"
    rf"|\b(?P<bk>{_BKEY}){_SEP}(?P<bv>{_NUM})(?:\s?(?P<bu>{_SUNIT}))?\b"
    rf"|\b(?P<zk>{_ZKEY}){_SEP}(?P<zv>{_NUM})\s?(?P<zu>{_SUNIT})\b"
    rf"|\b(?P<g>{_GO})\b"
    rf"|\b(?P<fv>{_NUM})(?P<fu>{_TUNIT_ATTACHED})\b"
    rf"|\b(?P<sv>{_NUM}) (?P<su>{_TUNIT_SPACED})\b"
    rf"|\b(?P<yv>{_NUM}) ?(?P<yu>{_SUNIT_FREE})\b"
    rf"|HTTP/\d+(?:\.\d+)?\"?\s+(?P<hs>\d+)\b(?:\s+(?P<hb>\d+)\b)?"
    rf"|\b{_STATUS_KEY}{_SEP}(?P<ks>\d+)\b"
    rf"|\"\s(?P<cs>\d+)\s(?:\d+|-)\s"
    rf"|\"level\"\s*:\s*(?P<lv>\d+)\b"
)
_VALUES: Any = re2.compile(_VALUES_REGEX, re2_options())
_G = dict(_VALUES.groupindex)

_TIME_FACTOR = {
    "ns": 1e-6,
    "nsec": 1e-6,
    "nanosecond": 1e-6,
    "nanoseconds": 1e-6,
    "us": 1e-3,
    "µs": 1e-3,
    "μs": 1e-3,
    "usec": 1e-3,
    "microsecond": 1e-3,
    "microseconds": 1e-3,
    "ms": 1.0,
    "msec": 1.0,
    "millis": 1.0,
    "millisecond": 1.0,
    "milliseconds": 1.0,
    "s": 1e3,
    "sec": 1e3,
    "secs": 1e3,
    "second": 1e3,
    "seconds": 1e3,
    "m": 6e4,
    "min": 6e4,
    "mins": 6e4,
    "minute": 6e4,
    "minutes": 6e4,
    "h": 3.6e6,
    "hr": 3.6e6,
    "hrs": 3.6e6,
    "hour": 3.6e6,
    "hours": 3.6e6,
}
_SIZE_FACTOR = {
    "b": 1.0,
    "byte": 1.0,
    "bytes": 1.0,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "tb": 1e12,
    "pb": 1e15,
    "kib": 1024.0,
    "mib": 1024.0**2,
    "gib": 1024.0**3,
    "tib": 1024.0**4,
    "pib": 1024.0**5,
    "ki": 1024.0,
    "mi": 1024.0**2,
    "gi": 1024.0**3,
    "ti": 1024.0**4,
    "pi": 1024.0**5,
    "k": 1024.0,
    "m": 1024.0**2,
    "g": 1024.0**3,
    "t": 1024.0**4,
}
_SECONDS_KEYS = frozenset(
    {
        "request_time",
        "requesttime",
        "upstream_response_time",
        "upstream_connect_time",
        "upstream_header_time",
    }
)
_GO_PART = re.compile(rb"(\d+)(?:\.(\d+))?(h|ms|m|s|us|\xc2\xb5s|ns)")

DURATION, SIZE, STATUS, LEVEL = 0, 1, 2, 3


def _key_unit(key: str) -> float:
    """Milliseconds per unit of a unitless keyed duration (``duration_ms=12``)."""
    k = key.lower()
    if k in _SECONDS_KEYS:
        return 1e3
    if k.endswith(("millis", "msec", "ms")):
        return 1.0
    if k.endswith(("micros", "us")):
        return 1e-3
    if k.endswith(("nanos", "ns")):
        return 1e-6
    if k.endswith(("seconds", "secs", "sec")):
        return 1e3
    return 1.0  # unitless: milliseconds


def _byte_key_unit(key: str) -> float:
    k = key.lower()
    for suffix, factor in (("_kb", 1e3), ("_mb", 1e6), ("_gb", 1e9)):
        if k.endswith(suffix):
            return factor
    return 1.0


# A slot: (kind, terms); a term: (run ordinal within the line, factor, is_fraction).
Slot = tuple[int, tuple[tuple[int, float, bool], ...]]


def value_slots(data: bytes, run_starts: np.ndarray, run_ends: np.ndarray) -> list[Slot]:
    """The value slots of one line (``data``: its UTF-8 bytes; runs: its digit runs)."""
    if run_starts.size == 0:
        return []
    starts = run_starts.tolist()
    ends = run_ends.tolist()

    def ordinals(a: int, b: int) -> list[int]:
        return [k for k, (s, e) in enumerate(zip(starts, ends)) if s >= a and e <= b]

    def number(span: tuple[int, int], factor: float) -> tuple[tuple[int, float, bool], ...]:
        ks = ordinals(*span)
        if not ks or len(ks) > 2:
            return ()
        if len(ks) == 2:
            return ((ks[0], factor, False), (ks[1], factor, True))
        return ((ks[0], factor, False),)

    def go(span: tuple[int, int]) -> tuple[tuple[int, float, bool], ...]:
        a, _ = span
        terms: list[tuple[int, float, bool]] = []
        for m in _GO_PART.finditer(data, a, span[1]):
            unit = m.group(3).decode()
            factor = _TIME_FACTOR[unit]
            ks = ordinals(m.start(), m.end())
            if not ks:
                return ()
            terms.append((ks[0], factor, False))
            if m.group(2) is not None and len(ks) > 1:
                terms.append((ks[1], factor, True))
        return tuple(terms)

    def text(span: tuple[int, int]) -> str:
        return data[span[0] : span[1]].decode("utf-8", "replace")

    slots: list[Slot] = []
    for sp in re2_spans(_VALUES, data):

        def grp(name: str, sp: list[tuple[int, int]] = sp) -> tuple[int, int]:
            return sp[_G[name]]

        if grp("dv")[0] >= 0:
            dv = grp("dv")
            if any(c in text(dv) for c in "hms"):
                terms = go(dv)
            elif grp("du")[0] >= 0:
                terms = number(dv, _TIME_FACTOR[text(grp("du"))])
            else:
                terms = number(dv, _key_unit(text(grp("dk"))))
            slots.append((DURATION, terms))
        elif grp("bv")[0] >= 0:
            bu = grp("bu")
            factor = (
                _SIZE_FACTOR[text(bu).lower()] if bu[0] >= 0 else _byte_key_unit(text(grp("bk")))
            )
            slots.append((SIZE, number(grp("bv"), factor)))
        elif grp("zv")[0] >= 0:
            slots.append((SIZE, number(grp("zv"), _SIZE_FACTOR[text(grp("zu")).lower()])))
        elif grp("g")[0] >= 0:
            slots.append((DURATION, go(grp("g"))))
        elif grp("fv")[0] >= 0:
            slots.append((DURATION, number(grp("fv"), _TIME_FACTOR[text(grp("fu"))])))
        elif grp("sv")[0] >= 0:
            slots.append((DURATION, number(grp("sv"), _TIME_FACTOR[text(grp("su"))])))
        elif grp("yv")[0] >= 0:
            slots.append((SIZE, number(grp("yv"), _SIZE_FACTOR[text(grp("yu")).lower()])))
        elif grp("hs")[0] >= 0:
            slots.append((STATUS, number(grp("hs"), 1.0)))
            if grp("hb")[0] >= 0:
                slots.append((SIZE, number(grp("hb"), 1.0)))
        elif grp("ks")[0] >= 0:
            slots.append((STATUS, number(grp("ks"), 1.0)))
        elif grp("cs")[0] >= 0:
            slots.append((STATUS, number(grp("cs"), 1.0)))
        elif grp("lv")[0] >= 0:
            slots.append((LEVEL, number(grp("lv"), 1.0)))
    return [slot for slot in slots if slot[1]]


_POW10 = 10.0 ** np.arange(0, 309)


def run_values(blob: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Integer value (float64) and digit count of each digit run ``[starts, ends)``."""
    a = np.frombuffer(blob, np.uint8)
    lengths = ends - starts
    out = np.zeros(starts.size, np.float64)
    if starts.size == 0:
        return out
    longest = int(lengths.max())
    for k in range(min(longest, 309)):
        live = lengths > k
        idx = np.flatnonzero(live)
        digits = a[starts[idx] + k].astype(np.float64) - 48.0
        out[idx] += digits * _POW10[np.minimum(lengths[idx] - 1 - k, 308)]
    return out


@dataclass(slots=True)
class ValueScan:
    """Values of a batch; each ``*_line`` array holds the line index of its value."""

    duration_line: np.ndarray
    duration_ms: np.ndarray
    size_line: np.ndarray
    size_bytes: np.ndarray
    status_line: np.ndarray
    status: np.ndarray
    level_line: np.ndarray
    level_code: np.ndarray


def _segments(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``arange(start, start + length)`` ranges, and each element's offset."""
    total = int(lengths.sum())
    first = np.zeros(lengths.size, np.int64)
    np.cumsum(lengths[:-1], out=first[1:])
    offset = np.arange(total, dtype=np.int64) - np.repeat(first, lengths)
    return np.repeat(starts, lengths) + offset, offset


def slot_values(
    blob: bytes,
    run_starts: np.ndarray,
    run_ends: np.ndarray,
    line_first_run: np.ndarray,
    order: np.ndarray,
    bounds: np.ndarray,
    shape_slots: Sequence[Sequence[Slot]],
) -> ValueScan:
    """Read every slot of every line, vectorised over all shapes at once.

    ``order``/``bounds``: line indices grouped by shape (shape ``u``'s lines are
    ``order[bounds[u]:bounds[u+1]]``); ``shape_slots[u]``: the slots of shape ``u``.
    """
    v_shape: list[int] = []
    v_kind: list[int] = []
    t_val: list[int] = []
    t_ord: list[int] = []
    t_fac: list[float] = []
    t_frac: list[bool] = []
    for u, slots in enumerate(shape_slots):
        for kind, terms in slots:
            v = len(v_shape)
            v_shape.append(u)
            v_kind.append(kind)
            for ordinal, factor, frac in terms:
                t_val.append(v)
                t_ord.append(ordinal)
                t_fac.append(factor)
                t_frac.append(frac)
    empty_i = np.zeros(0, np.int64)
    empty_f = np.zeros(0, np.float64)
    if not v_shape:
        return ValueScan(
            empty_i, empty_f, empty_i, empty_f, empty_i, empty_i, empty_i, np.zeros(0, np.int8)
        )
    counts = np.diff(bounds).astype(np.int64)
    vs = np.asarray(v_shape, np.int64)
    v_len = counts[vs]
    v_base = np.zeros(vs.size, np.int64)
    np.cumsum(v_len[:-1], out=v_base[1:])
    n_values = int(v_len.sum())
    # one row per (value slot, line)
    v_pos, _ = _segments(bounds[vs], v_len)
    line = order[v_pos].astype(np.int64)
    kind = np.repeat(np.asarray(v_kind, np.int64), v_len)
    # one row per (term, line)
    tv = np.asarray(t_val, np.int64)
    t_shape = vs[tv]
    t_len = counts[t_shape]
    t_pos, t_off = _segments(bounds[t_shape], t_len)
    t_line = order[t_pos]
    run = line_first_run[t_line] + np.repeat(np.asarray(t_ord, np.int64), t_len)
    valid = run < line_first_run[t_line + 1]
    run = np.where(valid, run, 0)
    vid = np.repeat(v_base[tv], t_len) + t_off
    raw = run_values(blob, run_starts[run], run_ends[run])
    lengths = run_ends[run] - run_starts[run]
    frac = np.repeat(np.asarray(t_frac, bool), t_len)
    term = np.where(frac, raw / _POW10[np.minimum(lengths, 308)], raw)
    term *= np.repeat(np.asarray(t_fac, np.float64), t_len)
    value = np.bincount(vid, weights=term, minlength=n_values)
    if not valid.all():  # pragma: no cover - a shape always has the same digit runs
        kind[np.unique(vid[~valid])] = -1

    def pick(k: int) -> tuple[np.ndarray, np.ndarray]:
        sel = kind == k
        return line[sel], value[sel]

    d_line, d_val = pick(DURATION)
    z_line, z_val = pick(SIZE)
    s_line, s_val = pick(STATUS)
    s_int = s_val.astype(np.int64)
    keep = (s_int >= 400) & (s_int <= 599)
    l_line, l_val = pick(LEVEL)
    l_int = l_val.astype(np.int64)
    codes = np.full(l_int.size, -1, np.int8)
    for num, name in NUMERIC_LEVELS.items():
        codes[l_int == num] = LEVEL_CODE[name]
    lk = codes >= 0
    return ValueScan(
        duration_line=d_line,
        duration_ms=d_val,
        size_line=z_line,
        size_bytes=z_val,
        status_line=s_line[keep],
        status=s_int[keep],
        level_line=l_line[lk],
        level_code=codes[lk],
    )


def _one(line: str) -> ValueScan:
    data = line_bytes(line)
    scan = shape_scan(data, 1, runs=True)
    assert scan.run_starts is not None and scan.run_ends is not None
    assert scan.line_first_run is not None
    slots = value_slots(data, scan.run_starts, scan.run_ends)
    return slot_values(
        data,
        scan.run_starts,
        scan.run_ends,
        scan.line_first_run,
        np.zeros(1, np.int64),
        np.array([0, 1], np.int64),
        [slots],
    )


def extract_durations(line: str) -> list[float]:
    """Durations in a line, in milliseconds (same rules as the batch path)."""
    return _one(line).duration_ms.tolist()


def extract_sizes(line: str) -> list[float]:
    """Sizes in a line, in bytes (same rules as the batch path)."""
    return _one(line).size_bytes.tolist()


def extract_http_statuses(line: str) -> list[int]:
    """HTTP 4xx/5xx statuses in a line (same rules as the batch path)."""
    return _one(line).status.tolist()


def parse_duration_ms(text: str) -> float | None:
    """``"250ms"`` -> 250.0, ``"1m2.5s"`` -> 62500.0, ``"35 ms"``, ``"1.5 seconds"``..."""
    values = extract_durations(text.strip())
    return values[0] if len(values) == 1 else None


def parse_size_bytes(text: str) -> float | None:
    """``"1.5MB"`` -> 1.5e6, ``"512KiB"`` -> 524288.0."""
    values = extract_sizes(text.strip())
    return values[0] if len(values) == 1 else None
