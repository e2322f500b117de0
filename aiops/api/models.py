"""Request and response models of the API. These same classes validate requests and generate
``/openapi.json`` (see :mod:`aiops.api.openapi`), so the document cannot drift from the code.

Every request model forbids unknown fields: a typo is a 422 naming the field, and no body can
smuggle a datasource URL (datasources are referenced by configured name only).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from aiops.logql import LogQLSpec
from aiops.promql import PromQLSpec
from aiops.store.models import (
    DATASOURCE_NAME_PATTERN,
    DETECTOR_ID_PATTERN,
    EVENT_TYPE_PATTERN,
    KIND_PATTERN,
    CollectorStatus,
    Detector,
    DetectorDatasource,
    Event,
    Incident,
)
from aiops.store.models import parse_duration as parse_whole_seconds
from aiops.errors import InvalidInput
from aiops.incidents import DEFAULT_RESOLVE_AFTER, MAX_RESOLVE_AFTER
from aiops.timeutil import parse_duration, parse_time

__all__ = [
    "ApiModel",
    "Time",
    "Duration",
    "PromQueryRequest",
    "PromBuilderRequest",
    "LokiQueryRequest",
    "LokiBuilderRequest",
    "LogAnalyzeRequest",
    "DatasourceAttachRequest",
    "DetectorCreateRequest",
    "DetectorPatchRequest",
    "RunRequest",
    "HealthQuery",
    "AnomalyQuery",
    "IncidentQuery",
    "IncidentPath",
    "IncidentPage",
    "IncidentDetail",
    "IncidentPointsQuery",
    "DatasourceRemoveQuery",
    "DetectorListQuery",
    "DetectorPath",
    "RunPath",
    "ErrorBody",
    "HealthResponse",
    "CollectorsResponse",
    "QueryResponse",
    "BuiltQueryResponse",
    "AnalyzeResponse",
    "RunResponse",
    "DetectorList",
    "AnomalyPage",
    "DatasourceRemoved",
    "FLOWS",
    "LOKI_MAX_LIMIT",
    "MAX_ANALYZE_LINES",
]

FLOWS = ("detect-metrics", "analyze-logs", "backfill")
LOKI_MAX_LIMIT = 5_000
MAX_ANALYZE_LINES = 100_000
MAX_QUERY_CHARS = 64_000
MAX_ID = 2**63 - 1  # ids are 64-bit integers in the store
MAX_SECONDS = 10 * 366 * 86_400  # intervals, steps, lookbacks, training windows: at most ~10 years


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- value types


def _time(value: Any) -> float:
    # A number, RFC 3339, "now", "now-1h" or "-15m": resolved when the request is read.
    try:
        return parse_time(value, field="time")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _duration(value: Any) -> float:
    try:
        return parse_duration(value, field="duration")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _whole_seconds(value: Any) -> int:
    try:
        return parse_whole_seconds(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


_DURATION_TEXT = r"^\s*(\d+(\.\d+)?(ms|s|m|h|d|w|y))+\s*$|^\s*\d+(\.\d+)?\s*$"

Time = Annotated[
    float,
    BeforeValidator(_time),
    WithJsonSchema(
        {
            "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
            "description": "Unix seconds, RFC 3339, 'now', 'now-1h' or '-15m'",
            "examples": ["now-1h", "2026-01-01T00:00:00Z", 1767225600],
        }
    ),
]
Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": _DURATION_TEXT},
            ],
            "description": "seconds, or a duration such as 30s, 5m, 1h30m",
            "examples": ["1m", 60],
        }
    ),
]
WholeSeconds = Annotated[
    int,
    BeforeValidator(_whole_seconds),
    Field(gt=0, le=MAX_SECONDS),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
                {"type": "string", "pattern": r"^\s*(\d+(ms|s|m|h|d|w))+\s*$|^\s*\d+\s*$"},
            ],
            "description": "whole seconds, or a duration such as 30s, 5m, 1h30m, 1d",
        }
    ),
]
DatasourceName = Annotated[str, StringConstraints(pattern=DATASOURCE_NAME_PATTERN)]
DetectorId = Annotated[str, StringConstraints(pattern=DETECTOR_ID_PATTERN)]
EventType = Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)]
QueryText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)]


def _instant_or_range(time: Any, start: Any, end: Any, step: Any, *, step_required: bool) -> None:
    ranged = [x is not None for x in (start, end)] + ([step is not None] if step_required else [])
    if any(ranged) and not all(ranged):
        need = "start, end and step" if step_required else "start and end"
        raise ValueError(f"a range query needs {need} together")
    if time is not None and any(ranged):
        raise ValueError("give either time (instant query) or start/end (range query), not both")
    if not step_required and step is not None and start is None:
        raise ValueError("step only applies to a range query (give start and end)")


# --------------------------------------------------------------------------- datasource queries


class PromQueryRequest(ApiModel):
    """Instant query (``query``, optional ``time``) or range query (``query``, ``start``,
    ``end``, ``step``) against a configured Prometheus datasource."""

    query: QueryText
    time: Time | None = None
    start: Time | None = None
    end: Time | None = None
    step: Duration | None = None
    datasource: DatasourceName = "prometheus"

    @model_validator(mode="after")
    def _shape(self) -> PromQueryRequest:
        _instant_or_range(self.time, self.start, self.end, self.step, step_required=True)
        return self


class PromBuilderRequest(PromQLSpec):
    """A :class:`~aiops.promql.PromQLSpec` plus how to run it. ``execute: false`` only builds."""

    execute: bool = True
    time: Time | None = None
    start: Time | None = None
    end: Time | None = None
    step: Duration | None = None
    datasource: DatasourceName = "prometheus"

    @model_validator(mode="after")
    def _shape(self) -> PromBuilderRequest:
        _instant_or_range(self.time, self.start, self.end, self.step, step_required=True)
        return self

    def spec(self) -> PromQLSpec:
        return PromQLSpec.model_validate(self.model_dump(include=set(PromQLSpec.model_fields)))


class LokiQueryRequest(ApiModel):
    """Instant metric query (``query``, optional ``time``) or a range query (``start``,
    ``end``; ``step`` for metric queries, ``limit``/``direction`` for log queries)."""

    query: QueryText
    time: Time | None = None
    start: Time | None = None
    end: Time | None = None
    step: Duration | None = None
    limit: int = Field(100, ge=1, le=LOKI_MAX_LIMIT)
    direction: Literal["forward", "backward"] = "backward"
    datasource: DatasourceName = "loki"

    @model_validator(mode="after")
    def _shape(self) -> LokiQueryRequest:
        _instant_or_range(self.time, self.start, self.end, self.step, step_required=False)
        return self


class LokiBuilderRequest(LogQLSpec):
    """A :class:`~aiops.logql.LogQLSpec` plus how to run it. A log query without ``start``
    and ``end`` runs over the last hour; a metric query without them is an instant query."""

    execute: bool = True
    time: Time | None = None
    start: Time | None = None
    end: Time | None = None
    step: Duration | None = None
    limit: int = Field(100, ge=1, le=LOKI_MAX_LIMIT)
    direction: Literal["forward", "backward"] = "backward"
    datasource: DatasourceName = "loki"

    @model_validator(mode="after")
    def _shape(self) -> LokiBuilderRequest:
        _instant_or_range(self.time, self.start, self.end, self.step, step_required=False)
        return self

    def spec(self) -> LogQLSpec:
        return LogQLSpec.model_validate(self.model_dump(include=set(LogQLSpec.model_fields)))


class LogAnalyzeRequest(ApiModel):
    """Either ``lines`` posted in the body, or a LogQL ``selector`` with a window
    (``since``, or ``start``/``end``; default the last hour) read from Loki."""

    lines: list[str] | None = Field(None, max_length=MAX_ANALYZE_LINES)
    labels: dict[str, str] | None = None
    default_time: Time | None = None
    selector: QueryText | None = None
    since: Duration | None = None
    start: Time | None = None
    end: Time | None = None
    datasource: DatasourceName = "loki"
    bucket: Duration = 3600.0
    top_templates: int = Field(100, ge=1, le=1000)

    @model_validator(mode="after")
    def _shape(self) -> LogAnalyzeRequest:
        if (self.lines is None) == (self.selector is None):
            raise ValueError("give either lines or selector")
        if self.lines is not None:
            if any(v is not None for v in (self.since, self.start, self.end)):
                raise ValueError("since/start/end apply to a selector, not to posted lines")
        else:
            if self.labels is not None or self.default_time is not None:
                raise ValueError("labels/default_time apply to posted lines, not to a selector")
            if self.since is not None and (self.start is not None or self.end is not None):
                raise ValueError("give either since or start/end")
            if self.end is not None and self.start is None:
                raise ValueError("end needs start")
        return self


# --------------------------------------------------------------------------- detectors


class DatasourceAttachRequest(ApiModel):
    """The configured datasource (by name; never a URL) and query that feed a detector."""

    name: DatasourceName = "prometheus"
    query: QueryText
    step_seconds: WholeSeconds = Field(60, validation_alias=AliasChoices("step_seconds", "step"))
    lookback_seconds: WholeSeconds = Field(
        3600, validation_alias=AliasChoices("lookback_seconds", "lookback")
    )


class DetectorCreateRequest(ApiModel):
    """A new detector. ``kind``/``params`` are checked against ``aiops.detectors``."""

    id: DetectorId
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    kind: Annotated[str, StringConstraints(pattern=KIND_PATTERN, max_length=64)]
    params: dict[str, Any] = Field(default_factory=dict)
    status: Literal["training", "running", "paused"] | None = None
    threshold: float = Field(1.0, gt=0, allow_inf_nan=False)
    resolve_after: int = Field(
        DEFAULT_RESOLVE_AFTER, ge=0, le=MAX_RESOLVE_AFTER, strict=True,
        description="normal steps allowed inside one incident; the next normal step resolves it",
    )
    interval_seconds: WholeSeconds = Field(60, validation_alias=AliasChoices("interval_seconds", "interval"))
    training_window_seconds: WholeSeconds | None = Field(
        None, validation_alias=AliasChoices("training_window_seconds", "training_window")
    )
    datasource: DatasourceAttachRequest | None = None


class DetectorPatchRequest(ApiModel):
    """Fields to change. ``status``: promote ``training`` -> ``running``, pause, resume."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] | None = None
    kind: Annotated[str, StringConstraints(pattern=KIND_PATTERN, max_length=64)] | None = None
    params: dict[str, Any] | None = None
    status: Literal["training", "running", "paused"] | None = None
    threshold: float | None = Field(None, gt=0, allow_inf_nan=False)
    resolve_after: int | None = Field(None, ge=0, le=MAX_RESOLVE_AFTER, strict=True)
    interval_seconds: WholeSeconds | None = Field(
        None, validation_alias=AliasChoices("interval_seconds", "interval")
    )
    training_window_seconds: WholeSeconds | None = Field(
        None, validation_alias=AliasChoices("training_window_seconds", "training_window")
    )

    @model_validator(mode="after")
    def _something(self) -> DetectorPatchRequest:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one field")
        nullable = {"training_window_seconds"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


# --------------------------------------------------------------------------- runs


class RunRequest(ApiModel):
    """Trigger ``<flow>/default``; returns at once (the run is scheduled, not awaited)."""

    flow: Literal["detect-metrics", "analyze-logs", "backfill"]
    parameters: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class BackfillParameters(ApiModel):
    """The parameters of a ``backfill`` run, checked before the run is triggered."""

    detector_ids: list[DetectorId] = Field(default_factory=list, max_length=500)
    log_jobs: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=100)
    start: Time
    end: Time
    window: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "1d"
    train: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    log_window: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "1h"
    backfill_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")] | None = None
    max_windows: int | None = Field(None, ge=1)
    emit_events: bool = False


class BackfillPath(ApiModel):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


class BackfillStatus(BaseModel):
    backfill_id: str
    total: int
    done: int
    failed: int
    pending: int
    running: int
    anomalies: int = Field(description="anomalies stored with this backfill id")


# --------------------------------------------------------------------------- query strings and paths


class HealthQuery(ApiModel):
    probe: bool = Field(False, description="actively probe every URL's readiness endpoint")


class AnomalyQuery(ApiModel):
    detector: DetectorId | None = None
    source: Literal["all", "live", "backfill"] = Field(
        "all", description="live anomalies, backfilled ones, or all (the default)"
    )
    backfill_id: str | None = Field(None, max_length=64, description="only the anomalies of this backfill")
    since: Time | None = None
    until: Time | None = None
    after_id: int | None = Field(None, ge=0, le=MAX_ID, description="cursor: the next_after_id of the previous page")
    limit: int = Field(100, ge=1, le=1000)


class IncidentQuery(ApiModel):
    detector: DetectorId | None = None
    state: Literal["open", "resolved"] | None = Field(None, description="open or resolved incidents (default: both)")
    source: Literal["all", "live", "backfill"] = Field(
        "all", description="live incidents, backfilled ones, or all (the default)"
    )
    backfill_id: str | None = Field(None, max_length=64, description="only the incidents of this backfill")
    since: Time | None = Field(None, description="incidents still open at or after this time (not resolved before it)")
    until: Time | None = Field(None, description="incidents opened before this time")
    after_id: int | None = Field(None, ge=0, le=MAX_ID, description="cursor: the next_after_id of the previous page")
    limit: int = Field(100, ge=1, le=1000)
    order: Literal["asc", "desc"] = Field(
        "asc", description="asc: oldest first, paginated with after_id; desc: newest first (one page, for feeds)"
    )


class IncidentPath(ApiModel):
    id: int = Field(ge=1, le=MAX_ID)


class IncidentPointsQuery(ApiModel):
    points_limit: int = Field(1000, ge=1, le=10_000, description="at most this many anomaly rows")


class DetectorListQuery(ApiModel):
    status: Literal["training", "running", "paused"] | None = None


class DatasourceRemoveQuery(ApiModel):
    name: DatasourceName | None = Field(None, description="remove only this datasource (default: all)")


class DetectorPath(ApiModel):
    id: DetectorId


class RunPath(ApiModel):
    id: UUID


# --------------------------------------------------------------------------- responses


class ErrorBody(BaseModel):
    error: str
    detail: dict[str, Any] | None = None


class UrlHealthOut(BaseModel):
    url: str
    status: Literal["up", "degraded", "down", "unknown"]
    latency_ms: float | None
    last_error: str | None
    last_error_at: str | None
    last_ok_at: str | None
    consecutive_failures: int
    requests: int
    failures: int


class DatasourceHealthOut(BaseModel):
    name: str
    type: str
    status: Literal["up", "degraded", "down", "unknown"]
    active_url: str | None
    urls: list[UrlHealthOut]


class HealthResponse(BaseModel):
    status: Literal["up", "degraded", "down", "unknown"]
    probed: bool
    datasources: list[DatasourceHealthOut]


class ReadinessResponse(BaseModel):
    """Whether the API is ready to serve (its store answers); nothing else"""

    status: Literal["ready", "not ready"]


class CollectorsResponse(BaseModel):
    collectors: list[CollectorStatus]


class QueryResponse(BaseModel):
    """A Prometheus/Loki result: ``resultType``, ``result``, ``cached``, ``age_seconds``..."""

    model_config = ConfigDict(extra="allow")

    datasource: str
    resultType: str
    query: str
    cached: bool = False


class BuiltQueryResponse(BaseModel):
    query: str
    result: QueryResponse | None = None


class RunResponse(BaseModel):
    id: str
    flow: str | None = None
    deployment: str | None = None
    state: str
    state_name: str | None = None
    url: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    created_at: str | None = None


class AnalyzeResponse(BaseModel):
    mode: Literal["sync", "async"]
    source: str
    window: dict[str, Any] | None = None
    lines: int | None = None
    truncated: bool = False
    report: dict[str, Any] | None = None
    run: RunResponse | None = None
    reason: str | None = None


class DetectorList(BaseModel):
    detectors: list[Detector]


class AnomalyPage(BaseModel):
    items: list[Event]
    count: int
    next_after_id: int | None = Field(
        description="pass as after_id for the next page; null when this page was the last"
    )


class IncidentPage(BaseModel):
    items: list[Incident]
    count: int
    next_after_id: int | None = Field(
        description="pass as after_id for the next page; null when this page was the last"
    )


class IncidentDetail(BaseModel):
    """An incident with its points (the anomaly rows inside it, oldest first)"""

    incident: Incident
    points: list[Event]
    points_truncated: bool = Field(description="true when the incident has more points than points_limit")


class DatasourceRemoved(BaseModel):
    detector: str
    removed: int


class DatasourceAttached(BaseModel):
    detector: str
    datasource: DetectorDatasource
    warnings: list[str] = Field(
        default_factory=list,
        description="how the query reads samples at this step, when some would be lost (e.g. a step "
        "longer than the datasource's lookback delta)",
    )


class DetectorSaved(Detector):
    """The detector as saved, with warnings about how its query reads samples"""

    warnings: list[str] = Field(
        default_factory=list,
        description="how the query reads samples at its step, when some would be lost (e.g. a step "
        "longer than the datasource's lookback delta)",
    )
