"""Operations and the OpenAPI document built from them.

Each HTTP endpoint is one :class:`Operation`: method, path, handler and the pydantic models of
its body, query string, path parameters and responses. The same models validate the request
(:meth:`Operation.endpoint` reads and validates before calling the handler) and generate
``/openapi.json`` (:func:`openapi_document`), so the document is never written by hand.
``/docs`` renders that document as one self-contained HTML page (no CDN: works offline).
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

import orjson
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from typing_extensions import TypeVar

from aiops.api.errors import InvalidBody, JSONResponse, validation_error
from aiops.api.models import ErrorBody

if TYPE_CHECKING:
    from aiops.api.app import ApiState

__all__ = [
    "Operation",
    "Call",
    "operation_routes",
    "openapi_document",
    "docs_html",
    "WEBSOCKET_DOC",
]

Handler = Callable[["Call"], Awaitable[Any]]

_ERROR_STATUSES = {
    400: "bad input (a time, a duration, a query the datasource refused, ...)",
    401: "missing or wrong bearer token",
    404: "not found",
    409: "conflicts with stored data",
    413: "request body too large",
    422: "the body or query string does not match its model",
    429: "too many failed authentication attempts from this client: wait Retry-After seconds",
    500: "unexpected error (logged with a request id; no traceback is returned)",
    502: "the datasource answered something that could not be decoded",
    503: "a datasource, the store or Prefect is unavailable",
    504: "the datasource timed out",
}


_ERROR_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "Bearer",
            "schema": {"type": "string"},
            "required": True,
        }
    },
    429: {
        "Retry-After": {
            "description": "seconds until this client's token is looked at again",
            "schema": {"type": "integer", "minimum": 1},
            "required": True,
        }
    },
}


#: The validated models of an operation's body, query string and path parameters; a handler
#: may say which, ``call: Call[DetectorSpecIn, None, DetectorPath]``; plain ``Call`` is any.
BodyT = TypeVar("BodyT", default=Any)
QueryT = TypeVar("QueryT", default=Any)
PathT = TypeVar("PathT", default=Any)


@dataclass
class Call(Generic[BodyT, QueryT, PathT]):
    """What a handler gets: the request, the app's runtime state and the validated inputs
    (each ``None`` when the operation declares no model for it)."""

    request: Request
    state: ApiState
    body: BodyT = None  # type: ignore[assignment]
    query: QueryT = None  # type: ignore[assignment]
    path: PathT = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    responses: Mapping[int, type[BaseModel] | str | None] = field(
        default_factory=lambda: {200: None}
    )
    errors: tuple[int, ...] = (400, 422)
    public: bool = False
    description: str | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")

    def route(self) -> Route:
        return Route(self.path, self.endpoint, methods=[self.method], name=self.operation_id)

    async def endpoint(self, request: Request) -> Response:
        call = Call(request=request, state=request.app.state.api)
        if self.path_params is not None:
            call.path = _validate(self.path_params, dict(request.path_params), "path")
        if self.query is not None:
            call.query = _validate(self.query, _query_dict(request, self.query), "query")
        if self.body is not None:
            call.body = _validate(self.body, await _json_body(request), "body")
        result = await self.handler(call)
        if isinstance(result, Response):
            return result
        status = next(iter(self.responses))
        if isinstance(result, tuple):
            status, result = result
        if isinstance(result, BaseModel):
            result = result.model_dump(mode="json", by_alias=True)
        return JSONResponse(result, status_code=status)


def operation_routes(operations: Iterable[Operation]) -> list[Route]:
    """One route per path serving every method the operations give it, so a method the path
    does not have is a 405 whose ``Allow`` lists all the ones it does (one route per
    operation would answer with the first route's methods only)."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method.upper()] = op
    routes = []
    for path, ops in by_path.items():
        if len(ops) == 1:
            routes.append(next(iter(ops.values())).route())
            continue

        async def dispatch(request: Request, _ops: dict[str, Operation] = ops) -> Response:
            method = "GET" if request.method == "HEAD" else request.method
            return await _ops[method].endpoint(request)

        name = "_".join(op.operation_id for op in ops.values())
        routes.append(Route(path, dispatch, methods=list(ops), name=name))
    return routes


def _validate(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, where) from None


def _query_dict(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    """The query string as a dict (a repeated parameter: the last value wins)."""
    return dict(request.query_params.items())


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise InvalidBody("request body is required (a JSON object)", status_code=400)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidBody(f"malformed JSON body: {exc}", status_code=400) from None
    if not isinstance(data, dict):
        raise InvalidBody(
            f"the body must be a JSON object, not {type(data).__name__}", status_code=400
        )
    return data


# --------------------------------------------------------------------------- the document

WEBSOCKET_DOC = {
    "path": "/api/events/ws",
    "summary": "Live events as JSON, with resume (?since=<event id>)",
    "query": {
        "since": "event id: replay every event after it, then go live (no gap, no duplicate)",
        "detector": "only events of this detector (repeatable)",
        "type": "only events of this type, e.g. incident.opened (repeatable)",
        "anomalies": "true to also receive per-point anomaly events (the default stream speaks "
        "incidents: incident.opened, incident.resolved, log.*)",
        "include_backfill": "true to also receive incidents and anomalies found by backfills "
        "(history, left out by default)",
        "token": "the bearer token, when the client cannot send an Authorization header",
    },
    "messages": {
        "hello": '{"op": "hello", "since": <id|null>, "last_id": <id>, "heartbeat_seconds": <s>}',
        "event": '{"op": "event", "id": <id>, "published_at": <unix s>, "event": {...}}',
        "reset": '{"op": "reset", "since": <id>, "last_id": <id>, "reason": "..."} (since is '
        "above the newest event id: the store was reset; forget kept ids, every event of this "
        "store follows)",
        "live": '{"op": "live", "last_id": <id>} (the replay is over)',
        "heartbeat": '{"op": "heartbeat", "last_id": <id>, "server_time": <unix s>}',
    },
    "close_codes": {
        "1001/1012": "server shutting down or restarting: reconnect with ?since=<last id received>",
        "4008": "slow consumer: resume with ?since=<last id>",
        "1011": "internal error: resume with ?since=<last id>",
        "HTTP 401 / 400": "the handshake is refused for a missing/wrong token or bad query "
        "parameters",
    },
}


def openapi_document(
    operations: Iterable[Operation], *, title: str, version: str
) -> dict[str, Any]:
    ops = list(operations)
    models: dict[type[BaseModel], None] = {ErrorBody: None}
    for op in ops:
        for model in (op.body, *op.responses.values()):
            if isinstance(model, type) and issubclass(model, BaseModel):
                models[model] = None
    inputs = [(m, "validation") for m in models if any(m is op.body for op in ops)]
    outputs = [(m, "serialization") for m in models if not any(m is op.body for op in ops)]
    keys, schema = models_json_schema(inputs + outputs, ref_template="#/components/schemas/{model}")
    components = schema.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return keys[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for op in ops:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": _parameters(op),
            "responses": {},
        }
        if op.description:
            item["description"] = op.description
        if op.public:
            item["security"] = []
        if op.body is not None:
            item["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        for status, model in op.responses.items():
            if status == 204:
                item["responses"]["204"] = {"description": "done (no content)"}
            elif isinstance(model, str):
                item["responses"][str(status)] = {
                    "description": "OK",
                    "content": {model: {"schema": {"type": "string"}}},
                }
            elif model is None:
                item["responses"][str(status)] = {
                    "description": "OK",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            else:
                item["responses"][str(status)] = {
                    "description": (model.__doc__ or "OK").strip().splitlines()[0],
                    "content": {"application/json": {"schema": ref(model, "serialization")}},
                }
        statuses = (
            set(op.errors)
            | ({401, 429} if not op.public else set())
            | ({413, 422, 400} if op.body else set())
        )
        for status in sorted(statuses | {500}):
            answer: dict[str, Any] = {
                "description": _ERROR_STATUSES.get(status, "error"),
                "content": {"application/json": {"schema": ref(ErrorBody, "serialization")}},
            }
            if status in _ERROR_HEADERS:
                answer["headers"] = _ERROR_HEADERS[status]
            item["responses"].setdefault(str(status), answer)
        paths.setdefault(op.path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                'JSON in and out. Errors are {"error": "...", "detail": ...}. '
                "Every operation except the health check and /metrics needs "
                "`Authorization: Bearer <AIOPS_API_TOKEN>` when a token is configured. "
                "Live events: WebSocket " + WEBSOCKET_DOC["path"] + " (see x-websocket)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "x-websocket": WEBSOCKET_DOC,
    }


def _parameters(op: Operation) -> list[dict[str, Any]]:
    out = []
    for location, model in (("path", op.path_params), ("query", op.query)):
        if model is None:
            continue
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = dict(prop)
            description = prop.pop("description", None)
            prop.pop("title", None)
            param = {
                "name": name,
                "in": location,
                "required": location == "path" or name in required,
                "schema": prop,
            }
            if description:
                param["description"] = description
            out.append(param)
    return out


# --------------------------------------------------------------------------- the docs page

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font:15px/1.45 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
h2{{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}}
details{{border:1px solid #e3e3e3;border-radius:6px;margin:.5em 0;padding:.4em .8em}}
summary{{cursor:pointer}} code,pre{{font:13px ui-monospace,monospace}}
pre{{background:#f6f8fa;padding:.6em;overflow:auto;border-radius:4px}}
.m{{display:inline-block;width:4.5em;font-weight:600}} .GET{{color:#0a6}} .POST{{color:#06c}}
.PATCH{{color:#a60}} .DELETE{{color:#c22}} .WS{{color:#70c}} .pub{{color:#888;font-size:12px}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ddd;padding:2px 6px;text-align:left}}
</style></head><body>
<h1>{title} <small>{version}</small></h1><p>{description}</p>
<p>The machine-readable document: <a href="/openapi.json"><code>/openapi.json</code></a>.</p>
{sections}
</body></html>"""


def docs_html(document: Mapping[str, Any]) -> str:
    esc = html.escape
    by_tag: dict[str, list[str]] = {}
    schemas = document.get("components", {}).get("schemas", {})
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            params = "".join(
                f"<tr><td><code>{esc(p['name'])}</code></td><td>{esc(p['in'])}</td><td>"
                f"{'yes' if p.get('required') else ''}</td><td>{esc(p.get('description', ''))}"
                "</td></tr>"
                for p in op.get("parameters", [])
            )
            body = ""
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                body = (
                    "<p>Body "
                    f"<code>{esc(name)}</code>:</p><pre>{esc(_pretty(schemas.get(name, {})))}"
                    "</pre>"
                )
            responses = ", ".join(esc(code) for code in op["responses"])
            public = ' <span class="pub">(no token)</span>' if op.get("security") == [] else ""
            by_tag.setdefault(op["tags"][0], []).append(
                f"<details><summary><span class='m {method.upper()}'>{method.upper()}</span>"
                f"<code>{esc(path)}</code> — {esc(op['summary'])}{public}</summary>"
                + (f"<p>{esc(op['description'])}</p>" if op.get("description") else "")
                + (
                    f"<table><tr><th>parameter</th><th>in</th><th>required</th><th></th></tr>{params}</table>"
                    if params
                    else ""
                )
                + body
                + f"<p>Responses: {responses}</p></details>"
            )
    ws = document.get("x-websocket")
    if ws:
        rows = "".join(
            f"<tr><td><code>{esc(k)}</code></td><td>{esc(v)}</td></tr>"
            for k, v in ws["query"].items()
        )
        msgs = "".join(f"<li><code>{esc(v)}</code></li>" for v in ws["messages"].values())
        codes = "".join(
            f"<li><code>{esc(k)}</code>: {esc(v)}</li>" for k, v in ws["close_codes"].items()
        )
        by_tag.setdefault("events", []).append(
            f"<details open><summary><span class='m WS'>WS</span><code>{esc(ws['path'])}</code> — "
            f"{esc(ws['summary'])}</summary><table>{rows}</table><p>Messages:</p><ul>{msgs}</ul>"
            f"<p>Close codes:</p><ul>{codes}</ul></details>"
        )
    sections = "".join(f"<h2>{esc(tag)}</h2>{''.join(items)}" for tag, items in by_tag.items())
    info = document["info"]
    return _PAGE.format(
        title=esc(info["title"]),
        version=esc(info["version"]),
        description=_inline_code(esc(info.get("description", ""))),
        sections=sections,
    )


def _pretty(schema: Mapping[str, Any]) -> str:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode()


def _inline_code(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
