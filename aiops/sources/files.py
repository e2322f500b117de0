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

Only regular files are read: a FIFO, a device (``/dev/zero``), a directory or anything under
``/proc``, ``/sys`` or ``/dev`` is refused before a byte is read (the open never blocks).
Paths that come from outside (the API, flow parameters, the CLI, log jobs) go through
:class:`LogAccess`: the path's real location (symlinks resolved) must be one of the allowed
files or inside one of the allowed roots, and the read is bounded in bytes (the file's last
``max_bytes``; the result says it was cut) and in time (:class:`~aiops.errors.DatasourceTimeout`).
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import stat
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from aiops.errors import DatasourceTimeout, InvalidInput
from aiops.logs.frame import FORMATS, empty_frame, make_frame, parse_timestamps

if TYPE_CHECKING:
    from aiops.config import Settings

__all__ = ["read_log_file", "iter_log_file", "LogAccess", "LoadedLogFile", "check_regular_file"]

logger = logging.getLogger(__name__)

_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 4 << 20
_NAT = np.iinfo(np.int64).min
_SNIFF_LINES = 100


_PSEUDO_FILESYSTEMS = (Path("/proc"), Path("/sys"), Path("/dev"))
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def check_regular_file(path: str | os.PathLike[str], mode: int) -> None:
    """Raise :class:`InvalidInput` unless ``mode`` (from a stat) is a regular file's."""
    if not stat.S_ISREG(mode):
        raise InvalidInput(
            f"log path is {_kind(mode)}, not a regular file: {path}", field="path", path=str(path)
        )


def _open_regular(path: Path, *, nofollow: bool = False) -> IO[bytes]:
    """Open ``path`` for reading without ever blocking (O_NONBLOCK: a FIFO without a writer
    would block in open()) and only when the opened file is a regular file. ``nofollow``:
    refuse a symlink as the last component (a checked real path swapped for one)."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
    if nofollow:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InvalidInput(f"log file not found: {path}", field="path", path=str(path)) from None
    except PermissionError:
        raise InvalidInput(
            f"log file is not readable (permission denied): {path}", field="path", path=str(path)
        ) from None
    except IsADirectoryError:
        raise InvalidInput(
            f"log path is a directory, not a file: {path}", field="path", path=str(path)
        ) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidInput(
            f"cannot open log file {path}: {reason}", field="path", path=str(path)
        ) from None
    try:
        check_regular_file(path, os.fstat(fd).st_mode)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return io.FileIO(fd, "rb", closefd=True)


def _open(path: Path, *, skip_to: int = 0, nofollow: bool = False) -> tuple[IO[bytes], bool]:
    """The decoded byte stream of ``path`` and whether it is gzip. ``skip_to``: start at this
    byte offset of a plain file (the tail of a file over the size bound)."""
    raw = _open_regular(path, nofollow=nofollow)
    magic = raw.read(2)
    if magic == _GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), True
    raw.seek(skip_to)
    return raw, False


@dataclass
class _Bounds:
    """A read's limits and what happened: bytes at most, a deadline, whether it was cut."""

    max_bytes: int | None = None
    deadline: float | None = None  # time.monotonic()
    timeout: float | None = None
    nofollow: bool = False
    truncated: bool = False
    reason: str | None = None

    def check_time(self, path: Path) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DatasourceTimeout(
                f"reading log file {path} took longer than {self.timeout:g}s "
                "(AIOPS_LOG_READ_TIMEOUT_SECONDS)",
                datasource="file",
                url=str(path),
            )


def _raw_lines(path: Path, chunk_lines: int, bounds: _Bounds | None = None) -> Iterator[list[str]]:
    """Decoded, non-empty lines in lists of at most ``chunk_lines``."""
    bounds = bounds or _Bounds()
    skip = 0
    if bounds.max_bytes is not None:
        size = path.stat().st_size
        if size > bounds.max_bytes:
            skip = size - bounds.max_bytes
    stream, gz = _open(path, skip_to=skip, nofollow=bounds.nofollow)
    if skip and not gz:
        bounds.truncated = True
        bounds.reason = (
            f"the file is {skip + bounds.max_bytes} bytes: only its last {bounds.max_bytes} "
            "were read (AIOPS_LOG_MAX_BYTES)"
        )
    rest = b""
    first = True
    partial = bool(skip) and not gz  # the first line of a tail is cut: drop it
    left = bounds.max_bytes
    out: list[str] = []
    try:
        with stream:
            while True:
                bounds.check_time(path)
                want = _BLOCK if left is None else min(_BLOCK, left)
                if want <= 0:
                    if stream.read(1):
                        bounds.truncated = True
                        bounds.reason = bounds.reason or (
                            f"only the first {bounds.max_bytes} bytes were read "
                            "(AIOPS_LOG_MAX_BYTES)"
                        )
                    break
                try:
                    block = stream.read(want)
                except (OSError, EOFError, zlib.error) as exc:
                    kind = "gzip" if gz else "log"
                    raise InvalidInput(
                        f"corrupt or truncated {kind} file {path}: {exc}",
                        field="path",
                        path=str(path),
                    ) from None
                if not block:
                    break
                if left is not None:
                    left -= len(block)
                block = rest + block
                cut = block.rfind(b"\n")
                if cut < 0:
                    rest = block
                    continue
                rest = block[cut + 1 :]
                head = block[:cut]
                if partial:
                    nl = head.find(b"\n")
                    head = b"" if nl < 0 else head[nl + 1 :]
                    partial = False
                text = head.decode("utf-8", "replace")
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
            if rest and not partial:
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
    _bounds: _Bounds | None = None,
) -> Iterator[pd.DataFrame]:
    """Yield log frames of at most ``chunk_lines`` entries each (see the module docstring)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"fmt must be one of {', '.join(FORMATS)}", field="fmt", value=fmt)
    if chunk_lines < 1:
        raise InvalidInput("chunk_lines must be positive", field="chunk_lines")
    if labels is not None and not isinstance(labels, Mapping):
        raise InvalidInput("labels must be a mapping of label name to value", field="labels")
    p = Path(path)
    stream, _ = _open(
        p, nofollow=bool(_bounds and _bounds.nofollow)
    )  # fail early, before the first next()
    stream.close()
    return _iter(p, fmt, labels, chunk_lines, multiline, _bounds or _Bounds())


def _iter(
    p: Path,
    fmt: str,
    labels: Mapping[str, Any] | None,
    chunk_lines: int,
    multiline: bool,
    bounds: _Bounds,
) -> Iterator[pd.DataFrame]:
    label_map = {"filename": str(p), **{str(k): str(v) for k, v in (labels or {}).items()}}
    mtime = int(pd.Timestamp(p.stat().st_mtime, unit="s", tz="UTC").value)
    year = pd.Timestamp(mtime, unit="ns", tz="UTC").year
    last_ts = _NAT
    checked = False
    pending: tuple[list[str], int] | None = None  # multiline: the entry still growing
    for lines in _raw_lines(p, chunk_lines, bounds):
        bounds.check_time(p)
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


# --------------------------------------------------------------------------- confined access


@dataclass(frozen=True)
class LoadedLogFile:
    """A log file read through :class:`LogAccess`: its frame, its real path, and whether
    the size bound cut it (``reason`` says how)."""

    frame: pd.DataFrame
    path: Path
    truncated: bool = False
    reason: str | None = None


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class LogAccess:
    """Which local files may be read, and how much of them.

    A path is allowed when its real location (every symlink resolved) is one of ``files``
    or inside one of ``roots`` (themselves resolved), is not under ``/proc``, ``/sys`` or
    ``/dev``, and is a regular file. Build it from the settings with :meth:`from_settings`:
    ``AIOPS_LOG_ROOTS`` (default ``<data_dir>/logs``) and the configured log jobs' files."""

    roots: tuple[Path, ...]
    files: tuple[Path, ...] = ()
    max_bytes: int | None = None
    timeout_seconds: float | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> LogAccess:
        return cls(
            roots=tuple(settings.log_file_roots()),
            files=tuple(settings.log_job_files()),
            max_bytes=settings.log_max_bytes,
            timeout_seconds=settings.log_read_timeout_seconds,
        )

    def _allowed(self, real: Path) -> bool:
        if any(_within(real, Path(os.path.realpath(p))) for p in _PSEUDO_FILESYSTEMS):
            return False
        if any(real == Path(os.path.realpath(f)) for f in self.files):
            return True
        return any(_within(real, Path(os.path.realpath(r))) for r in self.roots)

    def _where(self) -> str:
        places = [str(r) for r in self.roots] + [str(f) for f in self.files]
        return ", ".join(places) or "none"

    def check(self, path: str | os.PathLike[str]) -> Path:
        """The real path of ``path`` when it may be read; :class:`InvalidInput` naming the
        problem otherwise (outside the roots, a symlink leading out, missing, not a regular
        file)."""
        text = os.fspath(path)
        if not text or "\x00" in text:
            raise InvalidInput("log path is empty or contains a NUL byte", field="path")
        given = Path(os.path.abspath(text))
        real = Path(os.path.realpath(given))
        if not self._allowed(real):
            hint = "add its folder to AIOPS_LOG_ROOTS or configure a log job for it"
            if real != given and self._allowed(given):
                raise InvalidInput(
                    f"log path {text} is a symlink to {real}, which is outside the allowed log "
                    f"roots ({self._where()})",
                    field="path",
                    path=text,
                )
            raise InvalidInput(
                f"log path {text} is outside the allowed log roots ({self._where()}): {hint}",
                field="path",
                path=text,
            )
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            raise InvalidInput(f"log file not found: {text}", field="path", path=text) from None
        except OSError as exc:
            raise InvalidInput(
                f"cannot read log file {text}: {exc.strerror or exc}", field="path", path=text
            ) from None
        check_regular_file(text, mode)
        return real

    def read(
        self,
        path: str | os.PathLike[str],
        *,
        fmt: str = "auto",
        labels: Mapping[str, Any] | None = None,
        multiline: bool = False,
    ) -> LoadedLogFile:
        """Check ``path`` (:meth:`check`) and read it within the size and time bounds."""
        real = self.check(path)
        deadline = None if self.timeout_seconds is None else time.monotonic() + self.timeout_seconds
        bounds = _Bounds(
            max_bytes=self.max_bytes, deadline=deadline, timeout=self.timeout_seconds, nofollow=True
        )
        frames = list(
            iter_log_file(
                real,
                fmt=fmt,
                labels=labels,
                chunk_lines=1_000_000,
                multiline=multiline,
                _bounds=bounds,
            )
        )
        frame = (
            empty_frame()
            if not frames
            else frames[0]
            if len(frames) == 1
            else pd.concat(frames, ignore_index=True)
        )
        if bounds.truncated:
            logger.warning("log file %s was cut: %s", real, bounds.reason)
        return LoadedLogFile(
            frame=frame, path=real, truncated=bounds.truncated, reason=bounds.reason
        )
