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
from aiops.store.models import DetectorRecord, SeriesState
from aiops.transform import apply_steps, history_seconds, output_step, standardize

__all__ = [
    "DetectorWork",
    "Batch",
    "plan_work",
    "collect_pieces",
    "detect_pieces",
    "transformed_piece",
    "error_message",
    "outcome_row",
]

log = logging.getLogger(__name__)


def error_message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, AiopsError) else f"{type(exc).__name__}: {exc}"


def outcome_row(detector: DetectorRecord) -> dict[str, Any]:
    """A detector's line in the tick's table artifact (and summary)."""
    return {
        "detector": detector.id,
        "mode": detector.status,
        "status": "ok",
        "window": "",
        "series": 0,
        "samples": 0,
        "dropped": 0,
        "incidents_opened": 0,
        "incidents_resolved": 0,
        "anomalies": 0,
        "error": "",
        "warning": "",
    }


@dataclass
class DetectorWork:
    """One detector's progress through its window during a tick."""

    detector: DetectorRecord
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
    failed_in: str = ""  # the step that failed the detector: "collect", "detect", ...

    def __post_init__(self) -> None:
        self.cursor = self.window.start

    @property
    def id(self) -> str:
        return self.detector.id

    @property
    def fetch_start(self) -> datetime:
        """Where the current piece's collection starts: its start, less the history its
        transform steps reach back to (rolling windows, resample buckets)."""
        assert self.piece is not None
        return self.piece.start - timedelta(seconds=history_seconds(self.detector.transforms))

    @property
    def context(self) -> str:
        ds = self.detector.datasources[0]
        return f"detector={self.id} datasource={ds.name} query={ds.query!r}"

    def next_piece(self, capacity: int) -> Window:
        self.piece = next_piece(
            self.window, self.cursor, self.known_series, capacity, empty_probes=self.empty_probes
        )
        return self.piece

    def fail(self, message: str, step: str = "") -> None:
        self.row.update(status="failed", error=message)
        self.failed_in = step
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
            collection={
                "samples": self.row["samples"] + collected["samples"],
                "series": self.known_series,
                "dropped": self.row["dropped"] + collected["dropped"],
                "buffered": len(collected["frame"]),
                "at": now,
                "warning": collected.get("warning"),
            },
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


def plan_work(detector: DetectorRecord, inputs: BatchInputs, now: datetime) -> DetectorWork | str:
    """The work of a detector this tick, or why there is none."""
    ds = detector.datasources[0]
    window = collection_window(
        step_seconds=ds.step_seconds,
        lookback_seconds=ds.lookback_seconds,
        checkpoint=inputs.checkpoint,
        now=now,
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
    client: Any,
    ds: DatasourceConfig,
    query: str,
    start: datetime,
    end: datetime,
    step: float,
    capacity: int,
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
    fetched = await client.collect_range(
        effective, start.timestamp(), end.timestamp(), step, buffer
    )
    probe = (
        presence_probe(query, (end - start).total_seconds() + step)
        if prometheus and not fetched
        else None
    )
    if probe is not None and (await client.query(probe, end.timestamp())).series:
        warning = (
            f"no samples at any step of {start:%Y-%m-%d %H:%M:%S} .. {end:%H:%M:%S} although the "
            f"series has samples in that window: the query {effective!r} at step {step:g}s reads "
            f"none of them (lookback delta {ds.lookback_delta_seconds:g}s)"
        )
    frame = buffer.drain()
    label_cols = [c for c in frame.columns if c not in ("timestamp", "value")]
    series = (
        len(frame[label_cols].drop_duplicates())
        if label_cols and len(frame)
        else int(len(frame) > 0)
    )
    return {
        "frame": frame,
        "samples": fetched,
        "series": series,
        "dropped": buffer.dropped,
        "warning": warning,
        "query": effective,
    }


#: The label that tells apart, in a combined query's answer, the detectors it served.
MEMBER_LABEL = "aiops_batch_member"
#: Detectors per combined query, and its length bound (it goes in a POST body).
COMBINE_MAX = 10
COMBINE_MAX_CHARS = 64_000


def combined_query(queries: list[str]) -> str:
    """One PromQL expression answering every query, each answer's series tagged with its
    position (``aiops_batch_member="<i>"``): ``label_replace(q0, ...) or label_replace(q1, ...)``.
    The tags differ, so ``or`` keeps every series of every query."""
    parts = [
        f'label_replace(({q}), "{MEMBER_LABEL}", "{i}", "", "")' for i, q in enumerate(queries)
    ]

    def tree(items: list[str]) -> str:  # balanced: Prometheus' cost of a chain of `or` grows as n^2
        if len(items) == 1:
            return items[0]
        mid = len(items) // 2
        return f"({tree(items[:mid])}) or ({tree(items[mid:])})"

    return tree(parts)


async def collect_pieces(
    client: Any, ds: DatasourceConfig, works: list[DetectorWork], capacity: int, concurrency: int
) -> dict[str, dict[str, Any] | BaseException]:
    """The current piece of every detector in ``works`` through one client (its retry policy,
    failover and cache), at most ``concurrency`` requests at once. On Prometheus, detectors
    whose pieces share a window and step are asked in one combined range query
    (:func:`combined_query`, up to ``COMBINE_MAX`` a request); when a combined query fails
    (one detector's query is bad, say) its detectors are asked one by one, so a failure is
    that detector's result, not the batch's."""
    limit = asyncio.Semaphore(concurrency)
    out: dict[str, dict[str, Any] | BaseException] = {}

    async def one(work: DetectorWork) -> None:
        assert work.piece is not None
        det_ds = work.detector.datasources[0]
        async with limit:
            try:
                out[work.id] = await collect_piece(
                    client,
                    ds,
                    det_ds.query,
                    work.fetch_start,
                    work.piece.end,
                    float(det_ds.step_seconds),
                    capacity,
                )
            except Exception as exc:  # one detector's failure must not stop the others
                log.error(
                    "collection failed (%s): %s",
                    work.context,
                    error_message(exc),
                    extra={"detector": work.id, "datasource": ds.name, "query": det_ds.query},
                )
                out[work.id] = exc

    async def together(group: list[DetectorWork]) -> None:
        try:
            async with limit:
                answers = await _collect_combined(client, ds, group, capacity)
        except Exception as exc:
            log.info(
                "combined query of %d detectors failed (%s): asking them one by one",
                len(group),
                error_message(exc),
                extra={"datasource": ds.name},
            )
            await asyncio.gather(*(one(w) for w in group))
            return
        alone = []
        for work in group:
            answer = answers.get(work.id)
            if answer is None:  # nothing read, or more than its buffer: its own query says why
                alone.append(work)
            else:
                out[work.id] = answer
        await asyncio.gather(*(one(w) for w in alone))

    jobs = []
    if ds.type == "prometheus" and len(works) > 1:
        groups: dict[tuple[Any, ...], list[DetectorWork]] = {}
        for work in works:
            assert work.piece is not None
            key = (
                work.fetch_start,
                work.piece.end,
                float(work.detector.datasources[0].step_seconds),
            )
            groups.setdefault(key, []).append(work)
        for group in groups.values():
            chunk: list[DetectorWork] = []
            chars = 0
            for work in group:
                q = work.detector.datasources[0].query
                if chunk and (len(chunk) >= COMBINE_MAX or chars + len(q) > COMBINE_MAX_CHARS):
                    jobs.append(together(chunk) if len(chunk) > 1 else one(chunk[0]))
                    chunk, chars = [], 0
                chunk.append(work)
                chars += len(q) + 60
            if chunk:
                jobs.append(together(chunk) if len(chunk) > 1 else one(chunk[0]))
    else:
        jobs = [one(w) for w in works]
    await asyncio.gather(*jobs)
    return {w.id: out[w.id] for w in works}


async def _collect_combined(
    client: Any, ds: DatasourceConfig, group: list[DetectorWork], capacity: int
) -> dict[str, dict[str, Any]]:
    """One range query for ``group`` (same window and step); per detector, its collection as
    :func:`collect_piece` returns it. Left out: detectors that read no sample (their own
    query runs the presence probe) or more than ``capacity`` (their own query buffers it)."""
    from dataclasses import replace

    piece = group[0].piece
    assert piece is not None
    step = float(group[0].detector.datasources[0].step_seconds)
    queries = [
        query_for_step(w.detector.datasources[0].query, step, ds.lookback_delta_seconds)
        for w in group
    ]
    start = group[0].fetch_start
    result = await client.query_range(
        combined_query(queries), start.timestamp(), piece.end.timestamp(), step
    )
    members: dict[int, list[Any]] = {}
    for series in result.series:
        tag = series.labels.get(MEMBER_LABEL)
        if tag is None or not tag.isdigit() or int(tag) >= len(group):
            continue
        labels = {k: v for k, v in series.labels.items() if k != MEMBER_LABEL}
        members.setdefault(int(tag), []).append(replace(series, labels=labels))
    answers: dict[str, dict[str, Any]] = {}
    for i, work in enumerate(group):
        mine = members.get(i)
        if not mine:
            continue
        frame = replace(result, series=mine, query=queries[i]).to_frame()
        if len(frame) > capacity:
            continue
        buffer = SampleBuffer(capacity, name=ds.name)
        buffer.put(frame)
        frame = buffer.drain()
        answers[work.id] = {
            "frame": frame,
            "samples": len(frame),
            "series": len(mine),
            "dropped": 0,
            "warning": None,
            "query": queries[i],
        }
    return answers


def detect_piece(work: DetectorWork, frame: pd.DataFrame, flow_run_id: str | None) -> DetectionRun:
    """Standardise the collected frame, run the detector's transform steps, and fit or score
    the piece's points, continuing the stored states."""
    det = work.detector
    ds = det.datasources[0]
    assert work.piece is not None
    running = det.status == "running"
    frame = standardize(frame, step=float(ds.step_seconds))
    step = float(ds.step_seconds)
    if det.transforms:
        frame = transformed_piece(
            frame, det.transforms, step=step, start=work.piece.start, end=work.piece.end
        )
        step = output_step(det.transforms, step)
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
        step=step,
        until=work.piece.end,
    )


def transformed_piece(
    frame: pd.DataFrame, steps: list[dict[str, Any]], *, step: float, start: datetime, end: datetime
) -> pd.DataFrame:
    """A standardised frame collected from ``start - history`` through the transform
    ``steps``, keeping the points in ``[start, end]``: the same points, with the same values,
    however the detector's time is cut into windows (tick, backfill piece, series replay)."""
    out = apply_steps(frame, steps, step=step)
    keep = (out["timestamp"] >= start) & (out["timestamp"] <= end)
    return out[keep.to_numpy()].reset_index(drop=True)


def detect_pieces(
    works: list[DetectorWork], flow_run_id: str | None
) -> dict[str, DetectionRun | BaseException]:
    """Every collected piece of the batch, fitted or scored in one step (sets ``work.run``)."""
    out: dict[str, DetectionRun | BaseException] = {}
    for work in works:
        assert work.collected is not None
        try:
            work.run = detect_piece(work, work.collected["frame"], flow_run_id)
            out[work.id] = work.run
        except Exception as exc:  # a model error fails its detector only
            log.error(
                "detection failed (%s): %s",
                work.context,
                error_message(exc),
                extra={"detector": work.id},
            )
            out[work.id] = exc
    return out
