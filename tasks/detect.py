"""Run one detector over collected samples, continuing each series from its stored state."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task

from aiops.pipeline import DetectionRun, run_detection
from aiops.transform import output_step
from aiops.store import DetectorRecord
from tasks._runtime import store

__all__ = ["detect_anomalies", "run_detector"]


async def run_detector(
    detector: DetectorRecord,
    frame: pd.DataFrame,
    states: Mapping[str, Any],
    *,
    mode: str,
    flow_run_id: str | None,
    trained_at: datetime | None = None,
    incident_states: Mapping[str, Any] | None = None,
    until: datetime | None = None,
    **payload: Any,
) -> DetectionRun:
    """The core detection run for a stored detector, off the event loop. ``until`` is the last
    step the run covers (missing steps up to it count as normal for the incidents)."""
    ds = detector.datasources[0]
    return await to_thread.run_sync(
        lambda: run_detection(
            detector_id=detector.id,
            kind=detector.kind,
            params=detector.params,
            threshold=detector.threshold,
            mode=mode,
            frame=frame,
            states=states,
            params_hash=detector.spec_hash,
            trained_at=trained_at,
            flow_run_id=flow_run_id,
            payload={"datasource": ds.name, "query": ds.query, **payload},
            incident_states=incident_states,
            resolve_after=detector.resolve_after,
            step=output_step(detector.transforms, float(ds.step_seconds)),
            until=until,
        )
    )


@task(name="detect-anomalies", task_run_name="detect {detector.id}")
async def detect_anomalies(
    detector: DetectorRecord,
    frame: pd.DataFrame,
    flow_run_id: str | None = None,
    until: datetime | None = None,
) -> DetectionRun:
    """``training`` detectors fit (no events); ``running`` detectors score and return anomalies
    and the incidents they open, grow or resolve (continuing the stored incident states)."""
    states = await to_thread.run_sync(store().load_states, detector.id)
    running = detector.status == "running"
    incident_states = (
        await to_thread.run_sync(store().load_incident_states, detector.id) if running else {}
    )
    run = await run_detector(
        detector,
        frame,
        states,
        mode="running" if running else "training",
        flow_run_id=flow_run_id,
        trained_at=detector.status_changed_at if running else None,
        incident_states=incident_states,
        until=until,
    )
    get_run_logger().info("detector %s (%s): %s", detector.id, run.mode, run.summary())
    return run
