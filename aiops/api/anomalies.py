"""``GET /api/anomalies``: anomalies by detector and time, paginated by id."""

from __future__ import annotations

from typing import Any

from aiops.api.models import AnomalyPage, AnomalyQuery
from aiops.api.openapi import Call, Operation
from aiops.errors import InvalidInput
from aiops.timeutil import datetime_from_seconds

__all__ = ["OPERATIONS"]


async def list_anomalies(call: Call) -> Any:
    state = call.state
    q: AnomalyQuery = call.query
    if q.since is not None and q.until is not None and q.since > q.until:
        raise InvalidInput("since must not be after until", field="since")
    items = await state.db(
        state.store.list_anomalies,
        q.detector,
        None if q.since is None else datetime_from_seconds(q.since),
        None if q.until is None else datetime_from_seconds(q.until),
        q.after_id,
        q.limit,
        source=q.source,
        backfill_id=q.backfill_id,
    )
    return {
        "items": [e.model_dump(mode="json") for e in items],
        "count": len(items),
        "next_after_id": items[-1].id if len(items) == q.limit else None,
    }


OPERATIONS = [
    Operation(
        "GET",
        "/api/anomalies",
        list_anomalies,
        "Anomalies, oldest first, paginated by id",
        "anomalies",
        query=AnomalyQuery,
        responses={200: AnomalyPage},
        errors=(400, 422),
        description="Filter by `detector`, `since <= ts < until` and `source` (`live`, "
        "`backfill` or `all`; backfilled anomalies carry their `backfill_id`). Pass the answer's "
        "`next_after_id` as `after_id` for the next page; it is null on the last page.",
    ),
]
