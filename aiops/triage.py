"""Incident triage: what changed in a service's logs when one of its metrics went wrong.

A detector may name a log source for triage (:class:`TriageLink`): a Loki stream selector whose
label values may be taken from the incident's series labels (``{app="$service"}``), a
configured log job, or a local file. When an incident opens, a Prefect Automation runs the
``analyze-logs`` flow with the incident's id; the flow reads the source over

- the **incident window**: from ``lead`` before the onset to the resolution (or now), at most
  ``max_window`` long, and
- the **baseline windows** (:func:`triage_windows`): the same length just before
  (``previous``), and the same minutes a day (``day``) and a week (``week``) earlier, each
  used when it has lines,

and :func:`compare_windows` says what changed between them: new templates, templates whose
rate jumped or that vanished, new error types, slower operations (per-template durations),
with example lines and the LogQL of each finding, ready to paste into Grafana Explore.

Pure: the frames come from the caller (:mod:`tasks.triage` reads them); the comparison reuses
:mod:`aiops.logs` (one :class:`~aiops.logs.TemplateMiner` shared by both sides, so a template
has the same id in the baseline and the incident, then :func:`aiops.logs.compare`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from aiops.errors import InvalidInput
from aiops.logql import LogQLBuilder
from aiops.querylang import parse_selector
from aiops.timeutil import parse_seconds

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BASELINES",
    "TRIAGE_STATUSES",
    "TriageLink",
    "TriageWindow",
    "compare_windows",
    "render_selector",
    "triage_markdown",
    "triage_windows",
    "window_frame",
]

log = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("previous", "day", "week")
TRIAGE_STATUSES: tuple[str, ...] = ("running", "done", "failed")
_BASELINE_SHIFT = {"day": timedelta(days=1), "week": timedelta(days=7)}
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
MAX_FINDINGS = 50
EXAMPLES = 3


def _whole_seconds(field: str, low_s: int, high_s: int) -> Any:
    """A duration (int seconds, or text such as ``"5m"``) as int seconds, fractions dropped,
    in ``[low_s, high_s]``."""

    def check(value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            seconds = value
        else:
            seconds = int(parse_seconds(value, field=field))
        if not low_s <= seconds <= high_s:
            raise ValueError(f"must be between {low_s} and {high_s} seconds, got {seconds}")
        return seconds

    return BeforeValidator(check)


class TriageLink(BaseModel):
    """A detector's log source for triage: exactly one of ``selector`` (LogQL stream selector
    read from the Loki ``datasource``; ``$label`` or ``${label}`` in a value is the incident's
    series label), ``job`` (a configured log job) or ``path`` (a local file under the allowed
    roots). ``lead``: how long before the onset the incident window starts; ``max_window``: its
    longest length; ``baselines``: which windows to compare it with."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    selector: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    job: Annotated[str, StringConstraints(pattern=_NAME)] | None = None
    path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    datasource: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] = (
        "loki"
    )
    lead_seconds: Annotated[int, _whole_seconds("lead", 0, 86400)] = Field(300, alias="lead")
    max_window_seconds: Annotated[int, _whole_seconds("max_window", 60, 86400)] = Field(
        3600, alias="max_window"
    )
    baselines: tuple[Literal["previous", "day", "week"], ...] = Field(
        BASELINES, min_length=1, max_length=3
    )

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                render_selector(value, None)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None  # pydantic names the field
        return value

    @model_validator(mode="after")
    def _one_source(self) -> TriageLink:
        given = [n for n in ("selector", "job", "path") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of selector, job or path"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self

    def describe(self) -> str:
        if self.selector is not None:
            return f"loki:{self.datasource}:{self.selector}"
        return f"job:{self.job}" if self.job is not None else f"file:{self.path}"


def render_selector(template: str, labels: Mapping[str, str] | None) -> str:
    """The stream selector of ``template`` with each ``$name`` / ``${name}`` in a matcher value
    replaced by the series label ``name`` (escaped by the LogQL builder; regex-escaped inside
    ``=~``/``!~``). ``labels=None`` checks the template only (a placeholder for every name).

    >>> render_selector('{app="$service", env=~"prod|$region"}', {"service": "api", "region": "eu"})
    '{app="api", env=~"prod|eu"}'
    """
    try:
        matchers = parse_selector(template)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="selector") from None
    builder = LogQLBuilder()
    for m in matchers:
        regex = m.op in ("=~", "!~")

        def value_of(match: re.Match[str], regex: bool = regex) -> str:
            name = match.group(1) or match.group(2)
            if labels is None:
                return "x"
            if name not in labels:
                raise InvalidInput(
                    f"the selector uses ${name} but the incident's series has no label {name!r} "
                    f"(labels: {', '.join(sorted(labels)) or 'none'})",
                    field="selector",
                )
            return re.escape(str(labels[name])) if regex else str(labels[name])

        try:
            builder = builder.with_label(m.name, _VAR.sub(value_of, m.value), m.op)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="selector") from None
    return str(builder)


@dataclass(frozen=True)
class TriageWindow:
    name: str  # "incident", "previous", "day", "week"
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start.isoformat(), "end": self.end.isoformat()}


def triage_windows(
    link: TriageLink, opened_at: datetime, resolved_at: datetime | None, now: datetime
) -> tuple[TriageWindow, list[TriageWindow]]:
    """The incident window and its baselines (see the module docstring). The incident window
    ends at the resolution, or now while the incident is open, and is at least a second long."""
    start = opened_at - timedelta(seconds=link.lead_seconds)
    end = resolved_at if resolved_at is not None else now
    end = min(
        max(end, opened_at + timedelta(seconds=1)),
        start + timedelta(seconds=link.max_window_seconds),
    )
    length = end - start
    baselines = []
    for name in link.baselines:
        if name == "previous":
            baselines.append(TriageWindow(name, start - length, start))
        else:
            shift = _BASELINE_SHIFT[name]
            baselines.append(TriageWindow(name, start - shift, end - shift))
    return TriageWindow("incident", start, end), baselines


def window_frame(frame: pd.DataFrame, window: TriageWindow) -> pd.DataFrame:
    """The rows of a log frame in ``[window.start, window.end)`` (a file read once serves
    every window)."""
    import pandas as pd

    if not len(frame):
        return frame
    ts = frame["timestamp"]
    keep = (ts >= pd.Timestamp(window.start)) & (ts < pd.Timestamp(window.end))
    return frame.loc[keep].reset_index(drop=True)


# --------------------------------------------------------------------------- the comparison


def _per_minute(count: float, seconds: float) -> float | None:
    return round(count * 60.0 / seconds, 3) if seconds > 0 else None


def _error_logql(selector: str | None, error_type: str) -> dict[str, str] | None:
    if selector is None:
        return None
    base = LogQLBuilder(selector).contains(error_type)
    return {
        "line_filter": str(base),
        "metric_query": str(base.count_over_time("5m").aggregate("sum")),
    }


def compare_windows(
    incident: pd.DataFrame,
    baselines: Sequence[tuple[TriageWindow, pd.DataFrame]],
    *,
    window: TriageWindow,
    selector: str | None = None,
    patterns: Any = None,
    log_format: str | None = None,
    ratio: float = 3.0,
    min_count: int = 5,
    slower_ratio: float = 1.5,
    slower_min_ms: float = 5.0,
) -> dict[str, Any]:
    """What changed between the baseline windows (those with lines, pooled) and the incident
    window: a JSON report with ``findings`` (most telling first), ``top_templates`` of the
    incident window, line counts, and a one-line ``summary``. ``selector`` (the rendered
    stream selector, when the source is Loki) gives every finding its LogQL."""
    from aiops.logs import LogAnalyzer, TemplateMiner, compare

    miner = TemplateMiner()
    used = [(w, f) for w, f in baselines if len(f)]
    base = LogAnalyzer(
        patterns=patterns, miner=miner, selector=selector, log_format=log_format, bucket="1h"
    )
    for _, frame in used:
        base.update(frame)
    base_seconds = sum(w.seconds for w, _ in used)
    base_report = base.report().to_dict()
    base_report["window"] = {**base_report["window"], "seconds": base_seconds or None}
    cur = LogAnalyzer(
        patterns=patterns, miner=miner, selector=selector, log_format=log_format, bucket="1h"
    )
    cur.update(incident)
    cur_report = cur.report(window=(window.start, window.end)).to_dict()
    cur_seconds = window.seconds

    cur_templates = {t["template_id"]: t for t in cur_report["templates"]}
    base_templates = {t["template_id"]: t for t in base_report["templates"]}
    findings: list[dict[str, Any]] = []
    if used:
        for change in compare(base_report, cur_report, ratio=ratio, min_count=min_count):
            kind = change["type"].removeprefix("log.")
            finding: dict[str, Any] = {
                "kind": kind,
                **{k: v for k, v in change.items() if k != "type"},
            }
            tid = change.get("template_id")
            if tid is not None:
                tpl = cur_templates.get(tid) or {}
                finding["examples"] = list(tpl.get("examples") or [])[:EXAMPLES]
                finding["logql"] = tpl.get("logql")
                finding["level"] = tpl.get("level")
            else:
                finding["logql"] = _error_logql(selector, change["error_type"])
            finding["rate_per_minute"] = _per_minute(change.get("count") or 0, cur_seconds)
            finding["baseline_rate_per_minute"] = _per_minute(
                change.get("previous_count") or 0, base_seconds
            )
            findings.append(finding)
        cur_counts = cur_report["template_counts"]
        for tid, before in base_report["template_counts"].items():
            expected = before * cur_seconds / base_seconds if base_seconds else 0
            if tid in cur_counts or before < min_count or expected < min_count:
                continue
            tpl = base_templates.get(tid) or {}
            findings.append(
                {
                    "kind": "vanished",
                    "template_id": tid,
                    "template": tpl.get("template"),
                    "count": 0,
                    "previous_count": int(before),
                    "expected_count": round(expected, 1),
                    "severity": "warning" if tpl.get("error_count") else "info",
                    "examples": list(tpl.get("examples") or [])[:EXAMPLES],
                    "logql": tpl.get("logql"),
                    "level": tpl.get("level"),
                    "rate_per_minute": 0.0,
                    "baseline_rate_per_minute": _per_minute(before, base_seconds),
                }
            )
        findings += _slower(base_report, cur_report, cur_templates, slower_ratio, slower_min_ms)
    rank = {"critical": 0, "warning": 1, "info": 2}
    order = {"new_error_type": 0, "new_template": 1, "rate_jump": 2, "slower": 3, "vanished": 4}
    findings.sort(
        key=lambda f: (
            rank.get(f.get("severity"), 3),
            order.get(f["kind"], 9),
            -(f.get("count") or 0),
        )
    )
    top = [
        {
            k: t.get(k)
            for k in (
                "template_id",
                "template",
                "count",
                "error_count",
                "level",
                "examples",
                "logql",
            )
        }
        for t in cur_report["templates"][:10]
    ]
    report = {
        "window": {**window.to_dict(), "seconds": cur_seconds},
        "baselines": [
            {**w.to_dict(), "lines": int(len(f)), "used": bool(len(f))} for w, f in baselines
        ],
        "selector": selector,
        "lines": {
            "incident": int(cur_report["total_logs"]),
            "baseline": int(base_report["total_logs"]),
        },
        "errors": {
            "incident": int(cur_report["error_count"]),
            "baseline": int(base_report["error_count"]),
        },
        "error_rate_per_minute": {
            "incident": _per_minute(cur_report["error_count"], cur_seconds),
            "baseline": _per_minute(base_report["error_count"], base_seconds),
        },
        "findings": findings[:MAX_FINDINGS],
        "findings_total": len(findings),
        "top_templates": top,
        "error_types": dict(list(cur_report["error_types"].items())[:20]),
    }
    report["summary"] = summarize(report)
    log.info("triage of %s: %s", window.to_dict(), report["summary"])
    return report


def _slower(
    base: Mapping[str, Any],
    cur: Mapping[str, Any],
    cur_templates: Mapping[str, Any],
    ratio: float,
    min_ms: float,
) -> list[dict[str, Any]]:
    """Templates whose median duration grew ``ratio`` times and by ``min_ms`` (3+ samples each)."""

    def by_template(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        section = (report.get("performance") or {}).get("durations_ms") or {}
        return {row["template_id"]: row for row in section.get("by_template") or []}

    before, after = by_template(base), by_template(cur)
    out = []
    for tid, now in after.items():
        was = before.get(tid)
        if not was or was.get("count", 0) < 3 or now.get("count", 0) < 3:
            continue
        p50_before, p50_now = float(was["p50"]), float(now["p50"])
        if p50_now >= ratio * p50_before and p50_now - p50_before >= min_ms:
            tpl = cur_templates.get(tid) or {}
            out.append(
                {
                    "kind": "slower",
                    "template_id": tid,
                    "template": now.get("template"),
                    "count": int(now["count"]),
                    "previous_count": int(was["count"]),
                    "p50_ms": {"baseline": p50_before, "incident": p50_now},
                    "p95_ms": {"baseline": float(was["p95"]), "incident": float(now["p95"])},
                    "ratio": round(p50_now / p50_before, 2) if p50_before > 0 else None,
                    "severity": "warning",
                    "examples": list(tpl.get("examples") or [])[:EXAMPLES],
                    "logql": tpl.get("logql"),
                    "level": tpl.get("level"),
                }
            )
    return out


_KIND_TEXT = {
    "new_error_type": ("new error type", "new error types"),
    "new_template": ("new template", "new templates"),
    "rate_jump": ("rate jump", "rate jumps"),
    "slower": ("slower operation", "slower operations"),
    "vanished": ("vanished template", "vanished templates"),
}


def summarize(report: Mapping[str, Any]) -> str:
    """One line for alerts and feeds: what changed, or why nothing could be said."""
    lines = report["lines"]
    if not any(b["used"] for b in report["baselines"]):
        return (
            f"{lines['incident']} log lines in the incident window; no baseline lines to compare "
            "with"
        )
    counts: dict[str, int] = {}
    for f in report["findings"]:
        counts[f["kind"]] = counts.get(f["kind"], 0) + 1
    if not counts:
        return (
            f"no change in the logs ({lines['incident']} lines in the incident window, "
            f"{lines['baseline']} in the baseline)"
        )
    parts = [
        f"{n} {_KIND_TEXT[k][n > 1]}"
        for k, n in sorted(counts.items(), key=lambda kv: list(_KIND_TEXT).index(kv[0]))
    ]
    errors = [f["error_type"] for f in report["findings"] if f["kind"] == "new_error_type"][:3]
    text = ", ".join(parts)
    if errors:
        text += f" ({', '.join(errors)})"
    return text


def triage_markdown(report: Mapping[str, Any], *, title: str) -> str:
    """The report as markdown (the Prefect artifact)."""
    window = report["window"]
    md = [
        f"# {title}",
        "",
        f"**{report['summary']}**",
        "",
        f"- incident window: {window['start']} to {window['end']} ({report['lines']['incident']} "
        f"lines, {report['errors']['incident']} errors)",
    ]
    for b in report["baselines"]:
        md.append(
            f"- baseline `{b['name']}`: {b['start']} to {b['end']} ({b['lines']} "
            f"lines{'' if b['used'] else ', not used'})"
        )
    if report.get("selector"):
        md.append(f"- selector: `{report['selector']}`")
    md += ["", "## Findings", ""]
    if not report["findings"]:
        md.append("- nothing changed")
    for f in report["findings"]:
        what = f.get("template") or f.get("error_type") or ""
        detail = f"{f.get('count')} (baseline {f.get('previous_count')})"
        if f["kind"] == "slower":
            detail = f"p50 {f['p50_ms']['baseline']} ms -> {f['p50_ms']['incident']} ms"
        elif f["kind"] == "rate_jump":
            detail += f", x{f.get('ratio')}"
        md.append(f"- **{_KIND_TEXT[f['kind']][0]}** ({f.get('severity')}): `{what}`: {detail}")
        for example in f.get("examples") or []:
            md.append(f"  - example: `{example[:300]}`")
        logql = f.get("logql") or {}
        query = logql.get("pattern_filter") or logql.get("line_filter")
        if query:
            md.append(f"  - LogQL: `{query}`")
    md += ["", "## Top templates in the incident window", ""]
    md += [f"- {t['count']}: `{(t['template'] or '')[:200]}`" for t in report["top_templates"]] or [
        "- no lines"
    ]
    return "\n".join(md)
