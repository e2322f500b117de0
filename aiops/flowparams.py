"""The run parameters of the flows, as pydantic models: one definition checked twice.

``POST /api/runs`` validates a run's parameters with these models before it asks Prefect for
the run (a bad one is a 4xx now, not a failed run later), and the flows validate their own
arguments with the same models when they start (a run triggered from the Prefect UI or API
gets the same checks). ``backfill`` has its own check (:class:`aiops.backfill.BackfillRequest`).

What these models cannot know (which files are allowed, which log jobs and datasources are
configured) is checked against the settings by :func:`check_analyze_logs_source`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aiops.errors import InvalidInput
from aiops.logs.patterns import MAX_PATTERN_LENGTH, MAX_PATTERNS, compile_patterns
from aiops.store.models import DATASOURCE_NAME_PATTERN, DETECTOR_ID_PATTERN
from aiops.timeutil import parse_seconds

if TYPE_CHECKING:
    from aiops.config import Settings

__all__ = [
    "DetectMetricsParameters",
    "AnalyzeLogsParameters",
    "FLOW_PARAMETERS",
    "MAX_PARAMETERS_BYTES",
    "validate_parameters",
    "check_analyze_logs_source",
]

MAX_PARAMETERS_BYTES = (
    64 * 1024
)  # a run's parameters as JSON; posted lines beyond: the sync analyze endpoint
MAX_QUERY_CHARS = 64_000
MAX_PATH_CHARS = 4096
_JOB_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# a positive duration such as 30s, 5m, 1h30m, 1d (at least one non-zero part)
_UNITS = r"(ms|s|m|h|d)"
DURATION_TEXT = (
    rf"^([0-9]{{1,4}}{_UNITS}){{0,3}}0*[1-9][0-9]{{0,3}}{_UNITS}([0-9]{{1,4}}{_UNITS}){{0,3}}$"
)
_DURATION = Annotated[str, StringConstraints(min_length=2, max_length=32, pattern=DURATION_TEXT)]

M = TypeVar("M", bound=BaseModel)


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _no_number(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(
            "must be an RFC 3339 date-time string (e.g. 2026-01-01T00:00:00Z), not a number"
        )
    return value


class DetectMetricsParameters(_Parameters):
    """``detect-metrics``: a tick, limited to ``detector_ids`` (still only when due), with
    the clock pinned to ``now`` (tests, replays)."""

    detector_ids: list[Annotated[str, StringConstraints(pattern=DETECTOR_ID_PATTERN)]] | None = (
        Field(None, max_length=1000)
    )
    now: datetime | None = None

    @field_validator("now", mode="before")
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        return _no_number(value)


_SOURCES = ("selector", "path", "lines", "job", "incident")


def _analyze_logs_schema(schema: dict[str, Any]) -> None:
    """The rules the validators enforce, in the JSON schema too: exactly one source (absent
    and null are the same), pattern names only as named, pattern values regular expressions."""
    patterns = schema["properties"]["patterns"]["anyOf"][0]
    patterns["additionalProperties"] = False
    for value in patterns["patternProperties"].values():
        value["format"] = "regex"
        value["description"] = "RE2 syntax: no backreferences or lookaround"
    schema["anyOf"] = [
        {
            "required": [name],
            "properties": {
                other: ({"not": {"type": "null"}} if other == name else {"type": "null"})
                for other in _SOURCES
            },
        }
        for name in _SOURCES
    ]


class AnalyzeLogsParameters(_Parameters):
    """``analyze-logs``: exactly one of ``selector`` (LogQL, read from ``datasource``),
    ``path`` (a local file under the allowed roots), ``lines``, ``job`` (a configured log
    job) or ``incident`` (the triage of an incident: its detector's log source over the
    incident's window and its baselines, ``aiops.triage``); the window is ``since`` before
    ``end`` (default now) or ``start``/``end``."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_analyze_logs_schema)

    selector: Annotated[str, StringConstraints(min_length=1, max_length=MAX_QUERY_CHARS)] | None = (
        None
    )
    path: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH_CHARS)] | None = None
    lines: list[str] | None = Field(None, max_length=100_000)
    job: Annotated[str, StringConstraints(pattern=_JOB_NAME)] | None = None
    incident: int | None = Field(None, ge=1, le=2**63 - 1)
    datasource: Annotated[str, StringConstraints(pattern=DATASOURCE_NAME_PATTERN)] = "loki"
    since: _DURATION = "1h"
    start: datetime | None = None
    end: datetime | None = None
    bucket: _DURATION = "1h"
    patterns: (
        dict[
            Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")],
            Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_LENGTH)],
        ]
        | None
    ) = Field(None, max_length=MAX_PATTERNS)
    max_entries: int | None = Field(1_000_000, ge=1, le=10_000_000)

    @field_validator("since", "bucket")
    @classmethod
    def _duration(cls, value: str, info: ValidationInfo) -> str:
        # the pattern already holds a positive duration in ms, s, m, h, d; this reads it the
        # one way (InvalidInput is a ValueError: pydantic reports it)
        parse_seconds(value, field=info.field_name or "duration")
        return value

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            compile_patterns(value)  # a backreference or lookaround: UnsupportedPattern, named
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _not_a_number(cls, value: Any) -> Any:
        return _no_number(value)

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
        return value

    @model_validator(mode="after")
    def _shape(self) -> AnalyzeLogsParameters:
        given = [name for name in _SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of selector, path, lines, job or incident"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


FLOW_PARAMETERS: dict[str, type[BaseModel]] = {
    "detect-metrics": DetectMetricsParameters,
    "analyze-logs": AnalyzeLogsParameters,
}


def validate_parameters(model: type[M], raw: dict[str, Any], *, flow: str) -> M:
    """``model`` from ``raw`` or one :class:`InvalidInput` naming the first bad parameter."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = (
            "unknown parameter"
            if err["type"] == "extra_forbidden"
            else str(err["msg"]).removeprefix("Value error, ")
        )
        field = f"parameters.{loc}" if loc else "parameters"
        raise InvalidInput(f"{flow}: {field}: {msg}", field=field) from None


def check_analyze_logs_source(p: AnalyzeLogsParameters, settings: Settings) -> None:
    """What the model cannot check alone: the window's order, the log job is configured, the
    datasource is a configured Loki, the path may be read
    (:class:`aiops.sources.files.LogAccess`)."""
    if p.start is not None and p.end is not None and p.end <= p.start:
        raise InvalidInput("end must be after start", field="parameters.end")
    if p.job is not None:
        jobs = {j.name for j in settings.log_jobs}
        if p.job not in jobs:
            raise InvalidInput(
                f"no log job named {p.job!r} (configured: {', '.join(sorted(jobs)) or 'none'})",
                field="parameters.job",
            )
    if p.selector is not None:
        ds = settings.datasource_configs().get(p.datasource)
        if ds is None or ds.type != "loki":
            raise InvalidInput(
                f"no Loki datasource named {p.datasource!r}: set AIOPS_LOKI_URL or add it to the "
                "config file",
                field="parameters.datasource",
            )
    if p.path is not None:
        from aiops.sources.files import LogAccess

        try:
            LogAccess.from_settings(settings).check(p.path)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="parameters.path", path=p.path) from None
