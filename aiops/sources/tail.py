"""Live log sources: a Loki log query tailed over its WebSocket, or a growing file.

Both yield :class:`TailBatch` values (lines as they arrive, oldest first) for
:mod:`aiops.live`, which analyses them in short windows.

**Loki** (:class:`LokiTail`): ``GET /loki/api/v1/tail`` upgraded to a WebSocket with
``query``, ``start`` (ns), ``limit`` and ``delay_for`` (docs/loki-contract.md, "Tail"). Each
message is ``{"streams": [{"stream", "values": [[ns, line]]}], "dropped_entries": [...] | null}``.
A 400 before the upgrade is a :class:`~aiops.errors.BadQuery` with Loki's words (never
retried); a refused connection, a 429/5xx answer or a close with an error code is retried on the
next URL and then with the one retry policy's backoff, resuming at the last timestamp seen
(entries already seen at that nanosecond are dropped); after ``retry.attempts`` failed rounds in
a row it is a :class:`~aiops.errors.DatasourceUnavailable`. Loki closing a tail normally (its
``tail_max_duration``) reconnects at once.

**Files** (:class:`FileTail`): reads what was appended since the last read, in bounded chunks;
follows a rotation (the path names a new file: the old one is read to its end first) and a
truncation (copytruncate: read again from the start), and says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from aiops.errors import BadQuery, BadResponse, DatasourceError, DatasourceUnavailable, InvalidInput
from aiops.sources.http import RetryPolicy

__all__ = ["TailBatch", "LokiTail", "FileTail", "MAX_DELAY_FOR_SECONDS"]

log = logging.getLogger(__name__)

MAX_DELAY_FOR_SECONDS = 5  # Loki refuses a larger delay_for


@dataclass
class TailBatch:
    """Lines that arrived together. ``timestamps_ns`` is ``None`` when the source has no
    timestamps of its own (a file: they are read from the lines). ``labels``: one dict for
    every line, or one per line. ``dropped``: entries the source says it could not deliver.
    ``notes``: what happened on the way (a reconnect, a rotation)."""

    lines: list[str]
    timestamps_ns: list[int] | None = None
    labels: list[dict[str, str]] | dict[str, str] = field(default_factory=dict)
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------- Loki


class LokiTail:
    """Tail ``query`` on a Loki reached at ``urls`` (failover order)."""

    def __init__(
        self,
        urls: Sequence[str] | str,
        query: str,
        *,
        name: str = "loki",
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
        start_ns: int | None = None,
        delay_for: int = 0,
        limit: int = 100,
        retry: RetryPolicy | None = None,
        open_timeout: float = 10.0,
        max_message_bytes: int = 16 * 1024 * 1024,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        if isinstance(urls, str):
            urls = [u.strip() for u in urls.split(",") if u.strip()]
        if not urls:
            raise InvalidInput(f"datasource {name!r} has no URL", field="urls")
        if not 0 <= delay_for <= MAX_DELAY_FOR_SECONDS:
            raise InvalidInput(
                f"delay_for must be 0-{MAX_DELAY_FOR_SECONDS} seconds, got {delay_for}",
                field="delay_for",
            )
        if limit <= 0:
            raise InvalidInput("limit must be a positive number of entries", field="limit")
        self.urls = [u.rstrip("/") for u in urls]
        self.query = query
        self.name = name
        self.headers = dict(headers or {})
        if tenant:
            self.headers["X-Scope-OrgID"] = tenant
        self.start_ns = time.time_ns() if start_ns is None else int(start_ns)
        self.delay_for = delay_for
        self.limit = limit
        self.retry = retry or RetryPolicy()
        self.open_timeout = open_timeout
        self.max_message_bytes = max_message_bytes
        self.ssl = ssl
        self.reconnects = 0
        self.dropped = 0

    def _ws_url(self, base: str, start_ns: int) -> str:
        scheme, rest = base.split("://", 1)
        ws_scheme = {"http": "ws", "https": "wss"}.get(scheme, scheme)
        params = {"query": self.query, "start": str(start_ns), "limit": str(self.limit)}
        if self.delay_for:
            params["delay_for"] = str(self.delay_for)
        return f"{ws_scheme}://{rest}/loki/api/v1/tail?{urlencode(params)}"

    async def batches(self) -> AsyncIterator[TailBatch]:
        """Batches as Loki sends them, until the caller stops iterating (closing the socket)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosedError, InvalidHandshake, InvalidStatus

        last_ns = self.start_ns
        at_last: set[tuple[tuple[tuple[str, str], ...], str]] = set()  # entries seen at last_ns
        failed_rounds = 0
        first = 0  # index of the URL to try first
        notes: list[str] = []
        while True:
            last_error: DatasourceError | None = None
            for i in range(len(self.urls)):
                url = self.urls[(first + i) % len(self.urls)]
                try:
                    async with connect(
                        self._ws_url(url, last_ns),
                        additional_headers=self.headers,
                        open_timeout=self.open_timeout,
                        max_size=self.max_message_bytes,
                        ssl=self.ssl if url.startswith("https") else None,
                        close_timeout=2,
                    ) as ws:
                        first = (first + i) % len(self.urls)
                        async for message in ws:
                            batch, last_ns, at_last = self._decode(message, url, last_ns, at_last)
                            failed_rounds = 0
                            if notes:
                                batch.notes[:0], notes = notes, []
                            if batch.lines or batch.dropped or batch.notes:
                                yield batch
                    notes.append(f"Loki closed the tail at {url}; reconnected")
                    self.reconnects += 1
                    last_error = None
                    break  # a normal close (Loki's tail_max_duration): reconnect at once
                except InvalidStatus as exc:
                    status = exc.response.status_code
                    text = (exc.response.body or b"").decode("utf-8", "replace").strip()[
                        :2000
                    ] or f"HTTP {status}"
                    if status in (400, 422):
                        raise BadQuery(
                            text,
                            datasource=self.name,
                            url=url,
                            query=self.query,
                            upstream_status=status,
                        ) from None
                    if status != 429 and status < 500:
                        raise DatasourceError(
                            f"datasource {self.name!r} refused the tail with HTTP {status}: {text}",
                            datasource=self.name,
                            url=url,
                            query=self.query,
                            upstream_status=status,
                        ) from None
                    last_error = DatasourceUnavailable(
                        f"datasource {self.name!r} answered HTTP {status} at {url}: {text}",
                        datasource=self.name,
                        url=url,
                        query=self.query,
                        upstream_status=status,
                    )
                except ConnectionClosedError as exc:
                    reason = exc.rcvd.reason if exc.rcvd is not None else "connection lost"
                    code = exc.rcvd.code if exc.rcvd is not None else 1006
                    last_error = DatasourceUnavailable(
                        f"the tail at {url} closed with {code}: {reason}",
                        datasource=self.name,
                        url=url,
                        query=self.query,
                    )
                except (OSError, TimeoutError, InvalidHandshake) as exc:
                    last_error = DatasourceUnavailable(
                        f"cannot reach datasource {self.name!r} at {url}: "
                        f"{type(exc).__name__}: {exc}",
                        datasource=self.name,
                        url=url,
                        query=self.query,
                    )
                if last_error is not None:
                    log.warning(
                        "tail of %s: %s",
                        self.query,
                        last_error.message,
                        extra={"datasource": self.name, "url": url, "query": self.query},
                    )
            if last_error is None:
                continue
            failed_rounds += 1
            if failed_rounds >= self.retry.attempts:
                raise DatasourceUnavailable(
                    f"cannot tail {self.query} on datasource {self.name!r}: every URL failed "
                    f"{failed_rounds} times in a row; last error: {last_error.message}",
                    datasource=self.name,
                    url=last_error.url,
                    query=self.query,
                )
            self.reconnects += 1
            notes.append(f"reconnected after: {last_error.message}")
            wait = min(
                self.retry.max_wait_seconds, self.retry.initial_seconds * 2 ** (failed_rounds - 1)
            )
            await asyncio.sleep(wait + random.uniform(0, self.retry.jitter_seconds))  # the backoff

    def _decode(
        self, message: str | bytes, url: str, last_ns: int, at_last: set[Any]
    ) -> tuple[TailBatch, int, set[Any]]:
        try:
            data = orjson.loads(message)
            streams = data.get("streams") or []
            entries: list[tuple[int, dict[str, str], str]] = []
            for stream in streams:
                labels = {str(k): str(v) for k, v in (stream.get("stream") or {}).items()}
                for value in stream.get("values") or []:
                    entries.append((int(value[0]), labels, str(value[1])))
            dropped = len(data.get("dropped_entries") or [])
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError, IndexError) as exc:
            raise BadResponse(
                f"datasource {self.name!r} sent a tail message we cannot read: {exc}",
                datasource=self.name,
                url=url,
                query=self.query,
            ) from None
        entries.sort(key=lambda e: e[0])
        kept: list[tuple[int, dict[str, str], str]] = []
        for ns, labels, line in entries:
            key = (tuple(sorted(labels.items())), line)
            if ns < last_ns or (ns == last_ns and key in at_last):
                continue  # seen before a reconnect
            if ns > last_ns:
                last_ns, at_last = ns, set()
            at_last.add(key)
            kept.append((ns, labels, line))
        self.dropped += dropped
        notes = [f"Loki dropped {dropped} entries (the tail fell behind)"] if dropped else []
        batch = TailBatch(
            lines=[e[2] for e in kept],
            timestamps_ns=[e[0] for e in kept],
            labels=[e[1] for e in kept],
            dropped=dropped,
            notes=notes,
        )
        return batch, last_ns, at_last


# --------------------------------------------------------------------------------- files


class FileTail:
    """What was appended to ``path`` since the last :meth:`read_new`, in complete lines.

    Bounded: at most ``read_bytes`` per call (the rest comes on the next), a line longer than
    ``max_line_bytes`` is split into pieces of that size. ``from_start=False`` begins at the
    current end.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        from_start: bool = False,
        read_bytes: int = 1 << 20,
        max_line_bytes: int = 64 * 1024,
    ) -> None:
        self.path = os.fspath(path)
        self.read_bytes = read_bytes
        self.max_line_bytes = max_line_bytes
        self._fh: Any = None
        self._inode: tuple[int, int] | None = None
        self._partial = b""
        self._open(at_end=not from_start)

    def _open(self, *, at_end: bool) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 (kept open between reads)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise InvalidInput(
                f"cannot read log file {self.path}: {exc.strerror or exc}", field="path"
            ) from None
        st = os.fstat(fh.fileno())
        if self._fh is not None:
            self._fh.close()
        self._fh, self._inode = fh, (st.st_dev, st.st_ino)
        if at_end:
            fh.seek(0, os.SEEK_END)
        return True

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def read_new(self) -> tuple[list[str], list[str]]:
        """``(lines, notes)``: the complete lines appended since the last call, and what
        happened to the file (rotated, truncated)."""
        notes: list[str] = []
        if self._fh is None:
            if not self._open(at_end=False):
                return [], notes
            notes.append(f"{self.path} appeared; reading it from the start")
        chunk = self._fh.read(self.read_bytes)
        if not chunk:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return [], notes  # rotated away, the new file not there yet: keep the old one
            if (st.st_dev, st.st_ino) != self._inode:
                # rotated: the old file is read to its end (above); follow the new one
                rest = self._flush_partial()
                self._open(at_end=False)
                notes.append(f"{self.path} was rotated; following the new file")
                lines, more = self.read_new()
                return rest + lines, notes + more
            if st.st_size < self._fh.tell():
                self._fh.seek(0)
                self._partial = b""
                notes.append(f"{self.path} was truncated; reading it from the start")
                lines, more = self.read_new()
                return lines, notes + more
            return [], notes
        data = self._partial + chunk
        parts = data.split(b"\n")
        self._partial = parts.pop()
        if len(self._partial) > self.max_line_bytes:
            parts.append(self._partial[: self.max_line_bytes])
            self._partial = b""
        lines = [p[: self.max_line_bytes].decode("utf-8", "replace").rstrip("\r") for p in parts]
        return lines, notes

    def _flush_partial(self) -> list[str]:
        rest, self._partial = self._partial, b""
        return [rest.decode("utf-8", "replace").rstrip("\r")] if rest else []

    async def batches(
        self, *, poll_seconds: float = 0.5, labels: Mapping[str, str] | None = None
    ) -> AsyncIterator[TailBatch]:
        """Batches as lines are appended; looks every ``poll_seconds`` when there is nothing new."""
        from anyio import to_thread

        try:
            while True:
                lines, notes = await to_thread.run_sync(self.read_new)
                if lines or notes:
                    yield TailBatch(
                        lines=lines, labels=dict(labels or {"file": self.path}), notes=notes
                    )
                else:
                    await asyncio.sleep(poll_seconds)  # the poll's pace
        finally:
            self.close()
