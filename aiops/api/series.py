"""``GET /api/detectors/{id}/series``: what the web page charts for one detector.

The detector's query is range-queried from its datasource (Prometheus, or Loki with a LogQL
metric query) over
``[start - warm-up, end]``; the samples go through the flows' standard transformation
(:func:`aiops.transform.standardize`) and each series through a fresh model of the detector's
kind and params (:func:`aiops.detectors.create`), so the expected value and band of every
point come from the same code that detects anomalies. Nothing is stored. The warm-up prefix
(the model's own warm-up, e.g. one ``window`` of points, at most
``ApiOptions.series_max_warmup_points``) is scored and dropped, so the band is there from the
first point of the range. The markers are the stored anomalies of the detector in the range:
they are what the detector actually found, the band is a replay that approximates it (the
live model learned from a longer history).

Bounds: at most ``series_max_points`` points per series in the range (400 otherwise) and
``series_max_series`` series (the rest are left out and ``truncated`` says so; series with
anomalies in the range come first).
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

import anyio
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from aiops import detectors as models
from aiops.detectors.auto import MAX_LOOK_POINTS
from aiops.api.models import MAX_SECONDS, ApiModel, DetectorPath, Duration, Time
from aiops.api.openapi import Call, Operation
from aiops.errors import InvalidInput
from aiops.timeutil import datetime_from_seconds
from aiops.transform import apply_steps, history_seconds, output_step, split_series, standardize

__all__ = ["OPERATIONS", "SeriesQuery", "SeriesResponse", "warmup_points", "replay"]

DEFAULT_RANGE_SECONDS = 3600.0
MAX_MARKERS = 2000


# --------------------------------------------------------------------------- models


class SeriesQuery(ApiModel):
    start: Time | None = Field(None, description="default: end - 1h")
    end: Time | None = Field(None, description="default: now")
    step: Duration | None = Field(
        None, description="default: the detector's step (the band is exact only at that step)"
    )


class SeriesData(BaseModel):
    """One series: its samples and, per sample, the model's expectation and alert band."""

    key: str
    labels: dict[str, str]
    timestamps: list[float] = Field(description="Unix seconds")
    values: list[float | None]
    expected: list[float | None] = Field(description="null while the model warms up")
    lower: list[float | None] = Field(
        description="alert band: a point outside it scores above the threshold"
    )
    upper: list[float | None]
    score: list[float | None]


class SeriesMarker(BaseModel):
    id: int
    series_key: str
    labels: dict[str, str]
    ts: float = Field(description="Unix seconds")
    value: float | None
    score: float | None
    severity: str
    backfill_id: str | None = None


class SeriesResponse(BaseModel):
    """A detector's series over a range, the replayed band and the stored anomalies."""

    detector: str
    kind: str
    params: dict[str, Any]
    threshold: float
    datasource: str
    query: str
    start: float
    end: float
    step: float
    warmup_points: int = Field(description="points replayed before start and dropped")
    warmup_complete: bool = Field(description="false when the model's warm-up was cut to the limit")
    series_total: int
    truncated: bool
    series: list[SeriesData]
    anomalies: list[SeriesMarker]
    anomalies_truncated: bool


# --------------------------------------------------------------------------- the computation


def warmup_points(model: models.Detector, step: float) -> int:
    """Points a fresh ``model`` needs before its band is fully formed, and (calibrated kinds)
    its score: the calibration's long-run history of band distances follows the band."""
    p = model.params
    band = _band_warmup(model, step)
    if not model.calibrated or p["calibration"] == "none":
        return band
    return band + int(p["long_window"])


def _band_warmup(model: models.Detector, step: float) -> int:
    p = model.params
    kind = model.kind
    if kind == "auto":  # it looks for a period first, then two windows of median and MAD
        look = max(
            int(p["decide_after"]),
            min(math.ceil(int(p["period_search_seconds"]) / step), MAX_LOOK_POINTS),
        )
        return look + 2 * int(p["window"])
    if kind == "mad":  # the median window, then as many residuals for the scale
        return 2 * int(p["window"])
    if "window" in p:
        return int(p["window"])
    if kind == "ewma":  # past min_periods, the start's weight falls below e^-5
        return max(int(p["min_periods"]), math.ceil(5.0 / float(p["alpha"])))
    if kind == "seasonal":  # min_periods visits of every bucket
        period = 7 * 86400 if p["period"] == "week" else 86400
        return math.ceil(period * (int(p["min_periods"]) + 1) / step)
    return 0


def _seconds(index: pd.DatetimeIndex) -> np.ndarray:
    naive = index.tz_convert("UTC").tz_localize(None) if index.tz is not None else index
    return naive.to_numpy(dtype="datetime64[ms]").astype(np.int64) / 1000.0


def replay(
    frame: pd.DataFrame,
    *,
    kind: str,
    params: dict[str, Any],
    threshold: float,
    step: float,
    start: float,
    priority: set[str] | frozenset[str] = frozenset(),
    max_series: int,
    transforms: list[dict[str, Any]] | None = None,
    end: float | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Score every series of a raw sample frame with a fresh model; keep points >= ``start``.

    Returns ``(series, total)``: at most ``max_series`` series (those whose key is in
    ``priority`` first, then by key) and how many the frame had.
    """
    if frame.empty:
        return [], 0
    frame = standardize(frame, step=step)
    if transforms:  # the detector's steps, as the tick runs them (the frame holds their history)
        frame = apply_steps(frame, transforms, step=step)
        if end is not None:
            frame = frame[(frame["timestamp"] <= pd.Timestamp(end, unit="s", tz="UTC")).to_numpy()]
    parts = list(split_series(frame))
    total = len(parts)
    parts.sort(key=lambda part: (part[0] not in priority, part[0]))
    out = []
    cut = pd.Timestamp(start, unit="s", tz="UTC")
    for key, labels, series in parts[:max_series]:
        model = models.create(kind, **params)
        scored = model.score(series)
        keep = series.index >= cut
        series, scored = series[keep], scored[keep]
        expected = scored["expected"].to_numpy()
        lower = expected - threshold * (expected - scored["lower"].to_numpy())
        upper = expected + threshold * (scored["upper"].to_numpy() - expected)
        out.append(
            {
                "key": key,
                "labels": labels,
                "timestamps": _seconds(series.index),
                "values": series.to_numpy(),
                "expected": expected,
                "lower": lower,
                "upper": upper,
                "score": scored["score"].to_numpy(),
            }
        )
    return out, total


def _marker(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "series_key": event.series_key,
        "labels": event.labels,
        "ts": event.ts.timestamp(),
        "value": event.value,
        "score": event.score,
        "severity": event.severity,
        "backfill_id": getattr(event, "backfill_id", None),
    }


# --------------------------------------------------------------------------- the handler


async def detector_series(call: Call) -> Any:
    state = call.state
    options = state.options
    path: DetectorPath = call.path
    q: SeriesQuery = call.query
    detector = await state.db(state.store.get_detector, path.id)
    ds = detector.datasource
    if ds is None:
        raise InvalidInput(
            f"detector {detector.id!r} has no datasource to chart: attach one "
            f"(POST /api/datasources/detectors/{detector.id}/datasources)",
            field="id",
        )
    state.datasource_config(ds.name)  # a 400 naming the datasource when it is not configured
    client = state.clients[ds.name]  # Prometheus or Loki: one range interface (iter_range)

    step = float(q.step) if q.step is not None else float(ds.step_seconds)
    if step > MAX_SECONDS:
        raise InvalidInput(f"step must be at most {MAX_SECONDS}s (about ten years)", field="step")
    end = q.end if q.end is not None else time.time()
    if q.start is not None and q.start >= end:
        raise InvalidInput("start must be before end", field="start")
    # on the step grid, as the flows collect (a sample at t is scored at the same t here)
    end = math.floor(end / step) * step
    start = (
        math.ceil(q.start / step) * step
        if q.start is not None
        else (math.ceil((end - DEFAULT_RANGE_SECONDS) / step) * step)
    )
    if start > end:
        raise InvalidInput(
            f"the range holds no step of {step:g}s: widen it or lower step", field="step"
        )
    points = int((end - start) // step) + 1
    if points > options.series_max_points:
        raise InvalidInput(
            f"the range resolves to {points:,} points per series; at most "
            f"{options.series_max_points:,} are charted (raise step or shorten the range)",
            field="step",
        )

    model = models.create(detector.kind, **detector.params)
    scored_step = output_step(detector.transforms, step)  # the spacing the model sees
    wanted = warmup_points(model, scored_step)
    warmup = min(wanted, options.series_max_warmup_points)
    fetch_start = max(0.0, start - warmup * scored_step - history_seconds(detector.transforms))

    markers = await state.db(
        partial(
            state.store.list_anomalies,
            detector.id,
            datetime_from_seconds(start, field="start"),
            datetime_from_seconds(end + step, field="end"),
            limit=MAX_MARKERS + 1,
            newest_first=True,
        )
    )
    anomalies_truncated = len(markers) > MAX_MARKERS
    markers = sorted(markers[:MAX_MARKERS], key=lambda e: (e.ts, e.id))

    chunks = [
        chunk.to_frame() async for chunk in client.iter_range(ds.query, fetch_start, end, step)
    ]
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    series, total = await anyio.to_thread.run_sync(
        partial(
            replay,
            frame,
            kind=detector.kind,
            params=detector.params,
            threshold=detector.threshold,
            step=step,
            start=start,
            priority={m.series_key for m in markers},
            max_series=options.series_max_series,
            transforms=detector.transforms,
            end=end,
        )
    )
    return {
        "detector": detector.id,
        "kind": detector.kind,
        "params": model.params,
        "threshold": detector.threshold,
        "datasource": ds.name,
        "query": ds.query,
        "start": start,
        "end": end,
        "step": step,
        "warmup_points": int(
            (start - fetch_start - history_seconds(detector.transforms)) // scored_step
        ),
        "warmup_complete": warmup >= wanted,
        "series_total": total,
        "truncated": total > len(series),
        "series": series,
        "anomalies": [_marker(e) for e in markers],
        "anomalies_truncated": anomalies_truncated,
    }


OPERATIONS = [
    Operation(
        "GET",
        "/api/detectors/{id}/series",
        detector_series,
        "A detector's series over a range with the expected value, band and stored anomalies",
        "detectors",
        path_params=DetectorPath,
        query=SeriesQuery,
        responses={200: SeriesResponse},
        errors=(400, 404, 422, 502, 503, 504),
        description="Range-queries the detector's datasource and replays its model (kind, "
        "params) over the range after a warm-up prefix: per series `timestamps`, `values`, "
        "`expected`, `lower`/`upper` (the alert band: the model's band widened by the "
        "detector's threshold) and `score`, nothing stored. `anomalies` are the stored "
        "anomalies of the detector in the range (chart markers). At most "
        "`series_max_points` points per series (400 otherwise) and `series_max_series` "
        "series (`truncated`).",
    ),
]
