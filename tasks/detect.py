"""Run one detector over collected samples, continuing each series from its stored state."""

from __future__ import annotations

import pandas as pd
from anyio import to_thread
from prefect import get_run_logger, task

from aiops.pipeline import DetectionRun, run_detection
from aiops.store import Detector
from tasks._runtime import store

__all__ = ["detect_anomalies"]


@task(name="detect-anomalies", task_run_name="detect {detector.id}")
async def detect_anomalies(detector: Detector, frame: pd.DataFrame, flow_run_id: str | None = None) -> DetectionRun:
    """``training`` detectors fit (no events); ``running`` detectors score and return anomalies."""
    log = get_run_logger()
    states = await to_thread.run_sync(store().load_states, detector.id)
    ds = detector.datasources[0]
    run = await to_thread.run_sync(
        lambda: run_detection(
            detector_id=detector.id,
            kind=detector.kind,
            params=detector.params,
            threshold=detector.threshold,
            mode="training" if detector.status == "training" else "running",
            frame=frame,
            states=states,
            params_hash=detector.spec_hash,
            trained_at=detector.status_changed_at if detector.status == "running" else None,
            flow_run_id=flow_run_id,
            payload={"datasource": ds.name, "query": ds.query},
        )
    )
    log.info("detector %s (%s): %s", detector.id, run.mode, run.summary())
    return run
