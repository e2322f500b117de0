"""Persist a detection run, then publish its incidents as Prefect events.

Persist first: the store row is the truth (the API's WebSocket tails it); the Prefect events
are emitted only for incident events actually inserted, so a re-run publishes nothing twice.
Incidents are what alert: ``aiops.incident.opened`` and ``aiops.incident.resolved``, with the
detector as the resource and the series as a related resource (role ``series``), so a Prefect
Automation can match either. Per-point anomalies stay in the store as the evidence.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from anyio import to_thread
from prefect import get_run_logger, task
from prefect.events import emit_event

from aiops.pipeline import DetectionRun
from aiops.store import EVENT_ANOMALY, INCIDENT_EVENTS, DetectorRecord, Event
from tasks._runtime import store

__all__ = [
    "publish_detection",
    "event_payload",
    "emit_incidents",
    "incident_resources",
    "count_events",
]

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
        **{
            k: event.payload[k]
            for k in (
                "incident_id",
                "opened_at",
                "last_anomalous_at",
                "resolved_at",
                "peak_at",
                "points",
                "reason",
            )
            if k in event.payload
        },
    }


def incident_resources(
    detector: DetectorRecord, event: Event
) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The Prefect resource (the detector) and related resources (the series) of an event.

    The series' resource id is ``aiops.series.<detector>.<16 hex of its key>`` (stable, short);
    its name is the series key and each label is a resource label ``aiops.label.<name>``.
    The detector's label ``aiops.triage`` is ``linked`` when it names a log source for triage
    (the triage automation matches it), else ``none``."""
    digest = hashlib.sha256(event.series_key.encode()).hexdigest()[:16]
    resource = {
        "prefect.resource.id": f"aiops.detector.{detector.id}",
        "prefect.resource.name": detector.name,
        "aiops.series": event.series_key,
        "aiops.severity": event.severity,
        "aiops.triage": "linked" if getattr(detector, "triage", None) is not None else "none",
    }
    series = {
        "prefect.resource.id": f"aiops.series.{detector.id}.{digest}",
        "prefect.resource.role": "series",
        "prefect.resource.name": event.series_key or "(no labels)",
        **{f"aiops.label.{k}": str(v) for k, v in event.labels.items()},
    }
    return resource, [series]


def emit_incidents(detector: DetectorRecord, inserted: list[Event]) -> int:
    """Prefect events ``aiops.incident.opened`` / ``aiops.incident.resolved`` for newly stored
    incident events (at most ``MAX_EVENTS_PER_RUN``, then one ``aiops.incident.batch`` event
    saying how many were left out). Returns how many were emitted."""
    incidents = [e for e in inserted if e.type in INCIDENT_EVENTS]
    for event in incidents[:MAX_EVENTS_PER_RUN]:
        resource, related = incident_resources(detector, event)
        emit_event(
            event=f"aiops.{event.type}",
            resource=resource,
            related=related,
            payload=event_payload(event),
        )
    if len(incidents) > MAX_EVENTS_PER_RUN:
        emit_event(
            event="aiops.incident.batch",
            resource={
                "prefect.resource.id": f"aiops.detector.{detector.id}",
                "prefect.resource.name": detector.name,
            },
            payload={
                "count": len(incidents),
                "emitted": MAX_EVENTS_PER_RUN,
                "first_id": incidents[0].id,
                "last_id": incidents[-1].id,
            },
        )
    return min(len(incidents), MAX_EVENTS_PER_RUN)


def count_events(inserted: list[Event]) -> dict[str, int]:
    """``anomalies``, ``incidents_opened`` and ``incidents_resolved`` among inserted events."""
    return {
        "anomalies": sum(e.type == EVENT_ANOMALY for e in inserted),
        "incidents_opened": sum(e.type == "incident.opened" for e in inserted),
        "incidents_resolved": sum(e.type == "incident.resolved" for e in inserted),
    }


@task(name="publish-anomalies", task_run_name="publish {detector.id}")
async def publish_detection(
    detector: DetectorRecord, run: DetectionRun, checkpoint: datetime, collection: dict[str, int]
) -> dict[str, int]:
    """Commit events, incidents, states, checkpoint and collector status in one transaction,
    then emit the incident events. Returns what was stored (:func:`count_events`)."""
    log = get_run_logger()
    trained_at = (
        datetime.now(tz=checkpoint.tzinfo) if run.mode == "training" and run.states else None
    )
    inserted = await to_thread.run_sync(
        lambda: store().commit_detection(
            detector.id,
            events=run.events,
            states=run.states,
            trained_at=trained_at,
            checkpoint=checkpoint,
            collection=collection,
            latest=run.latest,
            incidents=run.incidents,
            incident_states=run.incident_states,
        )
    )
    emit_incidents(detector, inserted)
    counts = count_events(inserted)
    if counts["anomalies"]:
        log.info("detector %s: %d new anomalous points", detector.id, counts["anomalies"])
    for event in inserted:
        if event.type == "incident.opened":
            log.warning(
                "detector %s: incident %s opened on %s at %s (severity %s, peak score %s)",
                detector.id,
                event.payload.get("incident_id"),
                event.series_key or "(no labels)",
                event.ts.isoformat(),
                event.severity,
                event.score,
            )
        elif event.type == "incident.resolved":
            log.info(
                "detector %s: incident %s on %s resolved at %s (%s points)",
                detector.id,
                event.payload.get("incident_id"),
                event.series_key or "(no labels)",
                event.ts.isoformat(),
                event.payload.get("points"),
            )
    return counts
