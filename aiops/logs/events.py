"""Multi-line events: continuation lines joined to the line that starts their event.

A Java stack trace, a Python traceback or a Go panic is one event written as many lines.
Analysed line by line, its frames become templates of their own, its counts are inflated and
the exception type is cut off from the message that explains it. :func:`join_events` finds
the lines that continue an event and joins them (with ``\\n``) to the line before them:

* *strong* continuations, recognised by their start: an indented line (``\\tat ...``,
  ``  File "x.py", line 3``, Go's ``\\t/src/main.go:12 +0x1d``), ``Caused by:``,
  ``Suppressed:``, ``... 12 more``, ``Traceback (most recent call last):``, Python's
  ``During handling of the above exception...`` / ``The above exception was the direct
  cause...``, Go's ``goroutine 7 [running]:`` and ``created by ...``;
* an exception line (``java.net.ConnectException: refused``, ``KeyError: 'x'``), a Go
  function line (``main.main()``) or Go's ``[signal SIGSEGV ...]`` right after a
  continuation, or right before a strong continuation unless it carries the learned header;
* when the file has a header that nearly every line carries (see :mod:`aiops.logs.headers`),
  any line that does not carry it.

Only consecutive lines of one stream are joined (Loki interleaves streams; a file is one
stream). Events are bounded: at most ``max_lines`` lines and ``max_bytes`` characters, then
the next line starts a new event.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiops.logs.headers import HeaderModel, split_structured

__all__ = ["Events", "exception_type", "join_events", "MAX_EVENT_LINES", "MAX_EVENT_BYTES"]

MAX_EVENT_LINES = 200
MAX_EVENT_BYTES = 32_768
_SCAN_ROWS = 65_536

_STRONG = (
    "\t",
    " ",
    "Caused by:",
    "Suppressed:",
    "... ",
    "Traceback (most recent call last)",
    "During handling of the above exception",
    "The above exception was the direct cause",
    "goroutine ",
    "created by ",
)
_STRONG_FIRST = frozenset(p[0] for p in _STRONG)
_STRONG_BYTES = np.zeros(256, bool)
_STRONG_BYTES[[ord(c) for c in _STRONG_FIRST] + [10]] = True
_EXC_NAMES = r"(?:Error|Exception|Exit|Interrupt|Warning|Fault|Failure|Throwable|Panic)"
_EXC_LINE = re.compile(
    r"(?:Caused by: )?(?P<type>(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*"  # qualified
    r"|[A-Za-z_$][\w$]*" + _EXC_NAMES + r")(?::(?:\s|$)|$)"
)
_GO_FUNC = re.compile(r"[\w./*()-]+\.[\w*()-]+\(.*\)(?: \+0x[0-9a-f]+)?")
_PANIC = re.compile(r"(?:panic|fatal error): ")


@dataclass(frozen=True, slots=True)
class Events:
    """Rows grouped into events: ``texts[e]`` (rows joined by ``\\n``), ``first_row[e]``,
    ``row_event[r]`` (the event of each input row) and ``joined`` (rows that continued an
    event)."""

    texts: list[str]
    first_row: np.ndarray
    row_event: np.ndarray
    joined: int


def _single(lines: list[str]) -> Events:
    n = len(lines)
    idx = np.arange(n, dtype=np.int64)
    return Events(lines, idx, idx, 0)


def _is_strong(line: str) -> bool:
    return line.startswith(_STRONG)


def _exc_like(line: str) -> bool:
    return (
        bool(_EXC_LINE.match(line))
        or bool(_GO_FUNC.fullmatch(line))
        or line.startswith("[signal ")  # Go: between "panic:" and the goroutine dump
    )


def _continues(
    lines: Sequence[str], header: HeaderModel | None, strict_header: bool, common: frozenset[str]
) -> np.ndarray:
    """Per row: does it continue the event before it (ignoring streams)?"""
    n = len(lines)
    cont = np.zeros(n, bool)
    if n < 2:
        return cont
    # candidate rows from their first character, with numpy (ASCII; others read as "?")
    plain = common - _STRONG_FIRST
    ok_first = np.zeros(256, bool)
    if strict_header and common:
        ok_first[[ord(c) if ord(c) < 128 else ord("?") for c in plain]] = True
    idx: list[int] = []
    for lo in range(0, n, _SCAN_ROWS):  # bounded memory
        part = lines[lo : lo + _SCAN_ROWS]
        first = np.frombuffer(
            "".join([line[:1] or "\n" for line in part]).encode("ascii", "replace"), np.uint8
        )
        hit = _STRONG_BYTES[first]
        if strict_header and common:
            hit |= ~ok_first[first]
        idx.extend((np.flatnonzero(hit) + lo).tolist())
    strong = np.zeros(n, bool)
    for i in idx:
        line = lines[i]
        if line and _is_strong(line):
            strong[i] = True
        elif strict_header and header is not None and line and not _carries(header, line):
            cont[i] = True
    cont |= strong
    if not strong.any() and not cont.any():
        return cont
    # exception and Go function lines next to strong continuations
    near = np.flatnonzero(strong)
    check = set((near + 1).tolist()) | set((near - 1).tolist())
    learned = header is not None and header.learned
    for i in sorted(check):
        if i <= 0 or i >= n or cont[i]:
            continue
        line = lines[i]
        if not line or not _exc_like(line):
            continue
        before = bool(cont[i - 1])
        after = i + 1 < n and bool(strong[i + 1])
        if before or (after and not (learned and _carries(header, line))):
            cont[i] = True
            # a run "exc line, exc line" after a traceback: keep following
            j = i + 1
            while j + 1 < n and not cont[j] and lines[j] and _exc_like(lines[j]) and strong[j + 1]:
                cont[j] = True
                j += 1
    cont[0] = False
    return cont


def _carries(header: HeaderModel | None, line: str) -> bool:
    return header is not None and header.split(line).has_header


def header_first_chars(
    lines: Sequence[str], header: HeaderModel, sample: int = 2000
) -> frozenset[str]:
    """First characters of the sample lines that carry the header."""
    out: set[str] = set()
    for line in lines[:sample]:
        if line and line[0] not in out and _carries(header, line):
            out.add(line[0])
    return frozenset(out)


def strict_header(
    lines: Sequence[str], header: HeaderModel | None, sample: int = 2000, share: float = 0.97
) -> bool:
    """Whether nearly every line of the sample carries ``header``'s text header (then a line
    without it continues the event before it). JSON and logfmt lines count as not carrying it:
    a file that mixes formats is not strict."""
    if header is None or not header.learned:
        return False
    seen = hit = 0
    for line in lines[:sample]:
        if not line or _is_strong(line):
            continue
        seen += 1
        hit += _carries(header, line) and split_structured(line) is None
    return seen >= 20 and hit >= share * seen


def join_events(
    lines: list[str],
    *,
    header: HeaderModel | None = None,
    streams: Sequence[Any] | None = None,
    strict: bool | None = None,
    common: frozenset[str] | None = None,
    max_lines: int = MAX_EVENT_LINES,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Events:
    """Group consecutive rows into events (see the module docstring).

    ``streams``: one hashable stream key per row (rows join only within a stream, to the
    previous row of the same stream); ``None``: one stream. ``strict``: whether a line that
    does not carry ``header`` continues an event (default: when nearly every line does);
    ``common``: first characters of lines that carry it (default: from the first lines).
    """
    n = len(lines)
    if n < 2:
        return _single(lines)
    if strict is None:
        strict = strict_header(lines, header)
    if strict and common is None and header is not None:
        common = header_first_chars(lines, header)
    common = common or frozenset()
    order: np.ndarray | None = None
    cont = _continues(lines, header, strict, common)
    seq = lines
    if streams is not None and cont.any() and not _joins_within_streams(cont, streams):
        codes = _stream_codes(streams)
        if codes is not None:  # interleaved streams: join each stream's rows on their own
            order = np.argsort(codes, kind="stable")
            seq = [lines[i] for i in order.tolist()]
            cont = _continues(seq, header, strict, common)
            first_of_stream = np.ones(n, bool)
            first_of_stream[1:] = codes[order][1:] != codes[order][:-1]
            cont &= ~first_of_stream
    if not cont.any():
        return _single(lines)
    # bound events: a run longer than max_lines / max_bytes starts a new event
    starts = np.flatnonzero(~cont)
    ends = np.append(starts[1:], n)
    long_runs = np.flatnonzero(ends - starts > 1)
    for k in long_runs.tolist():
        a, b = int(starts[k]), int(ends[k])
        count, size = 1, len(seq[a])
        for i in range(a + 1, b):
            size += len(seq[i]) + 1
            count += 1
            if count > max_lines or size > max_bytes:
                cont[i] = False
                count, size = 1, len(seq[i])
    start = ~cont
    event_of_pos = np.cumsum(start) - 1
    first_pos = np.flatnonzero(start)
    nev = first_pos.size
    texts: list[str] = list(itertools.compress(seq, start.tolist()))
    ends = np.append(first_pos[1:], n)
    for e in np.flatnonzero(ends - first_pos > 1).tolist():
        a, b = int(first_pos[e]), int(ends[e])
        texts[e] = "\n".join(seq[a:b])
    if order is None:
        return Events(
            texts, first_pos.astype(np.int64), event_of_pos.astype(np.int64), int(cont.sum())
        )
    # back to input order: events ordered by their first row
    first_row = order[first_pos]
    ev_order = np.argsort(first_row, kind="stable")
    rank = np.empty(nev, np.int64)
    rank[ev_order] = np.arange(nev)
    row_event = np.empty(n, np.int64)
    row_event[order] = rank[event_of_pos]
    return Events(
        [texts[e] for e in ev_order.tolist()],
        first_row[ev_order].astype(np.int64),
        row_event,
        int(cont.sum()),
    )


def _joins_within_streams(cont: np.ndarray, streams: Sequence[Any]) -> bool:
    """Whether every joined row follows a row of its own stream (then the order is fine)."""
    for r in np.flatnonzero(cont).tolist():
        a, b = streams[r], streams[r - 1]
        if a is not b and a != b:
            return False
    return True


def _stream_codes(streams: Sequence[Any]) -> np.ndarray | None:
    """Integer stream code per row, or None when all rows are one stream."""
    ids: dict[int, int] = {}
    by_value: dict[Any, int] = {}
    out = np.empty(len(streams), np.int64)
    for i, s in enumerate(streams):
        code = ids.get(id(s))
        if code is None:
            key = tuple(sorted(s.items())) if isinstance(s, dict) else s
            code = by_value.setdefault(key, len(by_value))
            ids[id(s)] = code
        out[i] = code
    if len(by_value) <= 1:
        return None
    return out


def exception_type(text: str) -> str | None:
    """The exception type an event's continuation lines name (``None`` when none).

    Java: the first exception line (the thrown exception, not its causes); Python: the last
    one (a traceback ends with the exception); Go: the ``panic:`` / ``fatal error:`` line
    when it is not the first line.
    """
    if "\n" not in text:
        return None
    rest = text.split("\n")[1:]
    python = any(line.startswith("Traceback (most recent call last)") for line in rest)
    found: str | None = None
    for line in rest:
        if not line or line[0] in " \t":
            continue
        if line.startswith("Caused by: ") and found is not None:
            continue
        m = _EXC_LINE.match(line)
        if m:
            found = m.group("type")
            if not python:
                return found
            continue
        if not found and _PANIC.match(line):
            return line.split(":", 1)[0]
    return found
