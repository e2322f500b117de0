"""Every error the API answers is ``{"error": "<message>", "detail": <object or null>}``.

The status comes from the exception: :mod:`aiops.errors` classes carry ``status_code``
(InvalidInput 400, NotFound 404, Conflict 409, BadQuery 400, DatasourceUnavailable 503,
DatasourceTimeout 504, BadResponse 502, StoreUnavailable 503); the API adds the few it needs::

    AiopsError
    ├── InvalidBody          the body is not JSON, not an object, or fails its model (400/422)
    ├── BodyTooLarge         the body exceeds the limit (413), the limit in ``detail``
    └── RunnerUnavailable    the Prefect server cannot be reached (503)

Unexpected exceptions become a 500 with a generic message and a request id; the traceback
goes to the log (with method, path and the request id), never to the client.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from aiops.errors import AiopsError, StoreUnavailable

__all__ = [
    "InvalidBody",
    "BodyTooLarge",
    "RunnerUnavailable",
    "JSONResponse",
    "error_response",
    "validation_error",
    "exception_handlers",
]

log = logging.getLogger("aiops.api")


class InvalidBody(AiopsError):
    """The request (body or query string) could not be read into its model."""

    status_code = 422

    def __init__(self, message: str, *, status_code: int = 422, **detail: Any) -> None:
        super().__init__(message, **detail)
        self.status_code = status_code


class BodyTooLarge(AiopsError):
    status_code = 413


class RunnerUnavailable(AiopsError):
    """Prefect (the run orchestrator) cannot be reached or is not configured."""

    status_code = 503


def _default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_UTC_Z


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


class JSONResponse(Response):
    """JSON through orjson: numpy values, datetimes, NaN as null."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(
    status: int, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail}, status_code=status, headers=headers)


def validation_error(exc: ValidationError, where: str = "body") -> InvalidBody:
    """One readable message (the first problem) plus every problem in ``detail.errors``."""
    errors = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        errors.append({"field": loc or None, "message": msg, "type": err["type"]})
    first = errors[0] if errors else {"field": None, "message": "invalid"}
    prefix = f"{where}.{first['field']}" if first["field"] else where
    return InvalidBody(f"{prefix}: {first['message']}", errors=errors)


async def _aiops_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AiopsError)
    if exc.status_code >= 500:
        log.warning(
            "%s %s -> %d: %s",
            request.method,
            request.url.path,
            exc.status_code,
            exc,
            extra={k: v for k, v in exc.detail.items() if k in ("datasource", "url", "query")},
        )
    return error_response(exc.status_code, exc.message, exc.detail or None)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    if exc.status_code == 413:
        message = "request body too large"
    return error_response(exc.status_code, message, None, dict(exc.headers or {}) or None)


async def _operational_error(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
    err = StoreUnavailable("the store's database is unavailable; try again shortly")
    return error_response(err.status_code, err.message, None)


async def _data_error(request: Request, exc: Exception) -> Response:
    # e.g. PostgreSQL refusing a NUL character or an out-of-range number
    return error_response(400, f"the store refused a value: {getattr(exc, 'orig', exc)}", None)


async def _unexpected(request: Request, exc: Exception) -> Response:
    request_id = uuid.uuid4().hex[:12]
    log.error(
        "unexpected error on %s %s (request id %s)",
        request.method,
        request.url.path,
        request_id,
        exc_info=exc,
        extra={"request_id": request_id, "query_string": request.url.query or None},
    )
    return error_response(500, "internal server error", {"request_id": request_id})


def exception_handlers() -> dict[Any, Any]:
    return {
        AiopsError: _aiops_error,
        HTTPException: _http_error,
        OperationalError: _operational_error,
        DataError: _data_error,
        Exception: _unexpected,
    }
