"""``GET /api/incidents``, ``GET /api/incidents/{id}`` and ``GET /api/incidents/{id}/triage``:
incidents, the unit of alerting, and what changed in their logs (``aiops.triage``).

An incident is a run of anomalous points of one series (``aiops.incidents``); the anomaly rows
inside it are its evidence, returned with it by ``/api/incidents/{id}`` (and still listed by
``/api/anomalies``).
"""

from __future__ import annotations

from typing import Any

from aiops.api.models import (
    IncidentDetail,
    IncidentPage,
    IncidentPath,
    IncidentPointsQuery,
    IncidentQuery,
    IncidentTriage,
)
from aiops.api.openapi import Call, Operation
from aiops.errors import InvalidInput, NotFound
from aiops.timeutil import to_datetime

__all__ = ["OPERATIONS"]


async def list_incidents(call: Call) -> Any:
    state = call.state
    q: IncidentQuery = call.query
    if q.since is not None and q.until is not None and q.since > q.until:
        raise InvalidInput("since must not be after until", field="since")
    if q.order == "desc" and q.after_id is not None:
        raise InvalidInput("after_id pages oldest first: use it with order=asc", field="after_id")
    items = await state.db(
        state.store.list_incidents,
        q.detector,
        q.state,
        None if q.since is None else to_datetime(q.since),
        None if q.until is None else to_datetime(q.until),
        q.after_id,
        q.limit,
        newest_first=q.order == "desc",
        source=q.source,
        backfill_id=q.backfill_id,
    )
    return {
        "items": [i.model_dump(mode="json") for i in items],
        "count": len(items),
        "next_after_id": items[-1].id if len(items) == q.limit and q.order == "asc" else None,
    }


async def get_incident(call: Call) -> Any:
    state = call.state
    path: IncidentPath = call.path
    q: IncidentPointsQuery = call.query
    incident = await state.db(state.store.get_incident, path.id)
    points = await state.db(state.store.incident_points, incident, q.points_limit + 1)
    try:
        triage = await state.db(state.store.get_triage, path.id)
    except NotFound:
        triage = None
    return {
        "incident": incident.model_dump(mode="json"),
        "points": [p.model_dump(mode="json") for p in points[: q.points_limit]],
        "points_truncated": len(points) > q.points_limit,
        "triage": None
        if triage is None
        else triage.model_dump(
            mode="json", include={"status", "source", "summary", "error", "flow_run_id"}
        ),
    }


async def get_triage(call: Call) -> Any:
    state = call.state
    path: IncidentPath = call.path
    await state.db(
        state.store.get_incident, path.id
    )  # 404 names the incident when it does not exist
    triage = await state.db(state.store.get_triage, path.id)
    return triage.model_dump(mode="json")


OPERATIONS = [
    Operation(
        "GET",
        "/api/incidents",
        list_incidents,
        "Incidents (runs of anomalous points per series), oldest first, paginated by id",
        "incidents",
        query=IncidentQuery,
        responses={200: IncidentPage},
        errors=(400, 422),
        description="Filter by `detector`, `state` (`open` or `resolved`), `source` (`live`, "
        "`backfill` or `all`; backfilled incidents carry their `backfill_id`) and time: `since` "
        "keeps incidents not resolved before it, `until` those opened before it (together: the "
        "incidents overlapping `[since, until)`). Pass the answer's `next_after_id` as "
        "`after_id` for the next page; it is null on the last page. `order=desc` gives the "
        "newest first (one page).",
    ),
    Operation(
        "GET",
        "/api/incidents/{id}",
        get_incident,
        "One incident with its points (the anomaly rows inside it)",
        "incidents",
        path_params=IncidentPath,
        query=IncidentPointsQuery,
        responses={200: IncidentDetail},
        errors=(404, 422),
        description="The points are the anomaly rows of the incident's series from its first to "
        "its last anomalous point, oldest first (at most `points_limit`).",
    ),
    Operation(
        "GET",
        "/api/incidents/{id}/triage",
        get_triage,
        "The incident's log triage: what changed in its detector's logs (docs/triage.md)",
        "incidents",
        path_params=IncidentPath,
        responses={200: IncidentTriage},
        errors=(404, 422),
        description="Started by the Prefect Automation `aiops-incident-triage` when the incident "
        "opened on a detector that names a log source (`triage`). `status` is `running`, `done` "
        "(with `report`: `findings` such as `new_template`, `rate_jump`, `vanished`, "
        "`new_error_type` and `slower`, each with examples and its LogQL, the windows compared, "
        "`top_templates`; and a one-line `summary`) or `failed` (with `error`). 404 while there "
        "is none (no log source, or the run has not started yet).",
    ),
]
