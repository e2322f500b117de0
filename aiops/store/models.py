"""Values the store takes and returns: pydantic models shared by the API, flows and CLI.

Nothing here touches the database. Inputs (``DetectorSpec``, ``DatasourceSpec``, ``EventIn``)
validate what callers send; outputs (``DetectorRecord``, ``Event``, ...) are frozen snapshots of
rows, so no SQLAlchemy session ever leaks out of :mod:`aiops.store.repo`.

Conventions:

- Every datetime is timezone-aware UTC. Inputs must be aware (or epoch seconds / ISO strings
  with an offset); naive datetimes are rejected rather than guessed.
- Durations are whole seconds; inputs also accept ``"30s"``, ``"5m"``, ``"1h30m"``, ``"1d"``.
- A series is identified by :func:`series_key` of its label set.
- A model is identified by :func:`spec_hash` of its kind and params.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, TypedDict

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

from aiops.errors import InvalidInput
from aiops.incidents import DEFAULT_RESOLVE_AFTER, MAX_RESOLVE_AFTER
from aiops.labels import series_key
from aiops.timeutil import parse_whole_seconds
from aiops.triage import TriageLink

__all__ = [
    "DETECTOR_ID_PATTERN",
    "KIND_PATTERN",
    "DETECTOR_STATUSES",
    "SEVERITIES",
    "COLLECTOR_STATES",
    "WINDOW_STATUSES",
    "EVENT_ANOMALY",
    "EVENT_LOG_NEW_TEMPLATE",
    "EVENT_INCIDENT_OPENED",
    "EVENT_INCIDENT_RESOLVED",
    "INCIDENT_EVENTS",
    "DetectorStatus",
    "Severity",
    "DatasourceSpec",
    "DetectorSpec",
    "DetectorDatasource",
    "Detector",
    "DetectorRecord",
    "SeverityPolicy",
    "EventIn",
    "Event",
    "CollectorStatus",
    "Incident",
    "IncidentTriage",
    "LogReport",
    "LogReportRecord",
    "BackfillWindow",
    "BackfillProgress",
    "ModelStateInfo",
    "SeriesState",
    "DueDetectors",
    "UpsertResult",
    "parse_duration",
    "series_key",
    "spec_hash",
    "check_transition",
    "utc",
    "invalid_input_from",
    "error_message",
]

DETECTOR_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
KIND_PATTERN = r"^[a-z_]+$"
EVENT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
DATASOURCE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"

DetectorStatus = Literal["training", "running", "paused"]
Severity = Literal["info", "warning", "critical"]
CollectorState = Literal["ok", "failed", "never_run", "skipped"]
WindowStatus = Literal["pending", "running", "done", "failed"]

DETECTOR_STATUSES: tuple[str, ...] = ("training", "running", "paused")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
COLLECTOR_STATES: tuple[str, ...] = ("ok", "failed", "never_run", "skipped")
WINDOW_STATUSES: tuple[str, ...] = ("pending", "running", "done", "failed")

EVENT_ANOMALY = "anomaly"
EVENT_LOG_NEW_TEMPLATE = "log.new_template"
EVENT_INCIDENT_OPENED = "incident.opened"
EVENT_INCIDENT_RESOLVED = "incident.resolved"
INCIDENT_EVENTS: tuple[str, ...] = (EVENT_INCIDENT_OPENED, EVENT_INCIDENT_RESOLVED)

# Allowed lifecycle moves (staying put is always allowed).
_TRANSITIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("training", "paused"),
        ("running", "paused"),
        ("paused", "training"),
        ("paused", "running"),
        ("training", "running"),
    }
)


# --------------------------------------------------------------------------- helpers


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UTCDateTime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
_utc_adapter: TypeAdapter[datetime] = TypeAdapter(UTCDateTime)

parse_duration = parse_whole_seconds  # the older name, kept

Duration = Annotated[int, BeforeValidator(parse_whole_seconds), Field(gt=0)]


def spec_hash(
    kind: str, params: Mapping[str, Any], transforms: list[dict[str, Any]] | None = None
) -> str:
    """A stable hash of a model's kind and params, and its transform steps when it has some
    (key order does not matter): what the learned state depends on."""
    body: dict[str, Any] = {"kind": kind, "params": params}
    if transforms:
        body["transforms"] = transforms
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def check_transition(current: str, new: str) -> bool:
    """Whether a detector may move from ``current`` to ``new`` status."""
    return current == new or (current, new) in _TRANSITIONS


def utc(value: Any, field: str = "timestamp") -> datetime:
    """Validate one timestamp argument: aware datetime, ISO string or epoch seconds -> UTC."""
    try:
        return _utc_adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidInput(
            f"{field}: {error_message(exc.errors()[0])} (got {value!r})", field=field
        ) from None


def error_message(error: Mapping[str, Any]) -> str:
    """The human part of one pydantic error (without pydantic's "Value error, " prefix)."""
    return str(error["msg"]).removeprefix("Value error, ")


def invalid_input_from(exc: ValidationError, prefix: str = "") -> InvalidInput:
    """Turn a pydantic ``ValidationError`` into one :class:`InvalidInput` naming the field."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    where = f"{prefix}{field}" if field else prefix.rstrip(".") or "input"
    return InvalidInput(
        f"{where}: {error_message(first)}",
        field=f"{prefix}{field}" if field else None,
        errors=[
            {"field": ".".join(map(str, e["loc"])), "message": error_message(e)} for e in errors
        ],
    )


def _json_value(value: Any) -> Any:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON-serialisable without NaN/Infinity ({exc})") from None
    return value


JSONDict = Annotated[dict[str, Any], AfterValidator(_json_value)]
Labels = Annotated[dict[str, str], AfterValidator(_json_value)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Row(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)


# --------------------------------------------------------------------------- detectors


class DatasourceSpec(_Frozen):
    """Which datasource and query feed a detector."""

    name: Annotated[str, StringConstraints(pattern=DATASOURCE_NAME_PATTERN)] = "prometheus"
    query: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    step_seconds: Duration = Field(60, validation_alias=AliasChoices("step_seconds", "step"))
    lookback_seconds: Duration = Field(
        3600, validation_alias=AliasChoices("lookback_seconds", "lookback")
    )


class DetectorSpec(_Frozen):
    """What a user declares about a detector (API body or one entry of the detectors file).

    ``status`` may be left out: a new detector then starts in ``training`` and an existing one
    keeps its lifecycle status (so a restart never demotes a promoted detector).
    """

    id: Annotated[str, StringConstraints(pattern=DETECTOR_ID_PATTERN)]
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: Annotated[str, StringConstraints(pattern=KIND_PATTERN, max_length=64)] = "auto"
    params: JSONDict = Field(default_factory=dict)
    status: DetectorStatus | None = None
    threshold: float = Field(1.0, gt=0, allow_inf_nan=False)
    resolve_after: int = Field(DEFAULT_RESOLVE_AFTER, ge=0, le=MAX_RESOLVE_AFTER, strict=True)
    """normal steps allowed inside one incident; the next one resolves it"""
    interval_seconds: Duration = Field(
        60, validation_alias=AliasChoices("interval_seconds", "interval")
    )
    training_window_seconds: Duration | None = Field(
        None, validation_alias=AliasChoices("training_window_seconds", "training_window")
    )
    datasource: DatasourceSpec | None = None
    triage: TriageLink | None = None
    """the log source an opened incident's triage reads (``aiops.triage``); none: no triage"""
    transforms: list[dict[str, Any]] = Field(default_factory=list)
    """transform steps after standardisation (:func:`aiops.transform.validate_steps`)"""

    @model_validator(mode="after")
    def _check_transforms(self) -> DetectorSpec:
        from aiops.transform import validate_steps

        step = float(self.datasource.step_seconds) if self.datasource is not None else None
        try:
            steps = validate_steps(self.transforms, step=step)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        object.__setattr__(self, "transforms", steps)
        return self

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_id(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("name") is None and "id" in data:
            data = {**data, "name": data["id"]}
        return data

    @property
    def spec_hash(self) -> str:
        return spec_hash(self.kind, self.params, self.transforms)


class DetectorDatasource(_Row):
    detector_id: str
    name: str
    query: str
    step_seconds: int
    lookback_seconds: int
    created_at: datetime
    updated_at: datetime

    def spec(self) -> DatasourceSpec:
        return DatasourceSpec(
            name=self.name,
            query=self.query,
            step_seconds=self.step_seconds,
            lookback_seconds=self.lookback_seconds,
        )


class DetectorRecord(_Row):
    id: str
    name: str
    kind: str
    params: dict[str, Any]
    status: DetectorStatus
    threshold: float
    resolve_after: int = DEFAULT_RESOLVE_AFTER
    interval_seconds: int
    training_window_seconds: int | None
    spec_hash: str
    status_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    datasources: list[DetectorDatasource] = Field(default_factory=list)
    triage: TriageLink | None = None
    transforms: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("transforms", mode="before")
    @classmethod
    def _no_transforms(cls, value: Any) -> Any:
        return [] if value is None else value

    @property
    def datasource(self) -> DetectorDatasource | None:
        """The detector's datasource (one per detector for now), or ``None``."""
        return self.datasources[0] if self.datasources else None

    def spec(self) -> DetectorSpec:
        ds = self.datasource
        return DetectorSpec(
            id=self.id,
            name=self.name,
            kind=self.kind,
            params=self.params,
            status=self.status,
            threshold=self.threshold,
            resolve_after=self.resolve_after,
            interval_seconds=self.interval_seconds,
            training_window_seconds=self.training_window_seconds,
            datasource=ds.spec() if ds else None,
            triage=self.triage,
            transforms=self.transforms,
        )


class DueDetectors(NamedTuple):
    """``due``: detectors to collect now; ``not_due``: every other detector id -> why not."""

    due: list[DetectorRecord]
    not_due: dict[str, str]


class UpsertResult(TypedDict):
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    reset: list[str]
    """ids whose model (kind/params) changed, so their model state was dropped"""


# --------------------------------------------------------------------------- events


class SeverityPolicy(_Frozen):
    """Score -> severity: ``score > warning`` is a warning, ``score >= critical`` critical."""

    warning: float = Field(1.0, ge=0, allow_inf_nan=False)
    critical: float = Field(3.0, ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> SeverityPolicy:
        if self.critical < self.warning:
            raise ValueError("critical must be >= warning")
        return self

    def severity(self, score: float | None) -> Severity:
        if score is None or math.isnan(score):
            return "info"
        if score >= self.critical:
            return "critical"
        if score > self.warning:
            return "warning"
        return "info"


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


OptFloat = Annotated[float | None, AfterValidator(_finite_or_none)]


class EventIn(_Frozen):
    """An event to persist. ``series_key`` defaults to :func:`series_key` of ``labels``;
    ``severity`` defaults to the store's :class:`SeverityPolicy` applied to ``score``.
    NaN floats are stored as null."""

    type: Annotated[str, StringConstraints(pattern=EVENT_TYPE_PATTERN)] = EVENT_ANOMALY
    detector_id: Annotated[str, StringConstraints(pattern=DETECTOR_ID_PATTERN)] | None = None
    series_key: str | None = None
    labels: Labels = Field(default_factory=dict)
    ts: UTCDateTime
    value: OptFloat = None
    score: OptFloat = None
    expected: OptFloat = None
    lower: OptFloat = None
    upper: OptFloat = None
    severity: Severity | None = None
    payload: JSONDict = Field(default_factory=dict)
    model_kind: Annotated[str, StringConstraints(max_length=64)] | None = None
    params_hash: Annotated[str, StringConstraints(max_length=64)] | None = None
    trained_at: UTCDateTime | None = None
    flow_run_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    backfill_id: Annotated[str, StringConstraints(max_length=64)] | None = None  # set by backfills

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_str(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): str(v) for k, v in value.items()}
        return value

    @field_validator("flow_run_id", mode="before")
    @classmethod
    def _uuid_as_str(cls, value: Any) -> Any:
        return None if value is None else str(value)


class Event(_Row):
    id: int
    type: str
    detector_id: str | None
    series_key: str
    labels: dict[str, str]
    ts: datetime
    value: float | None
    score: float | None
    expected: float | None
    lower: float | None
    upper: float | None
    severity: Severity
    payload: dict[str, Any]
    model_kind: str | None
    params_hash: str | None
    trained_at: datetime | None
    flow_run_id: str | None
    backfill_id: str | None = None  # the backfill that found it; null when found live
    created_at: datetime

    @field_validator("detector_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return value or None


class Incident(_Row):
    """A run of anomalous points of one series: what alerts. Open while ``resolved_at`` is
    null; its anomaly rows (``opened_at <= ts <= last_anomalous_at``) are the evidence."""

    id: int
    detector_id: str
    series_key: str
    labels: dict[str, str]
    opened_at: datetime
    last_anomalous_at: datetime
    resolved_at: datetime | None
    peak_at: datetime
    peak_score: float | None
    peak_value: float | None
    peak_expected: float | None
    peak_lower: float | None
    peak_upper: float | None
    points: int
    severity: Severity
    model_kind: str | None
    params_hash: str | None
    trained_at: datetime | None
    flow_run_id: str | None
    backfill_id: str | None = None  # the backfill that found it; null when found live
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def state(self) -> Literal["open", "resolved"]:
        return "open" if self.resolved_at is None else "resolved"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def source(self) -> Literal["live", "backfill"]:
        return "live" if self.backfill_id is None else "backfill"


class IncidentTriage(_Row):
    """The log triage of one incident: ``running``, then ``done`` (``report``, ``summary``)
    or ``failed`` (``error``). ``source`` names the log source read."""

    incident_id: int
    detector_id: str
    status: Literal["running", "done", "failed"]
    source: str
    report: dict[str, Any] | None = None
    summary: str | None = None
    error: str | None = None
    flow_run_id: str | None = None
    created_at: datetime
    updated_at: datetime


# --------------------------------------------------------------------------- bookkeeping


class CollectorStatus(_Row):
    detector_id: str
    state: CollectorState = "never_run"
    last_run_at: datetime | None = None
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    samples: int = 0
    series: int = 0
    buffered: int = 0
    dropped: int = 0
    skip_reason: str | None = None
    skipped_at: datetime | None = None
    last_warning: str | None = None  # e.g. no samples at any step although the series has some
    last_warning_at: datetime | None = None
    updated_at: datetime | None = None


class LogReportRecord(_Row):
    id: int
    source: str
    window_start: datetime
    window_end: datetime
    summary: dict[str, Any]
    templates: list[Any] | dict[str, Any]
    flow_run_id: str | None
    created_at: datetime


class ModelStateInfo(_Row):
    """Metadata of one series' model state (without the state itself)."""

    detector_id: str
    series_key: str
    labels: dict[str, str]
    version: int
    trained_at: datetime | None
    updated_at: datetime


class SeriesScore(_Row):
    """The latest score of one series of a detector (what ``/metrics`` exports)."""

    detector_id: str
    series_key: str
    labels: dict[str, str]
    ts: datetime
    value: float | None
    score: float | None
    updated_at: datetime


class SeriesState(NamedTuple):
    labels: dict[str, str]
    state: dict[str, Any]
    trained_at: datetime | None


class BackfillWindow(_Row):
    backfill_id: str
    detector_id: str
    window_start: datetime
    window_end: datetime
    status: WindowStatus
    attempts: int
    error: str | None
    updated_at: datetime


class BackfillProgress(_Frozen):
    total: int
    done: int
    failed: int
    pending: int
    running: int


# The older names of the stored records, kept for callers: ``aiops.detectors.Detector`` is the
# model and ``aiops.logs.LogReport`` the analysis result, which these records are not.
Detector = DetectorRecord
LogReport = LogReportRecord
