"""Persist a detection run, then publish its anomalies as Prefect events.

Persist first: the store row is the truth (the API's WebSocket tails it); the Prefect events
are emitted only for rows actually inserted, so a re-run publishes nothing twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from anyio import to_thread
from prefect import get_run_logger, task
from prefect.events import emit_event

from aiops.pipeline import DetectionRun
from aiops.store import Detector, Event
from tasks._runtime import store

__all__ = ["publish_detection", "event_payload", "emit_anomalies"]

#: Prefect events per detector and run; beyond it one summary event says how many more.
MAX_EVENTS_PER_RUN = 100


def event_payload(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "detector": event.detector_id,
        "series": event.series_key,
        "labels": event.labels,
        "ts": event.ts.isoformat(),
        "value": event.value,
        "score": event.score,
        "expected": event.expected,
        "lower": event.lower,
        "upper": event.upper,
        "severity": event.severity,
        "model_kind": event.model_kind,
        "params_hash": event.params_hash,
        "flow_run_id": event.flow_run_id,
        "backfill_id": event.backfill_id,
    }


def emit_anomalies(detector: Detector, inserted: list[Event]) -> None:
    """Prefect events for newly stored anomalies (at most ``MAX_EVENTS_PER_RUN``, then one
    summary event)."""
    resource = {"prefect.resource.id": f"aiops.detector.{detector.id}", "prefect.resource.name": detector.name}
    for event in inserted[:MAX_EVENTS_PER_RUN]:
        emit_event(event="aiops.anomaly.detected", resource=resource, payload=event_payload(event))
    if len(inserted) > MAX_EVENTS_PER_RUN:
        emit_event(
            event="aiops.anomaly.batch",
            resource=resource,
            payload={"count": len(inserted), "emitted": MAX_EVENTS_PER_RUN, "first_id": inserted[0].id, "last_id": inserted[-1].id},
        )


@task(name="publish-anomalies", task_run_name="publish {detector.id}")
async def publish_detection(
    detector: Detector, run: DetectionRun, checkpoint: datetime, collection: dict[str, int]
) -> int:
    """Commit events, states, checkpoint and collector status in one transaction, then emit."""
    log = get_run_logger()
    trained_at = datetime.now(tz=checkpoint.tzinfo) if run.mode == "training" and run.states else None
    inserted = await to_thread.run_sync(
        lambda: store().commit_detection(
            detector.id,
            events=run.events,
            states=run.states,
            trained_at=trained_at,
            checkpoint=checkpoint,
            collection=collection,
            latest=run.latest,
        )
    )
    emit_anomalies(detector, inserted)
    if inserted:
        log.warning("detector %s: %d new anomalies (ids %d..%d)", detector.id, len(inserted), inserted[0].id, inserted[-1].id)
    return len(inserted)
