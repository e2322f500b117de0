"""The metrics pipeline's pure steps: which window to collect, and one detection run.

Prefect tasks wrap these (``tasks/``); nothing here does I/O. A detection run takes a sample
frame and the stored per-series model states, and returns the new states, the anomaly events
and what happened (series, points, new series), ready for the store to commit in one go.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from aiops import detectors
from aiops.incidents import DEFAULT_RESOLVE_AFTER, follow
from aiops.transform import split_series

__all__ = ["Window", "collection_window", "next_piece", "DetectionRun", "run_detection"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Evaluation timestamps ``start, start+step, ..., end`` (both inclusive, step-aligned)."""

    start: datetime
    end: datetime
    step: float

    @property
    def points(self) -> int:
        return int((self.end - self.start).total_seconds() // self.step) + 1


def collection_window(
    *,
    step_seconds: float,
    lookback_seconds: float,
    checkpoint: datetime | None,
    now: datetime,
    settle_seconds: float | None = None,
) -> Window | None:
    """The window a detector collects next, or None when nothing new is complete yet.

    It ends at the last step boundary at least ``settle_seconds`` (default one step) before
    ``now``, so samples still being scraped are not scored; it starts one step after the
    checkpoint, so nothing is scored twice and downtime leaves no gap, or ``lookback``
    before the end on a detector's first run.
    """
    step = float(step_seconds)
    settle = step if settle_seconds is None else settle_seconds
    end_s = math.floor((now.timestamp() - settle) / step) * step
    if checkpoint is not None:
        start_s = checkpoint.timestamp() + step
    else:
        start_s = end_s - lookback_seconds
    start_s = math.ceil(start_s / step) * step
    if start_s > end_s:
        return None
    return Window(datetime.fromtimestamp(start_s, UTC), datetime.fromtimestamp(end_s, UTC), step)


def next_piece(
    window: Window, start: datetime, known_series: int, capacity: int, *, empty_probes: int = 0
) -> Window:
    """The next piece of ``window`` from ``start``: as many steps as fit ``capacity`` samples
    for the series seen so far. With none seen yet, a short probe piece (10 steps) tells
    how many series the query returns before a long piece could overflow the buffer; each
    probe that found nothing doubles the next one (up to ``capacity`` steps), so a lookback
    that reaches back before the data does not crawl through it 10 steps at a time."""
    if known_series == 0:
        points = max(10, min(capacity, 10 * 2 ** min(empty_probes, 40)))
    else:
        points = max(10, capacity // known_series)
    end = min(window.end, start + timedelta(seconds=window.step) * (points - 1))
    return Window(start, end, window.step)


@dataclass
class DetectionRun:
    """What one detector's run produced, for :meth:`Store.commit_detection`."""

    detector_id: str
    mode: str  # "training" (fit only) or "running" (score and emit)
    series: int = 0
    points: int = 0
    scored: int = 0
    skipped_points: int = 0  # points the model had already learned (re-runs, overlaps)
    new_series: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, tuple[dict[str, str], dict[str, Any]]] = field(default_factory=dict)
    latest: list[dict[str, Any]] = field(default_factory=list)  # last score per series
    last_ts: datetime | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)  # opened / grown / resolved
    incident_states: dict[str, tuple[dict[str, str], dict[str, Any]]] = field(default_factory=dict)

    @property
    def incidents_opened(self) -> int:
        return sum(1 for c in self.incidents if c["opened"])

    @property
    def incidents_resolved(self) -> int:
        return sum(1 for c in self.incidents if c["resolved_at"] is not None)

    def absorb(self, earlier: DetectionRun) -> None:
        """Put what ``earlier`` pieces of the same window found before this run's."""
        self.events = [*earlier.events, *self.events]
        self.incidents = [*earlier.incidents, *self.incidents]
        self.states = {**earlier.states, **self.states}
        self.incident_states = {**earlier.incident_states, **self.incident_states}
        self.series = max(self.series, earlier.series)
        self.points += earlier.points
        self.scored += earlier.scored

    def summary(self) -> dict[str, Any]:
        return {
            "detector": self.detector_id,
            "mode": self.mode,
            "series": self.series,
            "points": self.points,
            "scored": self.scored,
            "skipped_points": self.skipped_points,
            "new_series": len(self.new_series),
            "anomalies": len(self.events),
            "incidents_opened": self.incidents_opened,
            "incidents_resolved": self.incidents_resolved,
        }


def run_detection(
    *,
    detector_id: str,
    kind: str,
    params: Mapping[str, Any],
    threshold: float,
    mode: str,
    frame: pd.DataFrame,
    states: Mapping[str, Any],
    params_hash: str | None = None,
    trained_at: datetime | None = None,
    flow_run_id: str | None = None,
    payload: Mapping[str, Any] | None = None,
    incident_states: Mapping[str, Any] | None = None,
    resolve_after: int = DEFAULT_RESOLVE_AFTER,
    step: float | None = None,
    until: datetime | None = None,
) -> DetectionRun:
    """Fit (``mode="training"``) or score (``"running"``) every series of ``frame`` (a sample
    frame, standardised by :func:`aiops.transform.standardize`).

    ``states`` maps series keys to stored states (objects with ``.state`` and ``.trained_at``,
    or plain state dicts). Each series continues from its own state; a series seen for the
    first time gets a fresh model (neutral while it warms up). Points at or before what a
    model already learned are skipped, so re-running a window changes nothing.

    When scoring, anomalous points are grouped into incidents (:func:`aiops.incidents.follow`)
    continuing each series' ``incident_states`` (``{series_key: state}``): ``run.incidents``
    lists what happened to each (opened, grown, resolved) and ``run.incident_states`` the new
    states. With ``step``, missing steps up to ``until`` (the last timestamp this run covers)
    count as normal, so the incident of a series that stops reporting resolves too.
    """
    if mode not in ("training", "running"):
        raise ValueError(f"mode must be training or running, not {mode!r}")
    run = DetectionRun(detector_id=detector_id, mode=mode)
    grouping = dict(incident_states or {})
    until_s = None if until is None else until.timestamp()
    provenance = {"model_kind": kind, "params_hash": params_hash, "flow_run_id": flow_run_id}
    base_payload = {"threshold": threshold, "resolve_after": resolve_after, **(payload or {})}
    seen: set[str] = set()
    for key, labels, series in split_series(frame) if not frame.empty else ():
        seen.add(key)
        stored = states.get(key)
        if stored is None:
            model = detectors.create(kind, **params)
            run.new_series.append(key)
            series_trained_at = None
        else:
            state = getattr(stored, "state", stored)
            model = detectors.from_state(state)
            series_trained_at = getattr(stored, "trained_at", None)
        run.series += 1
        run.points += len(series)
        if model.last_timestamp is not None:
            cut = int(
                series.index.searchsorted(model.last_timestamp, side="right")
            )  # the index is sorted
            run.skipped_points += cut
            series = series.iloc[cut:]
        if series.empty:
            continue
        ts_last = series.index[-1].to_pydatetime()
        run.last_ts = ts_last if run.last_ts is None else max(run.last_ts, ts_last)
        if mode == "training":
            model.fit(series)
        else:
            scores = model.score(series)
            run.scored += len(scores)
            score = scores["score"].to_numpy()
            values = series.to_numpy()
            run.latest.append(
                {
                    "series_key": key,
                    "labels": labels,
                    "ts": ts_last,
                    "value": float(values[-1]),
                    "score": float(score[-1]),
                }
            )
            provenance_trained = series_trained_at or trained_at
            hits = np.flatnonzero(score > threshold)
            expected, lower, upper = (scores[c].to_numpy() for c in ("expected", "lower", "upper"))
            changes, grouped = follow(
                grouping.get(key),
                series.index.as_unit("ns").asi8 / 1e9,
                score,
                threshold=threshold,
                resolve_after=resolve_after,
                step=step,
                until=until_s,
            )
            grouped["labels"] = labels  # so a series that stops reporting can still resolve
            run.incident_states[key] = (labels, grouped)
            for change in changes:
                peak = None
                if change.peak >= 0:
                    i = change.peak
                    peak = {
                        "ts": series.index[i].to_pydatetime(),
                        "score": _finite(score[i]),
                        "value": float(values[i]),
                        "expected": _finite(expected[i]),
                        "lower": _finite(lower[i]),
                        "upper": _finite(upper[i]),
                    }
                run.incidents.append(
                    _incident(
                        change, key, labels, peak, provenance, provenance_trained, base_payload
                    )
                )
            for i in hits:
                run.events.append(
                    {
                        "type": "anomaly",
                        "detector_id": detector_id,
                        "series_key": key,
                        "labels": labels,
                        "ts": series.index[i].to_pydatetime(),
                        "value": float(values[i]),
                        "score": _finite(score[i]),
                        "expected": _finite(expected[i]),
                        "lower": _finite(lower[i]),
                        "upper": _finite(upper[i]),
                        "payload": {"threshold": threshold, **(payload or {})},
                        "model_kind": kind,
                        "params_hash": params_hash,
                        "trained_at": provenance_trained,
                        "flow_run_id": flow_run_id,
                    }
                )
        run.states[key] = (labels, model.state())
    if mode == "running" and step and until_s is not None:
        # series with an open incident that sent nothing this run: their missing steps count
        for key, state in grouping.items():
            if key in seen or not state.get("open"):
                continue
            labels = dict(state.get("labels") or {})
            changes, grouped = follow(
                state,
                np.zeros(0),
                np.zeros(0),
                threshold=threshold,
                resolve_after=resolve_after,
                step=step,
                until=until_s,
            )
            grouped["labels"] = labels
            run.incident_states[key] = (labels, grouped)
            for change in changes:
                run.incidents.append(
                    _incident(change, key, labels, None, provenance, None, base_payload)
                )
    if run.new_series:
        log.info("%d new series picked up", len(run.new_series), extra={"detector": detector_id})
    return run


def _incident(
    change: Any,
    key: str,
    labels: Mapping[str, str],
    peak: dict[str, Any] | None,
    provenance: Mapping[str, Any],
    trained_at: datetime | None,
    payload: Mapping[str, Any],
) -> dict[str, Any]:
    """One incident change as the store takes it (:meth:`Store.commit_detection`)."""

    def at(seconds: float | None) -> datetime | None:
        return None if seconds is None else datetime.fromtimestamp(seconds, UTC)

    return {
        "series_key": key,
        "labels": dict(labels),
        "opened_at": at(change.opened_at),
        "opened": change.opened,
        "last_anomalous_at": at(change.last_anomalous_at),
        "resolved_at": at(change.resolved_at),
        "points": change.points,
        "peak": peak,
        "trained_at": trained_at,
        "payload": dict(payload),
        **provenance,
    }


def _finite(value: Any) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None
