"""One detect-metrics tick over a batch of detectors: the steps Prefect tasks wrap.

A batch is detectors of one datasource, claimed together. Each detector's window (from its
checkpoint to now) is walked in pieces that fit the bounded buffer; one *round* takes the
next piece of every detector still going: collect them all (concurrently, through one
client: :func:`collect_pieces`), score them all in one step (:func:`detect_pieces`), and
build one commit per detector (:meth:`DetectorWork.commit`) that the store writes for the
whole batch in one transaction. Per detector, an error stops that detector only: its outcome
row says why and the others go on.

No Prefect here; clients are passed in.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from aiops.config import DatasourceConfig
from aiops.errors import AiopsError
from aiops.pipeline import DetectionRun, Window, collection_window, next_piece, run_detection
from aiops.promql import presence_probe, query_for_step
from aiops.sources.buffer import SampleBuffer
from aiops.store.batch import BatchCommit, BatchInputs
from aiops.store.models import Detector, SeriesState
from aiops.transform import standardize

__all__ = ["DetectorWork", "Batch", "plan_work", "collect_pieces", "detect_pieces", "error_message", "outcome_row"]

log = logging.getLogger(__name__)


def error_message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"


def outcome_row(detector: Detector) -> dict[str, Any]:
    """A detector's line in the tick's table artifact (and summary)."""
    return {"detector": detector.id, "mode": detector.status, "status": "ok", "window": "", "series": 0,
            "samples": 0, "dropped": 0, "incidents_opened": 0, "incidents_resolved": 0,
            "anomalies": 0, "error": "", "warning": ""}


@dataclass
class DetectorWork:
    """One detector's progress through its window during a tick."""

    detector: Detector
    window: Window
    committed: datetime | None  # the checkpoint the next piece continues from
    states: dict[str, Any]
    incident_states: dict[str, dict[str, Any]]
    known_series: int
    row: dict[str, Any]
    cursor: datetime = field(init=False)
    empty_probes: int = 0
    piece: Window | None = None
    collected: dict[str, Any] | None = None
    run: DetectionRun | None = None
    done: bool = False

    def __post_init__(self) -> None:
        self.cursor = self.window.start

    @property
    def id(self) -> str:
        return self.detector.id

    @property
    def context(self) -> str:
        ds = self.detector.datasources[0]
        return f"detector={self.id} datasource={ds.name} query={ds.query!r}"

    def next_piece(self, capacity: int) -> Window:
        self.piece = next_piece(self.window, self.cursor, self.known_series, capacity, empty_probes=self.empty_probes)
        return self.piece

    def fail(self, message: str) -> None:
        self.row.update(status="failed", error=message)
        self.done = True

    def commit(self, now: datetime) -> BatchCommit:
        """This piece as the store commits it (after :func:`detect_pieces`)."""
        assert self.piece is not None and self.collected is not None and self.run is not None
        run, collected = self.run, self.collected
        self.known_series = max(self.known_series, collected["series"])
        trained_at = datetime.now(UTC) if run.mode == "training" and run.states else None
        return BatchCommit(
            detector_id=self.id,
            expected=self.committed,
            checkpoint=self.piece.end,
            events=run.events,
            states=run.states,
            trained_at=trained_at,
            collection={"samples": self.row["samples"] + collected["samples"], "series": self.known_series,
                        "dropped": self.row["dropped"] + collected["dropped"], "buffered": len(collected["frame"]),
                        "at": now, "warning": collected.get("warning")},
            latest=run.latest,
            incidents=run.incidents,
            incident_states=run.incident_states,
        )

    def committed_piece(self, counts: dict[str, int]) -> None:
        """The store took this piece: carry its states into the next one and move on."""
        assert self.piece is not None and self.collected is not None and self.run is not None
        run, collected = self.run, self.collected
        trained_at = datetime.now(UTC) if run.mode == "training" else None
        for key, (labels, state) in run.states.items():
            old = self.states.get(key)
            kept = getattr(old, "trained_at", None)
            self.states[key] = SeriesState(dict(labels), dict(state), trained_at or kept)
        for key, (_labels, state) in run.incident_states.items():
            self.incident_states[key] = dict(state)
        self.row["series"] = max(self.row["series"], run.series)
        self.row["samples"] += collected["samples"]
        self.row["dropped"] += collected["dropped"]
        if collected.get("warning"):
            self.row["warning"] = collected["warning"]
        for key, count in counts.items():
            self.row[key] += count
        self.empty_probes = self.empty_probes + 1 if collected["series"] == 0 else 0
        self.committed = self.piece.end
        self.cursor = self.piece.end + timedelta(seconds=self.window.step)
        self.collected, self.run = None, None
        if self.cursor > self.window.end:
            self.done = True

    @property
    def last_piece(self) -> bool:
        return self.piece is not None and self.piece.end >= self.window.end


class Batch:
    """Detectors of one datasource going through a tick together. A plain container (not a
    dataclass), so Prefect does not walk its frames and states looking for task inputs."""

    __slots__ = ("datasource", "works", "now")

    def __init__(self, datasource: str, works: list[DetectorWork], now: datetime) -> None:
        self.datasource = datasource
        self.works = works
        self.now = now

    def active(self) -> list[DetectorWork]:
        return [w for w in self.works if not w.done]

    def label(self) -> str:
        ids = [w.id for w in self.works]
        return ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]} ({len(ids)})"


def plan_work(detector: Detector, inputs: BatchInputs, now: datetime) -> DetectorWork | str:
    """The work of a detector this tick, or why there is none."""
    ds = detector.datasources[0]
    window = collection_window(
        step_seconds=ds.step_seconds, lookback_seconds=ds.lookback_seconds, checkpoint=inputs.checkpoint, now=now
    )
    if window is None:
        return "no complete step since the checkpoint"
    row = outcome_row(detector)
    row["window"] = f"{window.start:%Y-%m-%d %H:%M:%S} .. {window.end:%H:%M:%S}"
    return DetectorWork(
        detector=detector,
        window=window,
        committed=inputs.checkpoint,
        states=dict(inputs.states),
        incident_states=dict(inputs.incident_states) if detector.status == "running" else {},
        known_series=len(inputs.states),
        row=row,
    )


async def collect_piece(
    client: Any, ds: DatasourceConfig, query: str, start: datetime, end: datetime, step: float, capacity: int
) -> dict[str, Any]:
    """Range-query ``query`` over ``[start, end]`` into a bounded buffer of ``capacity`` samples.

    Returns ``{"frame", "samples", "series", "dropped", "warning"}``; ``warning`` says when no
    step got a sample although the query's series have samples in the window."""
    buffer = SampleBuffer(capacity, name=ds.name)
    prometheus = ds.type == "prometheus"
    # A step over the server's lookback delta would find no sample at most steps of a sparse
    # series: read each step's latest sample instead (aiops.promql.query_for_step).
    effective = query_for_step(query, step, ds.lookback_delta_seconds) if prometheus else query
    warning = None
    fetched = await client.collect_range(effective, start.timestamp(), end.timestamp(), step, buffer)
    probe = presence_probe(query, (end - start).total_seconds() + step) if prometheus and not fetched else None
    if probe is not None and (await client.query(probe, end.timestamp())).series:
        warning = (
            f"no samples at any step of {start:%Y-%m-%d %H:%M:%S} .. {end:%H:%M:%S} although the "
            f"series has samples in that window: the query {effective!r} at step {step:g}s reads none "
            f"of them (lookback delta {ds.lookback_delta_seconds:g}s)"
        )
    frame = buffer.drain()
    label_cols = [c for c in frame.columns if c not in ("timestamp", "value")]
    series = len(frame[label_cols].drop_duplicates()) if label_cols and len(frame) else int(len(frame) > 0)
    return {"frame": frame, "samples": fetched, "series": series, "dropped": buffer.dropped, "warning": warning,
            "query": effective}


async def collect_pieces(
    client: Any, ds: DatasourceConfig, works: list[DetectorWork], capacity: int, concurrency: int
) -> dict[str, dict[str, Any] | BaseException]:
    """The current piece of every detector in ``works``, at most ``concurrency`` queries at
    once through one client (its retry policy, failover and cache). A failure is that
    detector's result, not the batch's."""
    limit = asyncio.Semaphore(concurrency)

    async def one(work: DetectorWork) -> dict[str, Any] | BaseException:
        assert work.piece is not None
        det_ds = work.detector.datasources[0]
        async with limit:
            try:
                return await collect_piece(
                    client, ds, det_ds.query, work.piece.start, work.piece.end, float(det_ds.step_seconds), capacity
                )
            except Exception as exc:  # one detector's failure must not stop the others
                log.error("collection failed (%s): %s", work.context, error_message(exc),
                          extra={"detector": work.id, "datasource": ds.name, "query": det_ds.query})
                return exc

    results = await asyncio.gather(*(one(w) for w in works))
    return {w.id: r for w, r in zip(works, results, strict=True)}


def detect_piece(work: DetectorWork, frame: pd.DataFrame, flow_run_id: str | None) -> DetectionRun:
    """Standardise the collected frame and fit or score it, continuing the stored states."""
    det = work.detector
    ds = det.datasources[0]
    assert work.piece is not None
    running = det.status == "running"
    frame = standardize(frame, step=float(ds.step_seconds))
    return run_detection(
        detector_id=det.id,
        kind=det.kind,
        params=det.params,
        threshold=det.threshold,
        mode="running" if running else "training",
        frame=frame,
        states=work.states,
        params_hash=det.spec_hash,
        trained_at=det.status_changed_at if running else None,
        flow_run_id=flow_run_id,
        payload={"datasource": ds.name, "query": ds.query},
        incident_states=work.incident_states if running else {},
        resolve_after=det.resolve_after,
        step=float(ds.step_seconds),
        until=work.piece.end,
    )


def detect_pieces(works: list[DetectorWork], flow_run_id: str | None) -> dict[str, DetectionRun | BaseException]:
    """Every collected piece of the batch, fitted or scored in one step (sets ``work.run``)."""
    out: dict[str, DetectionRun | BaseException] = {}
    for work in works:
        assert work.collected is not None
        try:
            work.run = detect_piece(work, work.collected["frame"], flow_run_id)
            out[work.id] = work.run
        except Exception as exc:  # a model error fails its detector only
            log.error("detection failed (%s): %s", work.context, error_message(exc),
                      extra={"detector": work.id})
            out[work.id] = exc
    return out
