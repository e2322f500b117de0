"""Request and response models of the API. These same classes validate requests and generate
``/openapi.json`` (see :mod:`aiops.api.openapi`), so the document cannot drift from the code.

Every request model forbids unknown fields: a typo is a 422 naming the field, and no body can
smuggle a datasource URL (datasources are referenced by configured name only).
"""

from __future__ import annotations

from datetime import datetime
import re
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
    IncidentTriage,
)
from aiops.errors import InvalidInput
from aiops.incidents import DEFAULT_RESOLVE_AFTER, MAX_RESOLVE_AFTER
from aiops.logs.patterns import MAX_PATTERN_LENGTH, MAX_PATTERNS
from aiops.timeutil import parse_seconds, parse_unix_seconds, parse_whole_seconds
from aiops.triage import TriageLink

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
    "IncidentTriage",
    "TriageRequest",
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
MAX_MODELS_SHOWN = 100  # GET /api/detectors/{id}: per-series model summaries listed
MAX_SECONDS = 10 * 366 * 86_400  # intervals, steps, lookbacks, training windows: at most ~10 years


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- cross-field rules
# The rules a model's validator enforces between fields, written into its JSON schema too, so
# the document says what the server refuses. ``None`` and an absent field are the same here.

_NULL = {"type": "null"}
_SET = {"not": {"type": "null"}}


def _absent(*names: str) -> dict[str, Any]:
    return {"properties": {n: _NULL for n in names}}


def _present(*names: str) -> dict[str, Any]:
    return {"required": list(names), "properties": {n: _SET for n in names}}


def _one_of(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": list(rules)}


def _all(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": list(rules)}


def _not_both(a: str, b: str) -> dict[str, Any]:
    return {"not": _present(a, b)}


def _needs(field: str, other: str) -> dict[str, Any]:
    return _one_of(_absent(field), _present(other))


def _rules(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"allOf": list(rules)}


_INSTANT_OR_RANGE_WITH_STEP = _one_of(
    _absent("start", "end", "step"), _all(_present("start", "end", "step"), _absent("time"))
)
_INSTANT_OR_RANGE = _all(
    _one_of(_absent("start", "end"), _all(_present("start", "end"), _absent("time"))),
    _needs("step", "start"),
)


# --------------------------------------------------------------------------- value types


# The text forms of a time and a duration the API takes, as patterns (in the document too).
_NUM = r"[0-9]+(\.[0-9]+)?"
_NONZERO_NUM = r"(0*[1-9][0-9]*(\.[0-9]+)?|0+\.[0-9]*[1-9][0-9]*)"
_UNIT = r"(ms|s|m|h|d|w|y)"
_DURATION_BODY = rf"(({_NUM}{_UNIT})*{_NONZERO_NUM}{_UNIT}({_NUM}{_UNIT})*|{_NONZERO_NUM})"
DURATION_PATTERN = rf"^\s*{_DURATION_BODY}\s*$"
_DATE = (
    r"(19[7-9][0-9]|2[01][0-9][0-9])-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    r"|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_CLOCK = (
    r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,9})?)?"
    r"(Z|z|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?"
)
# a relative time reaches at most ~46 years back or ahead (the server takes 1970-2200)
_RELATIVE = r"([0-9]{1,7}(ms|s)|[0-9]{1,5}(m|h)|[0-9]{1,4}d|[0-9]{1,3}w){1,2}"
TIME_PATTERN = (
    rf"^\s*(now|now\s*[+-]\s*{_RELATIVE}|-{_RELATIVE}|(0|[1-9][0-9]{{0,8}}|1[0-9]{{9}})(\.[0-9]{{1,6}})?"
    rf"|{_DATE}([Tt ]{_CLOCK})?)\s*$"
)
_TIME_TEXT = re.compile(TIME_PATTERN)
# whole seconds as text, at most ~5 years: the documented subset of what the server reads
WHOLE_SECONDS_PATTERN = (
    r"^\s*([1-9][0-9]{0,7}|([1-9][0-9]{0,6}s|[1-9][0-9]{0,4}m|[1-9][0-9]{0,3}h|[1-9][0-9]{0,2}d"
    r"|[1-9][0-9]?w){1,2})\s*$"
)
# Unix seconds up to 2200, or the same instant in milliseconds, microseconds, nanoseconds
_TIME_NUMBERS = [
    {"type": "number", "minimum": 0, "maximum": 7_258_118_400},
    {"type": "number", "exclusiveMinimum": 1e11, "maximum": 7_258_118_400e3},
    {"type": "number", "exclusiveMinimum": 1e14, "maximum": 7_258_118_400e6},
    {"type": "number", "exclusiveMinimum": 1e17, "maximum": 7_258_118_400e9},
]


def _number_text(value: Any) -> bool:
    """A query string's number (``1e9``, ``1.5``): read as the number it is."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _time(value: Any) -> float:
    # A number, RFC 3339, "now", "now-1h" or "-15m": resolved when the request is read.
    if isinstance(value, str) and _number_text(value) and not value.strip().startswith("-"):
        value = float(value)  # "-15" is 15 seconds ago, as in the pattern
    elif isinstance(value, str) and not _TIME_TEXT.match(value):
        raise ValueError(
            f"time {value!r} is not a time (use RFC 3339, Unix seconds, 'now' or 'now-1h')"
        )
    try:
        return parse_unix_seconds(value, field="time")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _duration(value: Any) -> float:
    if isinstance(value, str) and _number_text(value):
        value = float(value)
    elif isinstance(value, str) and not re.match(DURATION_PATTERN, value):
        raise ValueError(
            f"duration {value!r} is not a positive duration (use e.g. 30s, 5m, 1h30m, or seconds)"
        )
    try:
        return parse_seconds(value, field="duration")
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" includes 20.0; strings and booleans stay refused (strict int)
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _whole_seconds(value: Any) -> int:
    try:
        return parse_whole_seconds(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


Time = Annotated[
    float,
    BeforeValidator(_time),
    WithJsonSchema(
        {
            "anyOf": [*_TIME_NUMBERS, {"type": "string", "pattern": TIME_PATTERN}],
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
                {"type": "string", "pattern": DURATION_PATTERN},
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
                {"type": "string", "pattern": WHOLE_SECONDS_PATTERN},
            ],
            "description": "whole seconds, or a duration such as 30s, 5m, 1h30m, 1d",
        }
    ),
]
DatasourceName = Annotated[str, StringConstraints(pattern=DATASOURCE_NAME_PATTERN)]
ResolveAfter = Annotated[
    int,
    BeforeValidator(_integral),
    Field(ge=0, le=MAX_RESOLVE_AFTER, strict=True),
    WithJsonSchema({"type": "integer", "minimum": 0, "maximum": MAX_RESOLVE_AFTER}),
]
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

    model_config = ConfigDict(extra="forbid", json_schema_extra=_rules(_INSTANT_OR_RANGE_WITH_STEP))

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

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra=_rules(
            _INSTANT_OR_RANGE_WITH_STEP,
            _not_both("group_by", "without"),
            _one_of({"properties": {"function_args": {"maxItems": 0}}}, _present("function")),
            _needs("aggregation_param", "aggregation"),
        ),
    )

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

    model_config = ConfigDict(extra="forbid", json_schema_extra=_rules(_INSTANT_OR_RANGE))

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

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra=_rules(
            _INSTANT_OR_RANGE,
            _one_of(
                _present("selector"),
                {"required": ["labels"], "properties": {"labels": {"minItems": 1}}},
            ),
            _one_of(_absent("range_function", "range"), _present("range_function", "range")),
            _not_both("by", "without"),
            _one_of(_present("range_function"), _absent("aggregation", "by", "without")),
        ),
    )

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


_PATTERN_NAME = r"^[A-Za-z0-9_.:-]{1,64}$"
# The regexes themselves are checked by the handler (RE2: a backreference or lookaround is a
# 400 naming the pattern); the schema says what JSON can say.
LogPatterns = Annotated[
    dict[
        Annotated[str, StringConstraints(pattern=_PATTERN_NAME)],
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_LENGTH)],
    ],
    Field(max_length=MAX_PATTERNS),
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": MAX_PATTERNS,
            "additionalProperties": False,
            "patternProperties": {
                _PATTERN_NAME: {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_PATTERN_LENGTH,
                    "description": "a regular expression, RE2 syntax: no backreferences or "
                    "lookaround",
                },
            },
        }
    ),
]


class LogAnalyzeRequest(ApiModel):
    """Either ``lines`` posted in the body, or a LogQL ``selector`` with a window
    (``since``, or ``start``/``end``; default the last hour) read from Loki."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_rules(
            _one_of(
                _all(_present("lines"), _absent("selector", "since", "start", "end")),
                _all(
                    _present("selector"),
                    _absent("lines", "labels", "default_time"),
                    _not_both("since", "start"),
                    _not_both("since", "end"),
                    _needs("end", "start"),
                ),
            ),
        ),
    )

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
    patterns: LogPatterns | None = Field(
        None,
        description="named anomaly patterns (RE2 syntax) replacing the defaults, as a log job's "
        "`patterns`",
    )

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


class TriageRequest(ApiModel):
    """A detector's log source for triage as posted (``aiops.triage.TriageLink``). What the
    schema cannot say (exactly one source, a selector that parses, the windows' bounds) is
    checked by :meth:`link`: a 400 naming ``triage.<field>``."""

    selector: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        None,
        description="LogQL stream selector; `$name` or `${name}` in a value is the series label "
        '`name`, e.g. `{app="$service"}`',
    )
    job: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")] | None = Field(
        None, description="a configured log job"
    )
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = Field(
        None, description="a local log file under AIOPS_LOG_ROOTS"
    )
    datasource: DatasourceName = Field("loki", description="the Loki datasource of `selector`")
    lead: WholeSeconds | None = Field(
        None,
        description="how long before the onset the incident window starts (default 5m, at most 1d)",
    )
    max_window: WholeSeconds | None = Field(
        None, description="the incident window's longest length (default 1h, 1m to 1d)"
    )
    baselines: list[Literal["previous", "day", "week"]] | None = Field(
        None,
        min_length=1,
        max_length=3,
        description="the windows compared with the incident's (default all three)",
    )

    def link(self) -> TriageLink:
        from pydantic import ValidationError

        from aiops.store.models import invalid_input_from

        try:
            return TriageLink.model_validate(self.model_dump(exclude_none=True))
        except ValidationError as exc:
            raise invalid_input_from(exc, "triage.") from None


TRANSFORMS_DESCRIPTION = (
    'transform steps after standardisation, in order: `{"op": "resample", "step": "5m", '
    '"how": "avg"}`, `{"op": "rolling", "window": "10m", "how": "avg"}`, `{"op": "aggregate", '
    '"how": "sum", "by": ["job"]}` (`how`: sum, avg, min, max, count, median); a bad step is a '
    "400 naming "
    "`transforms[i].<field>`"
)


class DetectorCreateRequest(ApiModel):
    """A new detector. ``kind``/``params`` are checked against ``aiops.detectors``."""

    id: DetectorId
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    kind: Annotated[str, StringConstraints(pattern=KIND_PATTERN, max_length=64)] = Field(
        "auto", description="the model; `auto` (the default) picks one from the series and says why"
    )
    params: dict[str, Any] = Field(default_factory=dict)
    status: Literal["training", "running", "paused"] | None = None
    threshold: float = Field(1.0, gt=0, allow_inf_nan=False)
    resolve_after: ResolveAfter = Field(
        DEFAULT_RESOLVE_AFTER,
        description="normal steps allowed inside one incident; the next normal step resolves it",
    )
    interval_seconds: WholeSeconds = Field(
        60, validation_alias=AliasChoices("interval_seconds", "interval")
    )
    training_window_seconds: WholeSeconds | None = Field(
        None, validation_alias=AliasChoices("training_window_seconds", "training_window")
    )
    datasource: DatasourceAttachRequest | None = None
    triage: TriageRequest | None = Field(
        None,
        description="the log source an opened incident's triage reads: exactly one of `selector` "
        "(LogQL stream selector; `$label` in a value is the incident's series label), `job` or "
        "`path`; `lead`, `max_window`, `baselines` (docs/triage.md)",
    )
    transforms: list[dict[str, Any]] = Field(
        default_factory=list, max_length=10, description=TRANSFORMS_DESCRIPTION
    )


def _patch_schema(schema: dict[str, Any]) -> None:
    """At least one field; only ``training_window_seconds`` and ``triage`` may be null (to clear
    them)."""
    schema["minProperties"] = 1
    schema["allOf"] = [
        {
            "properties": {
                name: {"not": {"type": "null"}}
                for name in schema["properties"]
                if name not in ("training_window_seconds", "triage")
            }
        }
    ]


class DetectorPatchRequest(ApiModel):
    """Fields to change. ``status``: promote ``training`` -> ``running``, pause, resume."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_patch_schema)

    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
        | None
    ) = None
    kind: Annotated[str, StringConstraints(pattern=KIND_PATTERN, max_length=64)] | None = None
    params: dict[str, Any] | None = None
    status: Literal["training", "running", "paused"] | None = None
    threshold: float | None = Field(None, gt=0, allow_inf_nan=False)
    resolve_after: ResolveAfter | None = None
    interval_seconds: WholeSeconds | None = Field(
        None, validation_alias=AliasChoices("interval_seconds", "interval")
    )
    training_window_seconds: WholeSeconds | None = Field(
        None, validation_alias=AliasChoices("training_window_seconds", "training_window")
    )
    triage: TriageRequest | None = Field(
        None, description="the log source for triage; null removes it"
    )
    transforms: list[dict[str, Any]] | None = Field(
        None, max_length=10, description=TRANSFORMS_DESCRIPTION
    )

    @model_validator(mode="after")
    def _something(self) -> DetectorPatchRequest:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give at least one field")
        nullable = {"training_window_seconds", "triage"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


# --------------------------------------------------------------------------- runs


def _run_parameters_schema(schema: dict[str, Any]) -> None:
    """Each flow's parameters as the flow's own model describes them (checked before the run)."""
    from aiops.flowparams import FLOW_PARAMETERS

    models = {**FLOW_PARAMETERS, "backfill": BackfillParameters}
    schema["oneOf"] = [
        {
            "required": ["flow"] + (["parameters"] if flow != "detect-metrics" else []),
            "properties": {"flow": {"const": flow}, "parameters": model.model_json_schema()},
        }
        for flow, model in models.items()
    ]


class RunRequest(ApiModel):
    """Trigger ``<flow>/default``; returns at once (the run is scheduled, not awaited)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_run_parameters_schema)

    flow: Literal["detect-metrics", "analyze-logs", "backfill"]
    parameters: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class BackfillParameters(ApiModel):
    """The parameters of a ``backfill`` run, checked before the run is triggered."""

    detector_ids: list[DetectorId] = Field(default_factory=list, max_length=500)
    log_jobs: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100
    )
    start: Time
    end: Time
    window: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "1d"
    train: Annotated[str, StringConstraints(min_length=1, max_length=32)] | None = None
    log_window: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "1h"
    backfill_id: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")] | None
    ) = None
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


# -------------------------------------------------------------------------- query strings and paths


class HealthQuery(ApiModel):
    probe: bool = Field(False, description="actively probe every URL's readiness endpoint")


class AnomalyQuery(ApiModel):
    detector: DetectorId | None = None
    source: Literal["all", "live", "backfill"] = Field(
        "all", description="live anomalies, backfilled ones, or all (the default)"
    )
    backfill_id: str | None = Field(
        None, max_length=64, description="only the anomalies of this backfill"
    )
    since: Time | None = None
    until: Time | None = None
    after_id: int | None = Field(
        None, ge=0, le=MAX_ID, description="cursor: the next_after_id of the previous page"
    )
    limit: int = Field(100, ge=1, le=1000)


class IncidentQuery(ApiModel):
    detector: DetectorId | None = None
    state: Literal["open", "resolved"] | None = Field(
        None, description="open or resolved incidents (default: both)"
    )
    source: Literal["all", "live", "backfill"] = Field(
        "all", description="live incidents, backfilled ones, or all (the default)"
    )
    backfill_id: str | None = Field(
        None, max_length=64, description="only the incidents of this backfill"
    )
    since: Time | None = Field(
        None, description="incidents still open at or after this time (not resolved before it)"
    )
    until: Time | None = Field(None, description="incidents opened before this time")
    after_id: int | None = Field(
        None, ge=0, le=MAX_ID, description="cursor: the next_after_id of the previous page"
    )
    limit: int = Field(100, ge=1, le=1000)
    order: Literal["asc", "desc"] = Field(
        "asc",
        description="asc: oldest first, paginated with after_id; desc: newest first (one page, "
        "for feeds)",
    )


class IncidentPath(ApiModel):
    id: int = Field(ge=1, le=MAX_ID)


class IncidentPointsQuery(ApiModel):
    points_limit: int = Field(1000, ge=1, le=10_000, description="at most this many anomaly rows")


class DetectorListQuery(ApiModel):
    status: Literal["training", "running", "paused"] | None = None


class DatasourceRemoveQuery(ApiModel):
    name: DatasourceName | None = Field(
        None, description="remove only this datasource (default: all)"
    )


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


class TriageState(BaseModel):
    """Where an incident's log triage is (its report: ``GET /api/incidents/{id}/triage``)"""

    status: Literal["running", "done", "failed"]
    source: str
    summary: str | None = None
    error: str | None = None
    flow_run_id: str | None = None


class IncidentDetail(BaseModel):
    """An incident with its points (the anomaly rows inside it, oldest first)"""

    incident: Incident
    points: list[Event]
    points_truncated: bool = Field(
        description="true when the incident has more points than points_limit"
    )
    triage: TriageState | None = Field(
        None, description="its log triage, when its detector names a log source"
    )


class DatasourceRemoved(BaseModel):
    detector: str
    removed: int


class DatasourceAttached(BaseModel):
    detector: str
    datasource: DetectorDatasource
    warnings: list[str] = Field(
        default_factory=list,
        description="how the query reads samples at this step, when some would be lost (e.g. a "
        "step longer than the datasource's lookback delta)",
    )


class SeriesModel(BaseModel):
    """What the model of one series learned (``auto``: what it chose and why)"""

    labels: dict[str, str] = Field(description="the series' label set")
    trained_at: datetime | None = Field(None, description="when the model last learned")
    model: dict[str, Any] = Field(
        description="the detector's own summary: for `auto`, `decided`, `model`, "
        "`period_seconds`, `autocorrelation`, `resolution`, `typical_level` and `reason`"
    )


class DetectorRead(Detector):
    """A detector, with what its model learned per series"""

    models: list[SeriesModel] = Field(
        default_factory=list,
        description=f"one entry per series the detector has seen (at most {MAX_MODELS_SHOWN})",
    )
    models_total: int = Field(0, ge=0, description="how many series the detector has seen")


class DetectorSaved(Detector):
    """The detector as saved, with warnings about how its query reads samples"""

    warnings: list[str] = Field(
        default_factory=list,
        description="how the query reads samples at its step, when some would be lost (e.g. a step "
        "longer than the datasource's lookback delta)",
    )
