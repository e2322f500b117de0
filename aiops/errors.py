"""One error hierarchy for the whole project.

::

    AiopsError                      base of everything aiops raises on purpose
    ├── ConfigError                 a setting or config file is wrong (names the setting)
    ├── InvalidInput                bad user input: a time range, a regex, a body field (-> 4xx)
    │   └── UnsupportedPattern      a regex the safe engine cannot run (RE2 syntax)
    ├── NotFound                    a detector / run / report that does not exist (-> 404)
    ├── Conflict                    a write that clashes with stored data (-> 409)
    ├── StoreUnavailable            the database cannot be reached or is locked too long (-> 503)
    └── DatasourceError             anything that went wrong talking to Prometheus or Loki;
        │                           carries datasource, url, query and the upstream message
        ├── BadQuery                the datasource rejected the query (400 bad_data, parse error);
        │                           never retried (-> 400)
        ├── DatasourceUnavailable   every URL refused, failed or answered 5xx/429 after
        │                           retries (-> 503)
        ├── DatasourceTimeout       the datasource did not answer in time (-> 504)
        └── BadResponse             the datasource answered something we cannot decode (-> 502)

Each class maps to exactly one HTTP status in the API (``status_code``); upstream errors are
wrapped at the client boundary, so nothing above the clients sees an ``httpx`` exception.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AiopsError",
    "ConfigError",
    "InvalidInput",
    "UnsupportedPattern",
    "NotFound",
    "Conflict",
    "StoreUnavailable",
    "DatasourceError",
    "BadQuery",
    "DatasourceUnavailable",
    "DatasourceTimeout",
    "BadResponse",
]


class AiopsError(Exception):
    """Base class. ``message`` is for people; ``detail`` is a JSON-able dict for machines."""

    status_code: int = 500

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = {k: v for k, v in detail.items() if v is not None}

    def __str__(self) -> str:
        if not self.detail:
            return self.message
        extra = ", ".join(f"{k}={v!r}" for k, v in self.detail.items())
        return f"{self.message} ({extra})"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.message, "detail": self.detail or None}


class ConfigError(AiopsError):
    """A setting, environment variable or config file entry is wrong."""

    status_code = 400

    def __init__(self, message: str, *, setting: str | None = None, **detail: Any) -> None:
        super().__init__(message, setting=setting, **detail)
        self.setting = setting


class InvalidInput(AiopsError, ValueError):
    """The caller sent something we cannot use. Also a ``ValueError`` for library users."""

    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, **detail: Any) -> None:
        super().__init__(message, field=field, **detail)
        self.field = field


class UnsupportedPattern(InvalidInput):
    """A user-supplied regular expression uses syntax the bounded engine does not support."""

    status_code = 422


class NotFound(AiopsError):
    status_code = 404


class Conflict(AiopsError):
    status_code = 409


class StoreUnavailable(AiopsError):
    """The store's database could not be reached or stayed locked past the busy timeout."""

    status_code = 503


class DatasourceError(AiopsError):
    """Talking to a datasource failed. Carries where and what was asked."""

    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        datasource: str | None = None,
        url: str | None = None,
        query: str | None = None,
        upstream_status: int | None = None,
        **detail: Any,
    ) -> None:
        super().__init__(
            message,
            datasource=datasource,
            url=url,
            query=query,
            upstream_status=upstream_status,
            **detail,
        )
        self.datasource = datasource
        self.url = url
        self.query = query
        self.upstream_status = upstream_status


class BadQuery(DatasourceError):
    """The datasource refused the query itself (HTTP 400/422). Retrying cannot help."""

    status_code = 400


class DatasourceUnavailable(DatasourceError):
    """No URL of the datasource gave an answer after retries and failover."""

    status_code = 503


class DatasourceTimeout(DatasourceError):
    """The datasource (or our deadline) timed out."""

    status_code = 504


class BadResponse(DatasourceError):
    """The datasource answered, but not in the documented shape."""

    status_code = 502
