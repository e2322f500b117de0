"""``/api/detectors``: create, list, read, change (params, promote, pause) and delete.

``kind`` and ``params`` are checked by building the model (``aiops.detectors.create``): an
unknown kind or a bad parameter is a 400 naming the field. A datasource is referenced by its
configured name only.
"""

from __future__ import annotations

import logging
from typing import Any

from aiops.api.models import (
    MAX_MODELS_SHOWN,
    DetectorCreateRequest,
    DetectorList,
    DetectorListQuery,
    DetectorPatchRequest,
    DetectorPath,
    DetectorRead,
    DetectorSaved,
)
from aiops.api.openapi import Call, Operation
from aiops.errors import InvalidInput
from aiops.logql import require_metric_query
from aiops.promql import detector_sampling_notes
from aiops.transform import validate_steps
from aiops.store.models import DetectorRecord
from aiops.triage import TriageLink

__all__ = ["OPERATIONS", "check_model", "check_detector_query", "sampling_warnings"]

log = logging.getLogger(__name__)


def check_model(kind: str, params: dict[str, Any]) -> None:
    """Raise :class:`InvalidInput` unless ``aiops.detectors`` can build ``kind(**params)``."""
    from aiops import detectors

    try:
        detectors.create(kind, **params)
    except InvalidInput:
        raise
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"invalid params for detector kind {kind!r}: {exc}", field="params"
        ) from None


def check_triage(state: Any, link: TriageLink | None) -> None:
    """What the link's own validation cannot know: its log job is configured, its datasource
    is a configured Loki. Raises :class:`InvalidInput` naming ``triage.<field>``."""
    if link is None:
        return
    if link.job is not None:
        jobs = {j.name for j in state.settings.log_jobs}
        if link.job not in jobs:
            raise InvalidInput(
                f"triage.job: no log job named {link.job!r} (configured: "
                f"{', '.join(sorted(jobs)) or 'none'})",
                field="triage.job",
            )
    if link.selector is not None:
        ds = state.configs.get(link.datasource)
        if ds is None or ds.type != "loki":
            raise InvalidInput(
                f"triage.datasource: no Loki datasource named {link.datasource!r}: set "
                "AIOPS_LOKI_URL or add it to the config file",
                field="triage.datasource",
            )


def check_detector_query(config: Any, query: str, field: str) -> None:
    """A detector on a Loki datasource needs a LogQL metric query: a log query is a 400
    naming ``field``."""
    if config.type == "loki":
        require_metric_query(query, field=field)


def _out(detector: DetectorRecord) -> dict[str, Any]:
    return detector.model_dump(mode="json")


def sampling_warnings(state: Any, detector: DetectorRecord) -> list[str]:
    """How the saved detector's query reads its samples, when some would be lost; logged too."""
    notes = detector_sampling_notes(detector, state.configs)
    for note in notes:
        log.warning("detector %s saved: %s", detector.id, note)
    return notes


def _saved(state: Any, detector: DetectorRecord) -> dict[str, Any]:
    return {**_out(detector), "warnings": sampling_warnings(state, detector)}


async def list_detectors(call: Call) -> Any:
    query: DetectorListQuery = call.query
    items = await call.state.db(call.state.store.list_detectors, query.status)
    return {"detectors": [_out(d) for d in items]}


async def create_detector(call: Call) -> Any:
    state = call.state
    body: DetectorCreateRequest = call.body
    check_model(body.kind, body.params)
    link = body.triage.link() if body.triage is not None else None
    check_triage(state, link)
    spec = body.model_dump(exclude_none=True, exclude={"triage"})
    if link is not None:
        spec["triage"] = link
    if body.datasource is not None:
        check_detector_query(
            state.datasource_config(body.datasource.name), body.datasource.query, "datasource.query"
        )
    validate_steps(
        body.transforms, step=float(body.datasource.step_seconds) if body.datasource else None
    )
    created = await state.db(state.store.create_detector, spec)
    return 201, _saved(state, created)


def model_summaries(store: Any, detector_id: str) -> tuple[list[dict[str, Any]], int]:
    """Per series, what the saved model learned (``auto``: what it chose and why)."""
    from aiops import detectors

    states = store.load_states(detector_id)
    out = []
    for series_state in list(states.values())[:MAX_MODELS_SHOWN]:
        try:
            summary = detectors.from_state(series_state.state).describe()
        except InvalidInput as exc:  # a state from another version: say so, do not fail
            summary = {"error": f"saved model could not be read: {exc.message}"}
        out.append(
            {
                "labels": series_state.labels,
                "trained_at": series_state.trained_at,
                "model": summary,
            }
        )
    return out, len(states)


async def get_detector(call: Call) -> Any:
    path: DetectorPath = call.path
    store = call.state.store
    detector = await call.state.db(store.get_detector, path.id)
    models, total = await call.state.db(model_summaries, store, path.id)
    return {**_out(detector), "models": models, "models_total": total}


async def update_detector(call: Call) -> Any:
    state = call.state
    path: DetectorPath = call.path
    body: DetectorPatchRequest = call.body
    changes = body.changes()
    if changes.get("triage") is not None:
        changes["triage"] = changes["triage"].link()
        check_triage(state, changes["triage"])
    if changes.get("transforms") is not None:
        current = await state.db(state.store.get_detector, path.id)
        ds = current.datasource
        validate_steps(changes["transforms"], step=float(ds.step_seconds) if ds else None)
    if "kind" in changes or "params" in changes:
        current = await state.db(state.store.get_detector, path.id)
        kind = changes.get("kind", current.kind)
        params = changes.get("params", current.params if "kind" not in changes else {})
        check_model(kind, params)
        changes.setdefault("params", params)
    return _saved(state, await state.db(state.store.update_detector, path.id, **changes))


async def delete_detector(call: Call) -> Any:
    from starlette.responses import Response

    path: DetectorPath = call.path
    await call.state.db(call.state.store.delete_detector, path.id)
    return Response(status_code=204)


OPERATIONS = [
    Operation(
        "GET",
        "/api/detectors",
        list_detectors,
        "List detectors",
        "detectors",
        query=DetectorListQuery,
        responses={200: DetectorList},
        errors=(422,),
    ),
    Operation(
        "POST",
        "/api/detectors",
        create_detector,
        "Create a detector",
        "detectors",
        body=DetectorCreateRequest,
        responses={201: DetectorSaved},
        errors=(400, 409, 422),
        description="A new detector starts in `training` unless `status` says otherwise. An "
        "existing id is a 409.",
    ),
    Operation(
        "GET",
        "/api/detectors/{id}",
        get_detector,
        "Read a detector",
        "detectors",
        path_params=DetectorPath,
        responses={200: DetectorRead},
        errors=(404, 422),
        description="With `models`: per series, what its model learned; for kind `auto`, the "
        "model it chose (period, resolution, level) and why.",
    ),
    Operation(
        "PATCH",
        "/api/detectors/{id}",
        update_detector,
        "Change a detector: params, threshold, interval; promote or pause",
        "detectors",
        path_params=DetectorPath,
        body=DetectorPatchRequest,
        responses={200: DetectorSaved},
        errors=(400, 404, 409, 422),
        description="Status moves: training -> running (promote), any -> paused, paused -> "
        "training/running; others are a 409. Changing kind or params drops the learned state.",
    ),
    Operation(
        "DELETE",
        "/api/detectors/{id}",
        delete_detector,
        "Delete a detector (its events stay)",
        "detectors",
        path_params=DetectorPath,
        responses={204: None},
        errors=(404, 422),
    ),
]
