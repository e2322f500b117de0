"""Local log files as log frames (the shape in :mod:`aiops.logs.frame`).

Plain or gzip (detected by its magic bytes, not the file name); text, JSON lines or logfmt.
Bytes that are not UTF-8 are replaced (U+FFFD), never fatal; ``\\r\\n`` endings are accepted;
empty lines are skipped. Each line's timestamp comes from the line (see
:func:`aiops.logs.frame.parse_timestamps`); a line without one takes the previous line's
(a stack-trace continuation belongs with its entry), and lines before the first timestamp take
the file's modification time. Every row is labelled ``{"filename": <path>}`` plus ``labels``.

``read_log_file`` returns one frame; ``iter_log_file`` yields frames of ``chunk_lines`` lines
with bounded memory, for files of any size. With ``multiline=True`` a line without a timestamp
is appended (after ``\\n``) to the entry before it, like promtail's multiline stage.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from aiops.errors import InvalidInput
from aiops.logs.frame import FORMATS, empty_frame, make_frame, parse_timestamps

__all__ = ["read_log_file", "iter_log_file"]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 4 << 20
_NAT = np.iinfo(np.int64).min
_SNIFF_LINES = 100


def _open(path: Path) -> tuple[IO[bytes], bool]:
    try:
        if path.is_dir():
            raise InvalidInput(
                f"log path is a directory, not a file: {path}", field="path", path=str(path)
            )
        raw = path.open("rb")
    except FileNotFoundError:
        raise InvalidInput(f"log file not found: {path}", field="path", path=str(path)) from None
    except PermissionError:
        raise InvalidInput(
            f"log file is not readable (permission denied): {path}", field="path", path=str(path)
        ) from None
    except OSError as exc:
        raise InvalidInput(
            f"cannot open log file {path}: {exc.strerror or exc}", field="path", path=str(path)
        ) from None
    magic = raw.read(2)
    raw.seek(0)
    if magic == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), True
    return raw, False


def _raw_lines(path: Path, chunk_lines: int) -> Iterator[list[str]]:
    """Decoded, non-empty lines in lists of at most ``chunk_lines``."""
    stream, gz = _open(path)
    rest = b""
    first = True
    out: list[str] = []
    try:
        with stream:
            while True:
                try:
                    block = stream.read(_BLOCK)
                except (OSError, EOFError, zlib.error) as exc:
                    kind = "gzip" if gz else "log"
                    raise InvalidInput(
                        f"corrupt or truncated {kind} file {path}: {exc}",
                        field="path",
                        path=str(path),
                    ) from None
                if not block:
                    break
                block = rest + block
                cut = block.rfind(b"\n")
                if cut < 0:
                    rest = block
                    continue
                rest = block[cut + 1 :]
                text = block[:cut].decode("utf-8", "replace")
                if first:
                    text = text.removeprefix("\ufeff")
                    first = False
                for line in text.split("\n"):
                    if line.endswith("\r"):
                        line = line[:-1]
                    if line:
                        out.append(line)
                        if len(out) >= chunk_lines:
                            yield out
                            out = []
            if rest:
                line = rest.decode("utf-8", "replace")
                if first:
                    line = line.removeprefix("\ufeff")
                line = line.rstrip("\r")
                if line:
                    out.append(line)
    finally:
        stream.close()
    if out:
        yield out


def _check_format(lines: list[str], fmt: str, path: Path) -> None:
    sample = lines[:_SNIFF_LINES]
    if fmt == "json" and not any(line.lstrip().startswith("{") for line in sample):
        raise InvalidInput(
            f"{path} does not look like JSON lines (no line starts with '{{')",
            field="fmt",
            path=str(path),
        )
    if fmt == "logfmt" and not any("=" in line for line in sample):
        raise InvalidInput(
            f"{path} does not look like logfmt (no key=value pairs)", field="fmt", path=str(path)
        )


def iter_log_file(
    path: str | os.PathLike[str],
    *,
    fmt: str = "auto",
    labels: Mapping[str, Any] | None = None,
    chunk_lines: int = 100_000,
    multiline: bool = False,
) -> Iterator[pd.DataFrame]:
    """Yield log frames of at most ``chunk_lines`` entries each (see the module docstring)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"fmt must be one of {', '.join(FORMATS)}", field="fmt", value=fmt)
    if chunk_lines < 1:
        raise InvalidInput("chunk_lines must be positive", field="chunk_lines")
    if labels is not None and not isinstance(labels, Mapping):
        raise InvalidInput("labels must be a mapping of label name to value", field="labels")
    p = Path(path)
    stream, _ = _open(p)  # fail early, before the first next()
    stream.close()
    return _iter(p, fmt, labels, chunk_lines, multiline)


def _iter(
    p: Path, fmt: str, labels: Mapping[str, Any] | None, chunk_lines: int, multiline: bool
) -> Iterator[pd.DataFrame]:
    label_map = {"filename": str(p), **{str(k): str(v) for k, v in (labels or {}).items()}}
    mtime = int(pd.Timestamp(p.stat().st_mtime, unit="s", tz="UTC").value)
    year = pd.Timestamp(mtime, unit="ns", tz="UTC").year
    last_ts = _NAT
    checked = False
    pending: tuple[list[str], int] | None = None  # multiline: the entry still growing
    for lines in _raw_lines(p, chunk_lines):
        if not checked:
            _check_format(lines, fmt, p)
            checked = True
        ts = parse_timestamps(lines, fmt, default_year=year)
        if multiline:
            entries: list[str] = []
            times: list[int] = []
            for line, t in zip(lines, ts.tolist()):
                if t == _NAT and pending is not None:
                    pending[0].append(line)
                    continue
                if pending is not None:
                    entries.append("\n".join(pending[0]))
                    times.append(pending[1])
                pending = ([line], t)
            if not entries:
                continue
            lines, ts = entries, np.asarray(times, np.int64)
        yield _frame(lines, ts, label_map, last_ts, mtime)
        valid = ts[ts != _NAT]
        if valid.size:
            last_ts = int(valid[-1])
    if multiline and pending is not None:
        yield _frame(
            ["\n".join(pending[0])], np.asarray([pending[1]], np.int64), label_map, last_ts, mtime
        )


def _frame(
    lines: list[str], ts: np.ndarray, labels: dict[str, str], last_ts: int, mtime: int
) -> pd.DataFrame:
    ts = ts.copy()
    missing = ts == _NAT
    if missing.any():
        # forward-fill from the previous timestamped line; before any: the previous chunk's
        # last timestamp, else the file's modification time
        idx = np.where(~missing, np.arange(ts.size), -1)
        np.maximum.accumulate(idx, out=idx)
        seed = last_ts if last_ts != _NAT else mtime
        ts = np.where(idx >= 0, ts[np.maximum(idx, 0)], seed)
    return make_frame(lines, ts, labels)


def read_log_file(
    path: str | os.PathLike[str],
    *,
    fmt: str = "auto",
    labels: Mapping[str, Any] | None = None,
    multiline: bool = False,
) -> pd.DataFrame:
    """Read a whole local log file into one log frame (see the module docstring)."""
    frames = list(
        iter_log_file(path, fmt=fmt, labels=labels, chunk_lines=1_000_000, multiline=multiline)
    )
    if not frames:
        return empty_frame()
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)
