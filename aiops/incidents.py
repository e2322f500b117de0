"""Incidents: runs of anomalous points, the unit an on-call engineer is alerted on.

Per detector and series, consecutive anomalous points form one incident, allowing up to
``resolve_after`` normal points in between. The incident *opens* at its first anomalous point
(the alert) and *resolves* at the ``resolve_after + 1``-th consecutive normal point after its
last anomalous one (only then is it known that the gap is longer than allowed). Missing points
(NaN values, which score a neutral 0) count as normal points.

The grouping is a stream like the detectors: :class:`IncidentTracker` carries an open incident
across calls (ticks, backfill pieces, restarts: its :meth:`IncidentTracker.state` is JSON), so
feeding a series in one call or in pieces gives the same incidents.

This module is pure (numpy only): the store persists what it returns, the benchmarks count
its onsets as alerts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiops.errors import InvalidInput

__all__ = [
    "DEFAULT_RESOLVE_AFTER",
    "IncidentChange",
    "IncidentSpan",
    "IncidentTracker",
    "check_resolve_after",
    "follow",
    "onsets",
]

DEFAULT_RESOLVE_AFTER = 20
"""Normal points allowed inside one incident before it resolves (a detector setting)."""
MAX_RESOLVE_AFTER = 100_000


def check_resolve_after(value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 0 <= int(value) <= MAX_RESOLVE_AFTER
    ):
        raise InvalidInput(
            f"resolve_after must be an integer in [0, {MAX_RESOLVE_AFTER}], got {value!r}",
            field="resolve_after",
            allowed=f"an integer in [0, {MAX_RESOLVE_AFTER}]",
        )
    return int(value)


@dataclass(frozen=True)
class IncidentSpan:
    """One incident as seen by one call: positions are indexes into that call's arrays.

    ``first`` is -1 when the incident was opened by an earlier call (it continues here);
    ``last`` is -1 when none of its anomalous points fall in this call; ``resolved`` is the
    position of the point that resolved it, or -1 while it stays open after the call.
    ``peak`` is the position of the highest score in this call (-1 if none here).
    """

    first: int
    last: int
    resolved: int
    peak: int
    points: int

    @property
    def opened_here(self) -> bool:
        return self.first >= 0


class IncidentTracker:
    """Groups anomalous flags into incidents, carrying an open one between calls."""

    def __init__(self, resolve_after: int = DEFAULT_RESOLVE_AFTER) -> None:
        self.resolve_after = check_resolve_after(resolve_after)
        self.open = False
        self.normal_run = 0  # normal points since the open incident's last anomalous point

    def feed(self, flags: np.ndarray, scores: np.ndarray | None = None) -> list[IncidentSpan]:
        """Incidents touched by these points, in time order (see :class:`IncidentSpan`).

        An incident carried open from an earlier call that neither gains a point nor resolves
        here is not listed.
        """
        flags = np.asarray(flags, dtype=bool)
        n = len(flags)
        r = self.resolve_after
        spans: list[IncidentSpan] = []
        # position of the open incident's last anomalous point, relative to this call
        last = -1 - self.normal_run
        first = -1
        cur: list[int] = []
        for i in np.flatnonzero(flags).tolist():
            if self.open and i - last - 1 <= r:
                cur.append(i)
                last = i
                continue
            if self.open:
                spans.append(self._span(first, cur, last + r + 1, scores))
            self.open = True
            first, cur, last = i, [i], i
        if self.open:
            if n - last - 1 > r:
                spans.append(self._span(first, cur, last + r + 1, scores))
                self.open = False
                self.normal_run = 0
            else:
                self.normal_run = n - 1 - last
                if cur:
                    spans.append(self._span(first, cur, -1, scores))
        return spans

    @staticmethod
    def _span(first: int, cur: list[int], resolved: int, scores: np.ndarray | None) -> IncidentSpan:
        if cur and scores is not None:
            sel = np.asarray(scores)[cur]
            peak = cur[int(np.argmax(sel))]
        else:
            peak = cur[0] if cur else -1
        return IncidentSpan(
            first=first,
            last=cur[-1] if cur else -1,
            resolved=resolved,
            peak=peak,
            points=len(cur),
        )

    def state(self) -> dict[str, Any]:
        return {
            "resolve_after": self.resolve_after,
            "open": self.open,
            "normal_run": self.normal_run,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IncidentTracker:
        if not isinstance(state, Mapping):
            raise InvalidInput("incident state must be a dict", field="incident_state")
        tracker = cls(state.get("resolve_after", DEFAULT_RESOLVE_AFTER))
        open_ = state.get("open", False)
        run = state.get("normal_run", 0)
        if (
            not isinstance(open_, bool)
            or isinstance(run, bool)
            or not isinstance(run, int)
            or run < 0
        ):
            raise InvalidInput(
                "incident state: open must be a boolean and normal_run a count",
                field="incident_state",
            )
        tracker.open = open_
        tracker.normal_run = run
        return tracker


def onsets(flags: np.ndarray, resolve_after: int = DEFAULT_RESOLVE_AFTER) -> np.ndarray:
    """Positions where an incident opens (what alerts), for one series scored from scratch."""
    flags = np.asarray(flags, dtype=bool)
    idx = np.flatnonzero(flags)
    if len(idx) == 0:
        return idx
    # an anomalous point opens an incident when more than resolve_after normal points precede it
    gaps = np.diff(idx) - 1
    keep = np.concatenate([[True], gaps > check_resolve_after(resolve_after)])
    return idx[keep]


# --------------------------------------------------------------------------- on the time axis


@dataclass(frozen=True)
class IncidentChange:
    """What one call did to one incident of a series, on the time axis (epoch seconds).

    ``opened_at`` identifies the incident (its first anomalous point); ``opened`` says this
    call opened it. ``last_anomalous_at`` is its last anomalous point in this call (None when
    it gained none), ``resolved_at`` the point that resolved it (None while it stays open),
    ``points`` its anomalous points in this call and ``peak`` the position, in the call's
    input arrays, of the highest of them (-1 when none).
    """

    opened_at: float
    opened: bool
    last_anomalous_at: float | None
    resolved_at: float | None
    points: int
    peak: int


def follow(
    state: Mapping[str, Any] | None,
    timestamps: np.ndarray,
    scores: np.ndarray,
    *,
    threshold: float,
    resolve_after: int = DEFAULT_RESOLVE_AFTER,
    step: float | None = None,
    until: float | None = None,
) -> tuple[list[IncidentChange], dict[str, Any]]:
    """Group one series' scored points (``timestamps`` ascending, epoch seconds) into
    incidents, continuing from ``state`` (None: a fresh series); returns the changes and the
    new state (JSON).

    A point is anomalous when its score is above ``threshold``. With ``step``, missing steps
    count as normal points: a series that skips a scrape is not anomalous there, and one that
    stops reporting resolves its incident ``resolve_after + 1`` steps after its last anomalous
    point once ``until`` (the last evaluated timestamp of the call, inclusive) has passed that.
    Points at or before the state's last timestamp were already grouped and are ignored, so
    feeding a series in consecutive pieces (each with its ``until``) equals feeding it whole.
    The detector's current ``resolve_after`` wins over the one in ``state``.
    """
    r = check_resolve_after(resolve_after)
    previous = dict(state or {})
    tracker = (
        IncidentTracker.from_state({**previous, "resolve_after": r})
        if state
        else IncidentTracker(r)
    )
    last_ts = previous.get("last_ts")
    opened_at = previous.get("opened_at")
    t = np.asarray(timestamps, dtype=float)
    s = np.asarray(scores, dtype=float)
    if last_ts is not None and len(t):
        keep = t > last_ts
        offset = int(np.argmax(keep)) if keep.any() else len(t)
        t, s = t[offset:], s[offset:]
    else:
        offset = 0
    n = len(t)
    with np.errstate(invalid="ignore"):
        flags = s > threshold  # NaN (a missing value) is normal
    ends = [
        v for v in (last_ts, float(t[-1]) if n else None, until if step else None) if v is not None
    ]
    if not tracker.open and not flags.any():  # the common case: nothing to group
        return [], {**tracker.state(), "last_ts": max(ends) if ends else None, "opened_at": None}
    gaps = np.zeros(n, np.int64)
    end_from, tail = None, 0
    if step and step > 0:
        prev = np.concatenate([[t[0] - step if last_ts is None else last_ts], t[:-1]]) if n else t
        if n:
            gaps = np.clip(np.rint((t - prev) / step).astype(np.int64) - 1, 0, r + 1)
        end_from = t[-1] if n else last_ts
        if until is not None and end_from is not None and until > end_from:
            tail = int(min(max(round((until - end_from) / step), 0), r + 1))
    if tail == 0 and not gaps.any():  # no missing step: group the points as they are
        pos = np.arange(n)
        exp_ts, exp_flags, exp_scores = t, flags, s
    else:
        fill_before = np.cumsum(gaps)
        pos = np.arange(n) + fill_before  # where each real point sits among real and missing ones
        total = n + int(fill_before[-1] if n else 0) + tail
        exp_ts = np.empty(total)
        exp_flags = np.zeros(total, dtype=bool)
        exp_scores = np.zeros(total)
        exp_ts[pos], exp_flags[pos], exp_scores[pos] = t, flags, s
        if n and fill_before[-1]:
            owner = np.repeat(np.arange(n), gaps)
            j = np.arange(len(owner)) - np.repeat(fill_before - gaps, gaps) + 1
            exp_ts[pos[owner] - gaps[owner] + j - 1] = prev[owner] + step * j
        if tail:
            exp_ts[total - tail :] = end_from + step * np.arange(1, tail + 1)
    total = len(exp_ts)
    changes: list[IncidentChange] = []
    for span in tracker.feed(exp_flags, exp_scores):
        start = float(exp_ts[span.first]) if span.first >= 0 else opened_at
        if start is None:  # a state without its incident's start (older state): start here
            start = float(exp_ts[max(span.last, 0)]) if total else float(until or 0.0)
        changes.append(
            IncidentChange(
                opened_at=float(start),
                opened=span.first >= 0,
                last_anomalous_at=float(exp_ts[span.last]) if span.last >= 0 else None,
                resolved_at=float(exp_ts[span.resolved]) if span.resolved >= 0 else None,
                points=span.points,
                peak=offset + int(np.searchsorted(pos, span.peak)) if span.peak >= 0 else -1,
            )
        )
        opened_at = start
    new_state = tracker.state()
    new_state["last_ts"] = max(ends) if ends else None
    new_state["opened_at"] = opened_at if tracker.open else None
    return changes, new_state
