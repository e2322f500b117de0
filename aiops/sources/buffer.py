"""A bounded buffer of samples for streaming collection: drop-oldest, and counted.

Producers put whole frames (one row per sample); when the buffer would exceed ``capacity``
samples the oldest rows are dropped and counted in ``dropped``, so a slow consumer loses the
oldest data, never blocks the producer and never grows memory without bound.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterable
from typing import Any

import pandas as pd

__all__ = ["SampleBuffer"]

log = logging.getLogger(__name__)


class SampleBuffer:
    def __init__(self, capacity: int = 10_000, *, name: str = "") -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.name = name
        self.dropped = 0
        self.accepted = 0
        self._frames: deque[pd.DataFrame] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    async def fill(self, chunks: AsyncIterable[Any]) -> int:
        """Put the frame of every chunk a range query streams (each has ``to_frame()``), in
        order; returns the samples fetched (dropped ones included)."""
        total = 0
        async for chunk in chunks:
            frame = chunk.to_frame()
            total += len(frame)
            self.put(frame)
        return total

    def put(self, frame: pd.DataFrame) -> int:
        """Add samples; return how many old samples were dropped to make room."""
        n = len(frame)
        if n == 0:
            return 0
        self.accepted += n
        if n >= self.capacity:
            # Everything already buffered and the head of this frame go.
            lost = self._size + (n - self.capacity)
            self._frames.clear()
            self._frames.append(frame.iloc[n - self.capacity :])
            self._size = self.capacity
            self._count_drop(lost)
            return lost
        self._frames.append(frame)
        self._size += n
        lost = 0
        while self._size > self.capacity:
            excess = self._size - self.capacity
            head = self._frames[0]
            if len(head) <= excess:
                self._frames.popleft()
                self._size -= len(head)
                lost += len(head)
            else:
                self._frames[0] = head.iloc[excess:]
                self._size -= excess
                lost += excess
        self._count_drop(lost)
        return lost

    def drain(self) -> pd.DataFrame:
        """Take everything buffered, oldest first, as one frame."""
        if not self._frames:  # still a sample frame, so the steps after it need no special case
            return pd.DataFrame(
                {
                    "timestamp": pd.Series([], dtype="datetime64[ns, UTC]"),
                    "value": pd.Series([], dtype="float64"),
                }
            )
        frames = list(self._frames)
        self._frames.clear()
        self._size = 0
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def _count_drop(self, lost: int) -> None:
        if lost:
            self.dropped += lost
            log.warning(
                "sample buffer %s full (capacity %d): dropped %d oldest samples (%d in total)",
                self.name or "-",
                self.capacity,
                lost,
                self.dropped,
            )
