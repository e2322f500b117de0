"""A fluent, immutable, injection-safe LogQL builder.

::

    >>> q = LogQLBuilder('{app="backend"}').contains("error").json().rate("5m").by("level", "pod")
    >>> str(q)
    'sum by (level, pod) (rate({app="backend"} |= "error" | json [5m]))'

A query is a stream selector, a log pipeline (stages in call order), then optionally a
range function that closes the pipeline and turns the log query into a metric query, then
vector aggregations. The builder enforces LogQL's ordering rules as you call it:

- pipeline stages cannot follow the range function;
- after ``unwrap(...)`` only label filters may follow;
- ``sum_over_time`` and friends need ``unwrap``; ``count_over_time``/``bytes_*`` refuse it;
- ``by``/``without``/``aggregate`` need a range function first (a log query has no series).

Every string goes through :func:`aiops.querylang.quote`; every label name is checked against
the label grammar and against LogQL's keywords (``json``, ``by``, ``unwrap``, ...), which the
Loki lexer never reads as label names. Violations raise :class:`aiops.errors.InvalidInput`.

:class:`LogQLSpec` is the structured JSON body of the ``query-builder`` endpoint.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from aiops.errors import InvalidInput
from aiops.querylang import (
    LabelMatcherSpec,
    Matcher,
    duration,
    format_number,
    parse_selector,
    quote,
    validate_label_name,
    validate_regex,
)
from aiops.timeutil import parse_promql_duration_ms

__all__ = [
    "is_log_query",
    "require_metric_query",
    "LogQLBuilder",
    "LogQLSpec",
    "LabelMatcherSpec",
    "LINE_FILTER_OPS",
    "RANGE_FUNCTIONS",
    "AGGREGATIONS",
    "UNWRAP_CONVERSIONS",
]


def is_log_query(query: str) -> bool:
    """True when ``query`` is a LogQL *log* query (a stream selector and its pipeline: its
    answer is lines), False for a metric query (a range function, an aggregation, a number)::

        >>> is_log_query('{app="api"} |= "error"')
        True
        >>> is_log_query('sum(count_over_time({app="api"} |= "error" [1m]))')
        False
    """
    return query.lstrip("( \t\r\n").startswith("{")


def require_metric_query(query: str, *, field: str = "query") -> str:
    """``query`` when it is a LogQL metric query; a log query raises :class:`InvalidInput`
    naming ``field`` (a detector scores numbers, not lines)."""
    if is_log_query(query):
        raise InvalidInput(
            f"{field}: {query!r} is a LogQL log query (its answer is log lines); a detector on a "
            'Loki datasource needs a metric query, e.g. sum(count_over_time({app="api"} |= '
            '"error" [1m]))',
            field=field,
        )
    return query


# Words the Loki lexer always turns into keyword tokens (case-insensitively), so they can
# never be a label name anywhere in a query. (Function names such as `rate` or `bytes` are
# only keywords when followed by '(' and stay usable.)
_KEYWORDS = frozenset(
    "by without bool offset on ignoring group_left group_right or and unless json xml regexp "
    "logfmt unpack pattern label_format line_format decolorize drop keep variants of unwrap".split()
)

LINE_FILTER_OPS: tuple[str, ...] = ("|=", "!=", "|~", "!~", "|>", "!>")
UNWRAP_CONVERSIONS: tuple[str, ...] = ("duration", "duration_seconds", "bytes")

# range function -> whether it needs unwrap (True), refuses it (False) or takes either (None)
RANGE_FUNCTIONS: dict[str, bool | None] = {
    "rate": None,
    "count_over_time": False,
    "bytes_over_time": False,
    "bytes_rate": False,
    "absent_over_time": None,
    "avg_over_time": True,
    "min_over_time": True,
    "max_over_time": True,
    "sum_over_time": True,
    "stddev_over_time": True,
    "stdvar_over_time": True,
    "quantile_over_time": True,
    "first_over_time": True,
    "last_over_time": True,
    "rate_counter": True,
}
# aggregation -> whether it takes an integer parameter k
AGGREGATIONS: dict[str, bool] = {
    "sum": False,
    "avg": False,
    "min": False,
    "max": False,
    "count": False,
    "stddev": False,
    "stdvar": False,
    "topk": True,
    "bottomk": True,
    "sort": False,
    "sort_desc": False,
}

_STRING_FILTER_OPS = ("=", "!=", "=~", "!~")
_COMPARE_OPS = (">", ">=", "<", "<=", "==", "!=", "=")
_GO_DURATION_RE = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|ms|s|m|h))+")
_BYTES_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB|PB|PiB)")
_CAPTURE_RE = re.compile(r"<([a-zA-Z_][a-zA-Z0-9_]*)>")


def _label(name: object, what: str = "label name") -> str:
    validate_label_name(name, what=what)
    assert isinstance(name, str)
    if name.lower() in _KEYWORDS:
        raise InvalidInput(
            f"{what} {name!r} is a LogQL keyword; Loki cannot parse it as a label name",
            field=what,
        )
    return name


def _labels(names: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        names = (names,)
    out: list[str] = []
    for name in names:
        _label(name, f"{what} label")
        if name not in out:
            out.append(name)
    return tuple(out)


def _check_pattern(pattern: str) -> None:
    """Loki's rules for ``| pattern``: a named capture, no two captures in a row, unique names."""
    if not isinstance(pattern, str):
        raise InvalidInput(f"pattern must be a string, got {pattern!r}", field="pattern")
    quote(pattern)
    captures = list(_CAPTURE_RE.finditer(pattern))
    named = [m.group(1) for m in captures if m.group(1) != "_"]
    if not named:
        raise InvalidInput(
            f"pattern {pattern!r} needs at least one named capture such as <ip>", field="pattern"
        )
    for first, second in zip(captures, captures[1:], strict=False):
        if first.end() == second.start():
            raise InvalidInput(
                f"pattern {pattern!r} has two captures in a row ({first.group()}{second.group()}); "
                "put literal text between them",
                field="pattern",
            )
    duplicates = sorted({n for n in named if named.count(n) > 1})
    if duplicates:
        raise InvalidInput(
            f"pattern {pattern!r} captures {duplicates[0]!r} more than once", field="pattern"
        )


# --------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class _LineFilter:
    op: str
    value: str

    def render(self) -> str:
        return f"{self.op} {quote(self.value)}"


@dataclass(frozen=True)
class _Parser:
    kind: str  # json | logfmt | pattern | regexp | unpack
    params: tuple[tuple[str, str | None], ...] = ()  # (label, expression or None)
    flags: tuple[str, ...] = ()
    value: str | None = None

    def render(self) -> str:
        parts = [f"| {self.kind}"]
        parts += [f"--{flag.replace('_', '-')}" for flag in self.flags]
        if self.value is not None:
            parts.append(quote(self.value))
        if self.params:
            rendered = [n if e is None else f"{n}={quote(e)}" for n, e in self.params]
            parts.append(", ".join(rendered))
        return " ".join(parts)


@dataclass(frozen=True)
class _LabelFilter:
    name: str
    op: str
    kind: str  # string | number | duration | bytes
    value: str | int | float

    def render(self) -> str:
        if self.kind == "string":
            assert isinstance(self.value, str)
            return f"| {Matcher(self.name, self.op, self.value)}"
        value = format_number(self.value) if self.kind == "number" else self.value
        return f"| {self.name} {self.op} {value}"


@dataclass(frozen=True)
class _LineFormat:
    template: str

    def render(self) -> str:
        return f"| line_format {quote(self.template)}"


@dataclass(frozen=True)
class _LabelFormat:
    assignments: tuple[tuple[str, str], ...]

    def render(self) -> str:
        return "| label_format " + ", ".join(f"{k}={quote(v)}" for k, v in self.assignments)


@dataclass(frozen=True)
class _LabelList:
    kind: str  # drop | keep
    labels: tuple[str, ...]

    def render(self) -> str:
        return f"| {self.kind} " + ", ".join(self.labels)


@dataclass(frozen=True)
class _Decolorize:
    def render(self) -> str:
        return "| decolorize"


@dataclass(frozen=True)
class _Unwrap:
    label: str
    conversion: str | None = None

    def render(self) -> str:
        target = self.label if self.conversion is None else f"{self.conversion}({self.label})"
        return f"| unwrap {target}"


@dataclass(frozen=True)
class _RangeFunction:
    name: str | None  # None: with_range(...) was called first, the function is still to come
    range: str | None  # None: with_function(...) was called first, the range is still to come
    param: int | float | None = None


@dataclass(frozen=True)
class _Aggregate:
    op: str
    param: int | None = None
    grouping: str | None = None  # by | without
    labels: tuple[str, ...] = ()


_Stage = (
    _LineFilter
    | _Parser
    | _LabelFilter
    | _LineFormat
    | _LabelFormat
    | _LabelList
    | _Decolorize
    | _Unwrap
)


# --------------------------------------------------------------------------- the builder


@dataclass(frozen=True, init=False, repr=False)
class LogQLBuilder:
    """An immutable LogQL query. ``str(builder)`` renders it; every method returns a copy."""

    _matchers: tuple[Matcher, ...]
    _stages: tuple[_Stage, ...]
    _range_function: _RangeFunction | None
    _offset: str | None
    _aggregations: tuple[_Aggregate, ...]

    def __init__(self, selector: str | None = None) -> None:
        """Start from a stream selector text such as ``'{app="backend"}'`` (or none, then
        add matchers with :meth:`with_label`). The text is parsed and re-rendered, never
        pasted: anything but ``{`` matchers ``}`` is rejected."""
        matchers: tuple[Matcher, ...] = ()
        if selector is not None:
            matchers = parse_selector(selector)
            for m in matchers:
                _label(m.name)
        object.__setattr__(self, "_matchers", matchers)
        object.__setattr__(self, "_stages", ())
        object.__setattr__(self, "_range_function", None)
        object.__setattr__(self, "_offset", None)
        object.__setattr__(self, "_aggregations", ())

    @classmethod
    def from_labels(cls, **labels: str) -> LogQLBuilder:
        """``LogQLBuilder.from_labels(app="backend")`` -> ``{app="backend"}``."""
        builder = cls()
        for name, value in labels.items():
            builder = builder.with_label(name, value)
        return builder

    @classmethod
    def from_dict(cls, body: Mapping[str, Any] | LogQLSpec) -> LogQLBuilder:
        """Build from a :class:`LogQLSpec` body.

        Raises pydantic ``ValidationError`` or ``InvalidInput``.
        """
        spec = body if isinstance(body, LogQLSpec) else LogQLSpec.model_validate(body)
        return spec.build()

    def _evolve(self, **changes: Any) -> LogQLBuilder:
        new = object.__new__(LogQLBuilder)
        for name in ("_matchers", "_stages", "_range_function", "_offset", "_aggregations"):
            object.__setattr__(new, name, changes.get(name, getattr(self, name)))
        return new

    # ---- stream selector

    def with_label(self, name: str, value: str, op: str = "=") -> LogQLBuilder:
        """Add the stream matcher ``name op "value"`` (``op`` one of ``= != =~ !~``)."""
        _label(name)
        return self._evolve(_matchers=self._matchers + (Matcher(name, op, value),))

    def with_label_not(self, name: str, value: str) -> LogQLBuilder:
        return self.with_label(name, value, "!=")

    def with_label_regex(self, name: str, regex: str) -> LogQLBuilder:
        return self.with_label(name, regex, "=~")

    def with_label_not_regex(self, name: str, regex: str) -> LogQLBuilder:
        return self.with_label(name, regex, "!~")

    def with_labels(self, **labels: str) -> LogQLBuilder:
        """One ``=`` stream matcher per keyword, as :meth:`QueryBuilder.with_labels`."""
        builder = self
        for name, value in labels.items():
            builder = builder.with_label(name, value)
        return builder

    # ---- pipeline

    def _add(self, stage: _Stage, method: str) -> LogQLBuilder:
        if self._range_function is not None and self._range_function.name is not None:
            raise InvalidInput(
                f"{method}() cannot follow {self._range_function.name}(...): the range function "
                "closes the log pipeline; add pipeline stages before it"
            )
        unwrapped = any(isinstance(s, _Unwrap) for s in self._stages)
        if unwrapped and not isinstance(stage, _LabelFilter):
            raise InvalidInput(
                f"{method}() cannot follow unwrap(...): unwrap must come after parsers and "
                "other stages; only label filters may follow it"
            )
        return self._evolve(_stages=self._stages + (stage,))

    def line_filter(self, op: str, value: str) -> LogQLBuilder:
        """``|=`` contains, ``!=`` not, ``|~``/``!~`` regex, ``|>``/``!>`` pattern."""
        if op not in LINE_FILTER_OPS:
            raise InvalidInput(
                f"invalid line filter operator {op!r}; use one of {' '.join(LINE_FILTER_OPS)}",
                field="op",
            )
        quote(value)
        if op in ("|~", "!~"):
            validate_regex(value, anchored=False, what="line filter regex")
        return self._add(_LineFilter(op, value), "line_filter")

    def contains(self, text: str) -> LogQLBuilder:
        """``|= "text"``: keep lines containing ``text``."""
        return self.line_filter("|=", text)

    def not_contains(self, text: str) -> LogQLBuilder:
        """``!= "text"``: drop lines containing ``text``."""
        return self.line_filter("!=", text)

    def matches(self, regex: str) -> LogQLBuilder:
        """``|~ "regex"``: keep lines matching the (unanchored) RE2 regex."""
        return self.line_filter("|~", regex)

    def not_matches(self, regex: str) -> LogQLBuilder:
        """``!~ "regex"``: drop lines matching the regex."""
        return self.line_filter("!~", regex)

    def pattern_filter(self, pattern: str) -> LogQLBuilder:
        """``|> "pattern"``: keep lines matching a pattern such as ``<_> error <_>``."""
        return self.line_filter("|>", pattern)

    def not_pattern_filter(self, pattern: str) -> LogQLBuilder:
        """``!> "pattern"``: drop lines matching the pattern."""
        return self.line_filter("!>", pattern)

    @staticmethod
    def _extractions(
        labels: tuple[str, ...], expressions: Mapping[str, str]
    ) -> tuple[tuple[str, str | None], ...]:
        params: list[tuple[str, str | None]] = [
            (_label(n, "extracted label"), None) for n in labels
        ]
        for name, expression in expressions.items():
            _label(name, "extracted label")
            if not isinstance(expression, str):
                raise InvalidInput(f"expression for {name!r} must be a string, got {expression!r}")
            quote(expression)
            params.append((name, expression))
        names = [n for n, _ in params]
        if len(set(names)) != len(names):
            raise InvalidInput(f"extracted labels must be unique, got {names!r}")
        return tuple(params)

    def json(self, *labels: str, **expressions: str) -> LogQLBuilder:
        """``| json`` (all fields), or only ``| json a, b="x.y[0]"`` for the given labels."""
        return self._add(_Parser("json", self._extractions(labels, expressions)), "json")

    def logfmt(
        self, *labels: str, strict: bool = False, keep_empty: bool = False, **expressions: str
    ) -> LogQLBuilder:
        """``| logfmt``, optionally ``--strict``/``--keep-empty``; extractions as :meth:`json`."""
        flags = tuple(f for f, on in (("strict", strict), ("keep_empty", keep_empty)) if on)
        return self._add(_Parser("logfmt", self._extractions(labels, expressions), flags), "logfmt")

    def pattern(self, pattern: str) -> LogQLBuilder:
        """``| pattern "<ip> - <_> <status>"``: extract labels by position."""
        _check_pattern(pattern)
        return self._add(_Parser("pattern", value=pattern), "pattern")

    def regexp(self, regex: str) -> LogQLBuilder:
        """``| regexp "(?P<name>...)"``: extract labels from named groups."""
        compiled = validate_regex(regex, anchored=False, what="regexp parser")
        names = list(compiled.groupindex)
        if not names:
            raise InvalidInput(
                f"regexp parser {regex!r} needs at least one named group (?P<name>...)",
                field="regexp",
            )
        for name in names:
            _label(name, "regexp group name")
        return self._add(_Parser("regexp", value=regex), "regexp")

    def unpack(self) -> LogQLBuilder:
        """``| unpack``: undo Promtail's ``pack`` stage."""
        return self._add(_Parser("unpack"), "unpack")

    def label_filter(
        self,
        name: str,
        op: str,
        value: str | int | float | timedelta,
        *,
        kind: str | None = None,
    ) -> LogQLBuilder:
        """Filter on an (extracted) label; ``kind`` is inferred from ``value`` unless given.

        - ``str`` value with ``= != =~ !~``: string/regex match, ``| level="error"``;
        - number with ``> >= < <= == != =``: ``| status >= 500``;
        - ``timedelta``, or a duration string (``"250ms"``, ``"1.5s"``) with ``> >= < <= ==``:
          ``| latency > 250ms``;
        - a byte-size string (``"20MB"``, ``"1.5KiB"``) likewise: ``| size > 20MB``.

        A string with ``!=``/``=`` is a string comparison unless ``kind="duration"`` or
        ``kind="bytes"`` says otherwise.
        """
        _label(name, "label filter name")
        if op not in _STRING_FILTER_OPS and op not in _COMPARE_OPS:
            raise InvalidInput(
                f"invalid label filter operator {op!r} for {name!r}: use = != =~ !~ for strings "
                "or > >= < <= == != for numbers, durations and byte sizes",
                field="op",
            )
        if kind is None:
            kind = _infer_kind(op, value)
        if kind not in _FILTER_KINDS:
            raise InvalidInput(
                f"invalid label filter kind {kind!r}; use one of {', '.join(_FILTER_KINDS)}",
                field="kind",
            )
        allowed = _STRING_FILTER_OPS if kind == "string" else _COMPARE_OPS
        if op not in allowed:
            raise InvalidInput(
                f"invalid {kind} label filter operator {op!r} for {name!r}: use one of "
                f"{' '.join(allowed)}",
                field="op",
            )
        if kind != "string" and op == "=":
            op = "=="
        if kind == "string":
            if not isinstance(value, str):
                raise InvalidInput(f"string label filter on {name!r} needs a string, got {value!r}")
            Matcher(name, op, value)  # validates the value and any regex
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise InvalidInput(
                    f"numeric label filter on {name!r} needs a number, got {value!r}"
                )
            format_number(value, what=f"value for {name!r}")
        elif isinstance(value, timedelta) and kind == "duration":
            value = duration(value, what=f"duration for {name!r}", allow_zero=True)
        elif not isinstance(value, str) or _unit_kind(name, value) != kind:
            raise InvalidInput(
                f"{kind} label filter on {name!r} needs a {kind} such as "
                f"{'250ms' if kind == 'duration' else '20MB'}, got {value!r}",
                field="value",
            )
        return self._add(_LabelFilter(name, op, kind, value), "label_filter")

    def line_format(self, template: str) -> LogQLBuilder:
        """``| line_format "{{.level}} {{.msg}}"`` (Go template; quoted safely)."""
        if not isinstance(template, str):
            raise InvalidInput(f"line_format template must be a string, got {template!r}")
        quote(template)
        return self._add(_LineFormat(template), "line_format")

    def label_format(self, **templates: str) -> LogQLBuilder:
        """``| label_format dst="{{.src}}"``: set labels from Go templates (renames included)."""
        if not templates:
            raise InvalidInput("label_format needs at least one label=template")
        for name, template in templates.items():
            _label(name, "label_format label")
            if not isinstance(template, str):
                raise InvalidInput(f"template for {name!r} must be a string, got {template!r}")
            quote(template)
        return self._add(_LabelFormat(tuple(templates.items())), "label_format")

    def drop(self, *labels: str) -> LogQLBuilder:
        """``| drop a, b``: remove labels."""
        if not labels:
            raise InvalidInput("drop needs at least one label")
        return self._add(_LabelList("drop", _labels(labels, "drop")), "drop")

    def keep(self, *labels: str) -> LogQLBuilder:
        """``| keep a, b``: keep only these labels."""
        if not labels:
            raise InvalidInput("keep needs at least one label")
        return self._add(_LabelList("keep", _labels(labels, "keep")), "keep")

    def decolorize(self) -> LogQLBuilder:
        """``| decolorize``: strip ANSI colour codes."""
        return self._add(_Decolorize(), "decolorize")

    def unwrap(self, label: str, conv: str | None = None) -> LogQLBuilder:
        """``| unwrap label``: use a label's value as the sample for ``sum_over_time`` & co.

        ``conv`` is ``duration``, ``duration_seconds`` or ``bytes`` (``| unwrap bytes(size)``).
        """
        if any(isinstance(s, _Unwrap) for s in self._stages):
            raise InvalidInput("unwrap() can be used only once")
        if conv is not None and conv not in UNWRAP_CONVERSIONS:
            raise InvalidInput(
                f"invalid unwrap conversion {conv!r}; use one of {', '.join(UNWRAP_CONVERSIONS)}",
                field="conversion",
            )
        return self._add(_Unwrap(_label(label, "unwrap label"), conv), "unwrap")

    # ---- range functions

    def with_function(self, name: str, *args: int | float) -> LogQLBuilder:
        """Close the pipeline with the range function ``name`` (its range from
        :meth:`with_range`, before or after): ``with_function("rate").with_range("5m")`` is
        ``rate({...}[5m])``; ``quantile_over_time`` takes φ: ``with_function(name, 0.99)``.
        The same verb as :meth:`QueryBuilder.with_function <aiops.promql.QueryBuilder>`."""
        if name not in RANGE_FUNCTIONS:
            raise InvalidInput(
                f"unknown range function {name!r}; supported: {', '.join(RANGE_FUNCTIONS)}",
                field="range_function",
            )
        current = self._range_function
        if current is not None and current.name is not None:
            raise InvalidInput(f"the query already has the range function {current.name}(...)")
        if len(args) > 1:
            raise InvalidInput(f"{name} takes at most one parameter, got {len(args)}")
        param = args[0] if args else None
        needs_unwrap = RANGE_FUNCTIONS[name]
        unwrapped = any(isinstance(s, _Unwrap) for s in self._stages)
        if needs_unwrap and not unwrapped:
            raise InvalidInput(f"{name} needs an unwrapped value; call unwrap(label) first")
        if needs_unwrap is False and unwrapped:
            raise InvalidInput(
                f"{name} counts log lines or bytes and cannot be used with unwrap(...)"
            )
        if name == "quantile_over_time":
            if param is None:
                raise InvalidInput(
                    "quantile_over_time needs φ, e.g. quantile_over_time(0.99, '5m')"
                )
            format_number(param, what="φ of quantile_over_time")
            if not 0 <= param <= 1:
                raise InvalidInput(
                    f"φ of quantile_over_time must be between 0 and 1, got {param!r}"
                )
        elif param is not None:
            raise InvalidInput(f"{name} takes no parameter, got {param!r}")
        fn = _RangeFunction(name, None if current is None else current.range, param)
        return self._evolve(_range_function=fn)

    def with_range(self, range: str | timedelta | None) -> LogQLBuilder:  # noqa: A002
        """The range ``[d]`` of the range function (``None`` removes it), before or after
        :meth:`with_function`; the same verb as ``QueryBuilder.with_range``."""
        current = self._range_function
        text = None if range is None else duration(range, what="range")
        if current is None:
            return (
                self if text is None else self._evolve(_range_function=_RangeFunction(None, text))
            )
        if text is None and current.name is None:
            return self._evolve(_range_function=None)
        return self._evolve(_range_function=replace(current, range=text))

    def range_function(
        self,
        name: str,
        range: str | timedelta,  # noqa: A002
        param: int | float | None = None,  # noqa: A002
    ) -> LogQLBuilder:
        """``with_function(name[, param]).with_range(range)``: ``rate({...}[5m])``."""
        builder = self.with_function(name) if param is None else self.with_function(name, param)
        return builder.with_range(range)

    def rate(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        """``rate(...[range])``: log lines per second (or unwrapped values per second)."""
        return self.range_function("rate", range)

    def count_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("count_over_time", range)

    def bytes_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("bytes_over_time", range)

    def bytes_rate(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("bytes_rate", range)

    def absent_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("absent_over_time", range)

    def avg_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("avg_over_time", range)

    def min_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("min_over_time", range)

    def max_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("max_over_time", range)

    def sum_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("sum_over_time", range)

    def stddev_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("stddev_over_time", range)

    def stdvar_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("stdvar_over_time", range)

    def first_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("first_over_time", range)

    def last_over_time(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("last_over_time", range)

    def rate_counter(self, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        return self.range_function("rate_counter", range)

    def quantile_over_time(self, phi: float, range: str | timedelta) -> LogQLBuilder:  # noqa: A002
        """``quantile_over_time(φ, ... | unwrap x [range])``."""
        return self.range_function("quantile_over_time", range, phi)

    def offset(self, offset: str | timedelta | None) -> LogQLBuilder:
        """``[5m] offset 1h`` on the range (needs a range function by render time)."""
        value = None if offset is None else duration(offset, what="offset", allow_zero=True)
        if value is not None and parse_promql_duration_ms(value) == 0:
            value = None
        return self._evolve(_offset=value)

    # ---- aggregations

    def aggregate(
        self,
        op: str,
        param: int | None = None,
        *,
        by: Iterable[str] | None = None,
        without: Iterable[str] | None = None,
    ) -> LogQLBuilder:
        """Wrap the metric query: ``aggregate("topk", 10)``, ``aggregate("avg", by=["pod"])``."""
        self._require_metric("aggregate")
        if op not in AGGREGATIONS:
            raise InvalidInput(
                f"unknown aggregation {op!r}; supported: {', '.join(AGGREGATIONS)}",
                field="aggregation",
            )
        if AGGREGATIONS[op]:
            if isinstance(param, bool) or not isinstance(param, numbers.Integral) or param < 1:
                raise InvalidInput(
                    f"{op} needs an integer k >= 1, got {param!r}", field="aggregation_param"
                )
        elif param is not None:
            raise InvalidInput(
                f"aggregation {op} takes no parameter, got {param!r}", field="aggregation_param"
            )
        if by is not None and without is not None:
            raise InvalidInput("use either by or without, not both", field="by")
        grouping, labels = None, ()
        if by is not None:
            grouping, labels = "by", _labels(by, "by")
        elif without is not None:
            grouping, labels = "without", _labels(without, "without")
        return self._evolve(
            _aggregations=self._aggregations + (_Aggregate(op, param, grouping, labels),)
        )

    def _require_metric(self, method: str) -> None:
        if not self.is_metric_query:
            raise InvalidInput(
                f"{method}() needs a metric query, but this is a log query; call a range "
                "function such as rate('5m') or count_over_time('5m') first"
            )

    def _regroup(self, grouping: str, labels: tuple[str, ...]) -> LogQLBuilder:
        last = self._aggregations[-1] if self._aggregations else None
        if last is not None and last.grouping is None:
            aggs = self._aggregations[:-1] + (replace(last, grouping=grouping, labels=labels),)
        else:
            aggs = self._aggregations + (_Aggregate("sum", None, grouping, labels),)
        return self._evolve(_aggregations=aggs)

    def group_by(self, *labels: str) -> LogQLBuilder:
        """``by (labels)`` on the aggregation just added, or ``sum by (labels) (...)``; the
        same verb as ``QueryBuilder.group_by``."""
        self._require_metric("group_by")
        return self._regroup("by", _labels(labels, "by"))

    def by(self, *labels: str) -> LogQLBuilder:
        """The older name of :meth:`group_by` (kept: it reads like LogQL's ``by``)."""
        self._require_metric("by")
        return self._regroup("by", _labels(labels, "by"))

    def without(self, *labels: str) -> LogQLBuilder:
        """``without (labels)`` on the aggregation just added, or ``sum without (...)``."""
        self._require_metric("without")
        return self._regroup("without", _labels(labels, "without"))

    # ---- inspection and rendering

    @property
    def is_metric_query(self) -> bool:
        """True once a range function turned the log query into a metric query."""
        return self._range_function is not None and self._range_function.name is not None

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return self._matchers

    def render(self) -> str:
        """The LogQL text; raises ``InvalidInput`` if the query is not valid yet."""
        if not self._matchers:
            raise InvalidInput("a stream selector needs at least one label matcher")
        if not any(m.op in ("=", "=~") and not m.matches_empty() for m in self._matchers):
            raise InvalidInput(
                "a stream selector needs at least one = or =~ matcher that does not match the "
                f"empty string (Loki's rule); got {self._selector()}"
            )
        log = self._selector() + "".join(" " + stage.render() for stage in self._stages)
        fn = self._range_function
        if fn is not None and fn.name is None:
            raise InvalidInput(
                f"the range [{fn.range}] needs a range function: with_function('rate') or "
                "rate('5m'), count_over_time('5m')..."
            )
        if fn is not None and fn.range is None:
            raise InvalidInput(f"{fn.name}(...) needs a range: with_range('5m')")
        if fn is None:
            if any(isinstance(s, _Unwrap) for s in self._stages):
                raise InvalidInput(
                    "unwrap(...) needs an unwrap range function such as sum_over_time(...) or "
                    "quantile_over_time(...)"
                )
            if self._offset is not None:
                raise InvalidInput("offset(...) needs a range function such as rate(...)")
            return log
        inner = log + (" " if self._stages else "") + f"[{fn.range}]"
        if self._offset is not None:
            inner += f" offset {self._offset}"
        args = ([format_number(fn.param)] if fn.param is not None else []) + [inner]
        text = f"{fn.name}({', '.join(args)})"
        for agg in self._aggregations:
            head = agg.op
            if agg.grouping is not None:
                head += f" {agg.grouping} ({', '.join(agg.labels)}) "
            params = [str(agg.param)] if agg.param is not None else []
            text = f"{head}({', '.join(params + [text])})"
        return text

    def _selector(self) -> str:
        return "{" + ", ".join(str(m) for m in self._matchers) + "}"

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        try:
            return f"LogQLBuilder({self.render()!r})"
        except InvalidInput as exc:
            return f"LogQLBuilder(<invalid: {exc.message}>)"

    def to_dict(self) -> dict[str, Any]:
        """The :class:`LogQLSpec` body for this builder (at most one aggregation)."""
        if len(self._aggregations) > 1:
            raise InvalidInput(
                "this query cannot be described by a LogQLSpec: it has more than one aggregation"
            )
        agg = self._aggregations[0] if self._aggregations else None
        fn = self._range_function
        if fn is not None and (fn.name is None or fn.range is None):
            self.render()  # says what is missing
        spec = LogQLSpec(
            labels=[LabelMatcherSpec(name=m.name, op=m.op, value=m.value) for m in self._matchers],
            pipeline=[_stage_spec(s) for s in self._stages],
            range_function=fn.name if fn else None,
            range=fn.range if fn else None,
            range_param=fn.param if fn else None,
            offset=self._offset,
            aggregation=agg.op if agg else None,
            aggregation_param=agg.param if agg else None,
            by=list(agg.labels) if agg and agg.grouping == "by" else None,
            without=list(agg.labels) if agg and agg.grouping == "without" else None,
        )
        return spec.model_dump(mode="json", exclude_defaults=True)


_FILTER_KINDS = ("string", "number", "duration", "bytes")


def _infer_kind(op: str, value: object) -> str:
    if isinstance(value, timedelta):
        return "duration"
    if isinstance(value, str):
        return "string" if op in _STRING_FILTER_OPS else _unit_kind("label", value)
    return "number"


def _unit_kind(name: str, value: str) -> str:
    if value != "0" and (_GO_DURATION_RE.fullmatch(value) or _is_prom_duration(value)):
        return "duration"
    if _BYTES_RE.fullmatch(value):
        return "bytes"
    raise InvalidInput(
        f"label filter on {name!r} compares with {value!r}, which is neither a duration "
        "(250ms, 1.5s, 1h30m) nor a byte size (20MB, 1.5KiB); pass a number for numeric "
        "comparisons or use = != =~ !~ to compare strings",
        field="value",
    )


def _is_prom_duration(value: str) -> bool:
    try:
        return parse_promql_duration_ms(value) >= 0
    except InvalidInput:
        return False


# --------------------------------------------------------------------------- the spec

_Number = StrictInt | StrictFloat


class _StageBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineFilterStage(_StageBase):
    type: Literal["line_filter"]
    op: Literal["|=", "!=", "|~", "!~", "|>", "!>"] = "|="
    value: str


class JsonStage(_StageBase):
    type: Literal["json"]
    labels: list[str] = Field(default_factory=list)
    expressions: dict[str, str] = Field(default_factory=dict)


class LogfmtStage(_StageBase):
    type: Literal["logfmt"]
    labels: list[str] = Field(default_factory=list)
    expressions: dict[str, str] = Field(default_factory=dict)
    strict: bool = False
    keep_empty: bool = False


class PatternStage(_StageBase):
    type: Literal["pattern"]
    pattern: str


class RegexpStage(_StageBase):
    type: Literal["regexp"]
    regex: str


class UnpackStage(_StageBase):
    type: Literal["unpack"]


class LabelFilterStage(_StageBase):
    type: Literal["label_filter"]
    name: str
    op: Literal["=", "!=", "=~", "!~", ">", ">=", "<", "<=", "=="]
    value: StrictInt | StrictFloat | StrictStr
    kind: Literal["string", "number", "duration", "bytes"] | None = None


class LineFormatStage(_StageBase):
    type: Literal["line_format"]
    template: str


class LabelFormatStage(_StageBase):
    type: Literal["label_format"]
    templates: dict[str, str]


class DropStage(_StageBase):
    type: Literal["drop"]
    labels: list[str]


class KeepStage(_StageBase):
    type: Literal["keep"]
    labels: list[str]


class DecolorizeStage(_StageBase):
    type: Literal["decolorize"]


class UnwrapStage(_StageBase):
    type: Literal["unwrap"]
    label: str
    conversion: Literal["duration", "duration_seconds", "bytes"] | None = None


StageSpec = Annotated[
    LineFilterStage
    | JsonStage
    | LogfmtStage
    | PatternStage
    | RegexpStage
    | UnpackStage
    | LabelFilterStage
    | LineFormatStage
    | LabelFormatStage
    | DropStage
    | KeepStage
    | DecolorizeStage
    | UnwrapStage,
    Field(discriminator="type"),
]


def _stage_spec(stage: _Stage) -> BaseModel:
    if isinstance(stage, _LineFilter):
        return LineFilterStage(type="line_filter", op=stage.op, value=stage.value)  # type: ignore[arg-type]
    if isinstance(stage, _Parser):
        labels = [n for n, e in stage.params if e is None]
        expressions = {n: e for n, e in stage.params if e is not None}
        if stage.kind == "json":
            return JsonStage(type="json", labels=labels, expressions=expressions)
        if stage.kind == "logfmt":
            return LogfmtStage(
                type="logfmt",
                labels=labels,
                expressions=expressions,
                strict="strict" in stage.flags,
                keep_empty="keep_empty" in stage.flags,
            )
        if stage.kind == "pattern":
            return PatternStage(type="pattern", pattern=stage.value or "")
        if stage.kind == "regexp":
            return RegexpStage(type="regexp", regex=stage.value or "")
        return UnpackStage(type="unpack")
    if isinstance(stage, _LabelFilter):
        return LabelFilterStage(
            type="label_filter",
            name=stage.name,
            op=stage.op,  # type: ignore[arg-type]
            value=stage.value,
            kind=stage.kind,  # type: ignore[arg-type]
        )
    if isinstance(stage, _LineFormat):
        return LineFormatStage(type="line_format", template=stage.template)
    if isinstance(stage, _LabelFormat):
        return LabelFormatStage(type="label_format", templates=dict(stage.assignments))
    if isinstance(stage, _LabelList):
        model = DropStage if stage.kind == "drop" else KeepStage
        return model(type=stage.kind, labels=list(stage.labels))  # type: ignore[arg-type]
    if isinstance(stage, _Decolorize):
        return DecolorizeStage(type="decolorize")
    assert isinstance(stage, _Unwrap)
    return UnwrapStage(type="unwrap", label=stage.label, conversion=stage.conversion)  # type: ignore[arg-type]


def _apply_stage(builder: LogQLBuilder, stage: Any) -> LogQLBuilder:
    if isinstance(stage, LineFilterStage):
        return builder.line_filter(stage.op, stage.value)
    if isinstance(stage, JsonStage):
        return builder.json(*stage.labels, **stage.expressions)
    if isinstance(stage, LogfmtStage):
        return builder.logfmt(
            *stage.labels, strict=stage.strict, keep_empty=stage.keep_empty, **stage.expressions
        )
    if isinstance(stage, PatternStage):
        return builder.pattern(stage.pattern)
    if isinstance(stage, RegexpStage):
        return builder.regexp(stage.regex)
    if isinstance(stage, UnpackStage):
        return builder.unpack()
    if isinstance(stage, LabelFilterStage):
        return builder.label_filter(stage.name, stage.op, stage.value, kind=stage.kind)
    if isinstance(stage, LineFormatStage):
        return builder.line_format(stage.template)
    if isinstance(stage, LabelFormatStage):
        return builder.label_format(**stage.templates)
    if isinstance(stage, DropStage):
        return builder.drop(*stage.labels)
    if isinstance(stage, KeepStage):
        return builder.keep(*stage.labels)
    if isinstance(stage, DecolorizeStage):
        return builder.decolorize()
    assert isinstance(stage, UnwrapStage)
    return builder.unwrap(stage.label, stage.conversion)


class LogQLSpec(BaseModel):
    """The structured description of a LogQL query (the ``query-builder`` endpoint body).

    The stream is ``selector`` (text) and/or ``labels``; ``pipeline`` stages apply in order;
    ``range_function`` with ``range`` (and ``range_param`` = φ for ``quantile_over_time``)
    makes it a metric query; ``aggregation``/``aggregation_param`` grouped ``by`` or
    ``without`` wraps it (``sum`` if only a grouping is given).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    selector: str | None = None
    labels: list[LabelMatcherSpec] = Field(default_factory=list)
    pipeline: list[StageSpec] = Field(default_factory=list)
    range_function: str | None = None
    range: str | None = None
    range_param: _Number | None = None
    offset: str | None = None
    aggregation: str | None = None
    aggregation_param: StrictInt | None = None
    by: list[str] | None = None
    without: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> LogQLSpec:
        if self.selector is None and not self.labels:
            raise ValueError("give a selector or labels")
        if (self.range_function is None) != (self.range is None):
            raise ValueError("range_function and range go together")
        if self.by is not None and self.without is not None:
            raise ValueError("give either by or without, not both")
        if self.range_function is None and (
            self.aggregation is not None or self.by is not None or self.without is not None
        ):
            raise ValueError("an aggregation needs range_function (a metric query)")
        return self

    def build(self) -> LogQLBuilder:
        """The :class:`LogQLBuilder` this spec describes (raises ``InvalidInput`` if invalid)."""
        builder = LogQLBuilder(self.selector)
        for m in self.labels:
            builder = builder.with_label(m.name, m.value, m.op)
        for stage in self.pipeline:
            builder = _apply_stage(builder, stage)
        if self.range_function is not None:
            assert self.range is not None
            builder = builder.range_function(self.range_function, self.range, self.range_param)
        if self.offset is not None:
            builder = builder.offset(self.offset)
        if self.aggregation is not None or self.by is not None or self.without is not None:
            builder = builder.aggregate(
                self.aggregation or "sum", self.aggregation_param, by=self.by, without=self.without
            )
        builder.render()  # fail now, not when the caller first uses it
        return builder
