"""The byte scanner of the log fast path: shape keys and digit runs, vectorised over a batch.

A batch of lines is joined into one UTF-8 blob (:func:`encode_lines`) and scanned with a
handful of numpy passes (in chunks of about 1 MiB cut at newlines, so the passes stay in
cache). The *shape key* of a line is the line with

* every run of 8+ hex-ish bytes (``[0-9a-fA-F-]``, with at least one letter and one digit)
  collapsed to one :data:`HEX_MARK` byte, and
* every other digit run collapsed to one ``0``, except that the ``5`` of a three-digit number
  from 500 after ``=``, ``:`` or ``"`` (and an optional space) stays: a possible 5xx status.

Lines with the same key differ only in numbers and ids, so they mask to the same text; the
template miner (:mod:`aiops.logs.templates`) masks and classifies each shape once. With
``runs=True`` the scan also returns the byte offsets of every digit run outside hex ids, which
the value extractors (:mod:`aiops.logs.values`) and the timestamp parser read for every line.

>>> shape_keys(["took 250ms id=3f2a9c8d7e6b5a41", "took 7ms id=00ab00ab00ab", "HTTP 503"])
[b'took 0ms id=\\x01', b'took 0ms id=\\x01', b'HTTP 0']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "HEX_MARK",
    "ShapeScan",
    "encode_lines",
    "line_starts_of",
    "flat_line",
    "line_bytes",
    "shape_keys",
    "shape_scan",
]

HEX_MARK = np.uint8(1)
"""The byte a hex-ish run of 8+ characters collapses to in a shape key."""

# bytes and byte arithmetic the passes compare against (numpy scalars keep arrays uint8)
_ZERO = np.uint8(ord("0"))
_FIVE = np.uint8(ord("5"))
_TEN_DIGITS = np.uint8(10)  # (byte - "0") < 10: a digit
_LOWER_A = np.uint8(ord("a"))
_SIX_HEX_LETTERS = np.uint8(6)  # ((byte | case bit) - "a") < 6: a-f or A-F
_CASE_BIT = np.uint8(0x20)  # ASCII upper | 0x20 == lower
_DASH = np.uint8(ord("-"))
_NEWLINE = np.uint8(ord("\n"))
_SPACE = np.uint8(ord(" "))
_QUOTE = np.uint8(ord('"'))
_COLON = np.uint8(ord(":"))
_EQUALS = np.uint8(ord("="))
_CHUNK_BYTES = 1 << 20  # numpy passes stay in cache


def _windows8(x: np.ndarray, op: Callable[..., np.ndarray]) -> np.ndarray:
    """``op``-reduce of every 8-byte window: result[i] covers x[i .. i+7] (length n-7)."""
    w = op(x[:-1], x[1:])
    w = op(w[:-2], w[2:])
    return op(w[:-4], w[4:])


def _scan_part(a: np.ndarray, runs: bool) -> tuple[bytes, np.ndarray | None, np.ndarray | None]:
    """Shape keys of one newline-aligned part; optionally the digit runs' [start, end)."""
    n = a.size
    dg = (a - _ZERO) < _TEN_DIGITS
    cov = np.zeros(n, bool)
    if n >= 8:
        hl = ((a | _CASE_BIT) - _LOWER_A) < _SIX_HEX_LETTERS
        h = dg | hl | (a == _DASH)
        w = _windows8(h, np.bitwise_and)
        w &= _windows8(hl, np.bitwise_or)
        w &= _windows8(dg, np.bitwise_or)  # 8 hex-ish bytes with a letter and a digit
        cov[: n - 7] = w
        cov[1:] |= cov[:-1].copy()
        cov[2:] |= cov[:-2].copy()
        cov[4:] |= cov[:-4].copy()
    dgo = dg & ~cov  # digits outside hex ids: each run becomes one "0"
    prev = np.zeros(n, bool)
    prev[1:] = dgo[:-1]
    drop = dgo & prev
    drop[1:] |= cov[1:] & cov[:-1]
    out = np.where(dg, _ZERO, a)
    # a 3-digit number from 500 after "=", ":" or '"' (and a space) may be a server error
    # status: its "5" stays in the key, so that 5xx lines mask apart from the others
    if n >= 4:
        d = np.append(dgo, False)  # a run may end the part
        first = dgo & ~prev
        # run of exactly three digits starting at i, for i in 1 .. n-3
        three = first[1:-2] & d[2:-2] & d[3:-1] & ~d[4:]
        before = a[:-3]
        sep = (before == _EQUALS) | (before == _COLON) | (before == _QUOTE)
        sep[1:] |= (before[1:] == _SPACE) & (
            (before[:-1] == _COLON) | (before[:-1] == _QUOTE) | (before[:-1] == _EQUALS)
        )
        status = np.zeros(n, bool)
        status[1:-2] = three & sep & (a[1:-2] == _FIVE)
        np.copyto(out, a, where=status)
    start = cov.copy()
    start[1:] &= ~cov[:-1]
    np.copyto(out, HEX_MARK, where=start)
    key = out[~drop].tobytes()
    if not runs:
        return key, None, None
    rs = np.flatnonzero(dgo & ~prev)
    nxt = np.zeros(n, bool)
    nxt[:-1] = dgo[1:]
    re_ = np.flatnonzero(dgo & ~nxt) + 1
    return key, rs, re_


@dataclass(slots=True)
class ShapeScan:
    """Shape keys of a batch, plus (when asked) its digit runs outside hex ids.

    ``run_starts``/``run_ends``: byte offsets of every digit run; ``line_first_run[i]``: index
    of line ``i``'s first run (``line_first_run[-1]`` is the run count). The k-th digit run of
    a line is the k-th ``0`` of its shape key, so lines of one shape have the same runs.
    """

    keys: list[bytes]
    run_starts: np.ndarray | None = None
    run_ends: np.ndarray | None = None
    line_first_run: np.ndarray | None = None


def shape_scan(blob: bytes, nlines: int, runs: bool = False) -> ShapeScan:
    """Scan ``blob`` (``nlines`` lines from :func:`encode_lines`); ``runs``: digit runs too."""
    a = np.frombuffer(blob, np.uint8)
    parts: list[bytes] = []
    rs_all: list[np.ndarray] = []
    re_all: list[np.ndarray] = []
    first_all: list[np.ndarray] = []
    pos, n, total = 0, a.size, 0
    while pos < n or (pos == 0 and n == 0):
        end = min(pos + _CHUNK_BYTES, n)
        if end < n:
            nl = blob.rfind(b"\n", pos, end)
            if nl < pos:
                nl = blob.find(b"\n", end)
            end = n if nl < 0 else nl + 1
        part = a[pos:end]
        key, rs, re_ = _scan_part(part, runs)
        parts.append(key)
        if runs:
            assert rs is not None and re_ is not None
            nl_pos = np.flatnonzero(part == _NEWLINE) + 1
            line_starts = np.concatenate(([0], nl_pos[nl_pos < part.size]))
            first_all.append(np.searchsorted(rs, line_starts) + total)
            rs_all.append(rs + pos)
            re_all.append(re_ + pos)
            total += rs.size
        pos = end
        if n == 0:
            break
    keys = b"".join(parts).split(b"\n")
    if len(keys) != nlines:  # pragma: no cover - guarded by encode_lines
        raise AssertionError("shape keys out of step with lines")
    if not runs:
        return ShapeScan(keys)
    first = np.concatenate([*first_all, np.array([total])]).astype(np.int64)
    return ShapeScan(
        keys,
        np.concatenate(rs_all).astype(np.int64) if rs_all else np.zeros(0, np.int64),
        np.concatenate(re_all).astype(np.int64) if re_all else np.zeros(0, np.int64),
        first,
    )


def flat_line(line: str) -> str:
    return line.replace("\r\n", " ").replace("\n", " ") if "\n" in line else line


def line_bytes(line: str) -> bytes:
    """One line as the batch path sees it: UTF-8, inner newlines as spaces."""
    return flat_line(line).encode("utf-8", "replace")


def encode_lines(lines: Sequence[str]) -> bytes:
    """Join lines with ``\\n`` as UTF-8; newlines inside a line become spaces."""
    text = "\n".join(lines)
    if text.count("\n") != max(len(lines) - 1, 0):
        text = "\n".join(flat_line(line) for line in lines)
    return text.encode("utf-8", "replace")


def shape_keys(lines: Sequence[str], blob: bytes | None = None) -> list[bytes]:
    """The shape key of each line (see the module docstring)."""
    if not lines:
        return []
    if blob is None:
        blob = encode_lines(lines)
    return shape_scan(blob, len(lines)).keys


def line_starts_of(blob: bytes) -> np.ndarray:
    """Byte offset where each ``\\n``-separated line of ``blob`` starts."""
    a = np.frombuffer(blob, np.uint8)
    nl = np.flatnonzero(a == _NEWLINE)
    out = np.empty(nl.size + 1, np.int64)
    out[0] = 0
    out[1:] = nl + 1
    return out
