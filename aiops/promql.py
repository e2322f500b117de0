"""A fluent, immutable, injection-safe PromQL builder.

::

    >>> q = (QueryBuilder("http_requests_total")
    ...      .with_label("status", "200")
    ...      .with_function("rate")
    ...      .with_range("5m")
    ...      .group_by("instance"))
    >>> str(q)
    'sum by (instance) (rate(http_requests_total{status="200"}[5m]))'

Every method returns a new builder; builders are hashable and compare by value. The query
is built from a *node* (a series selector, a number, or a binary operation between two
builders) and a list of *steps* applied in call order, innermost first: functions,
aggregations and subqueries. The selector's range, offset and ``@`` modifier belong to the
selector whatever the call order, so ``with_function("rate").with_range("5m")`` works.

Type rules are Prometheus' (checked against Prometheus 2.42, the version this project runs):
range functions need a range vector, other functions and aggregations need an instant
vector, binary operators need scalars or instant vectors. A builder that breaks them raises
:class:`aiops.errors.InvalidInput` when rendered (``str(builder)``), naming the problem, e.g.
``rate needs a range vector; call with_range(...)``. Every label value goes through
:func:`aiops.querylang.quote`; every name is validated.

:class:`PromQLSpec` is the structured JSON body of the ``query-builder`` endpoint;
``QueryBuilder.from_dict(body)`` / ``builder.to_dict()`` convert.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

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
    quote,
    regex_escape_literal,
    validate_label_name,
    validate_metric_name,
    validate_regex,
)
from aiops.timeutil import parse_promql_duration_ms

__all__ = [
    "QueryBuilder",
    "PromQLSpec",
    "FunctionCallSpec",
    "LabelMatcherSpec",
    "RANGE_FUNCTIONS",
    "INSTANT_FUNCTIONS",
    "AGGREGATIONS",
    "BINARY_OPERATORS",
    "regex_escape_literal",
    "SelectorUse",
    "find_selectors",
    "read_every_sample",
    "query_for_step",
    "presence_probe",
    "sampling_notes",
    "seconds_duration",
    "detector_sampling_notes",
]

SCALAR = "scalar"
VECTOR = "instant vector"
MATRIX = "range vector"

# Words the PromQL lexer treats as keywords (case-insensitively) or numbers. A metric with
# such a name is rendered as {__name__="..."}, which means the same and always parses.
_KEYWORDS = frozenset(
    "and or unless atan2 sum avg count min max group stddev stdvar topk bottomk count_values "
    "quantile offset by without on ignoring group_left group_right bool start end inf nan".split()
)
# Label names that Prometheus 2.42 cannot parse inside by(...)/without(...)/on(...)/group_x(...).
_GROUPING_RESERVED = frozenset({"without", "inf", "nan"})
_MAX_AT_TIMESTAMP = 9.2e15  # seconds; Prometheus keeps @ timestamps in int64 milliseconds


# --------------------------------------------------------------------------- function table


@dataclass(frozen=True)
class _Param:
    name: str
    kind: str  # number | phi | smoothing | label | string | regex
    optional: bool = False
    variadic: bool = False


@dataclass(frozen=True)
class _FunctionDef:
    name: str
    arg: str  # value type of the wrapped expression
    returns: str
    params: tuple[_Param, ...] = ()
    inner_last: bool = False  # the wrapped expression comes after the parameters


def _table(*defs: _FunctionDef) -> dict[str, _FunctionDef]:
    return {d.name: d for d in defs}


_PHI = _Param("φ", "phi")
RANGE_FUNCTIONS: dict[str, _FunctionDef] = _table(
    *(
        _FunctionDef(name, MATRIX, VECTOR)
        for name in (
            "rate irate increase delta idelta deriv changes resets avg_over_time min_over_time "
            "max_over_time sum_over_time count_over_time stddev_over_time stdvar_over_time "
            "last_over_time present_over_time absent_over_time"
        ).split()
    ),
    _FunctionDef("quantile_over_time", MATRIX, VECTOR, (_PHI,), inner_last=True),
    _FunctionDef("predict_linear", MATRIX, VECTOR, (_Param("t", "number"),)),
    # Prometheus 2.x name; 3.x renamed it double_exponential_smoothing.
    _FunctionDef(
        "holt_winters", MATRIX, VECTOR, (_Param("sf", "smoothing"), _Param("tf", "smoothing"))
    ),
)
INSTANT_FUNCTIONS: dict[str, _FunctionDef] = _table(
    *(
        _FunctionDef(name, VECTOR, VECTOR)
        for name in (
            "abs ceil floor exp ln log2 log10 sqrt sgn acos acosh asin asinh atan atanh cos "
            "cosh sin sinh tan tanh deg rad timestamp absent sort sort_desc day_of_month "
            "day_of_week day_of_year days_in_month hour minute month year"
        ).split()
    ),
    _FunctionDef("clamp", VECTOR, VECTOR, (_Param("min", "number"), _Param("max", "number"))),
    _FunctionDef("clamp_min", VECTOR, VECTOR, (_Param("min", "number"),)),
    _FunctionDef("clamp_max", VECTOR, VECTOR, (_Param("max", "number"),)),
    _FunctionDef("round", VECTOR, VECTOR, (_Param("to_nearest", "number", optional=True),)),
    _FunctionDef("histogram_quantile", VECTOR, VECTOR, (_PHI,), inner_last=True),
    _FunctionDef(
        "label_replace",
        VECTOR,
        VECTOR,
        (
            _Param("dst_label", "label"),
            _Param("replacement", "string"),
            _Param("src_label", "label"),
            _Param("regex", "regex"),
        ),
    ),
    _FunctionDef(
        "label_join",
        VECTOR,
        VECTOR,
        (
            _Param("dst_label", "label"),
            _Param("separator", "string"),
            _Param("src_label", "label", variadic=True),
        ),
    ),
    _FunctionDef("scalar", VECTOR, SCALAR),
    _FunctionDef("vector", SCALAR, VECTOR),
)
_FUNCTIONS = {**RANGE_FUNCTIONS, **INSTANT_FUNCTIONS}

# aggregation -> kind of its parameter (None: takes none)
AGGREGATIONS: dict[str, str | None] = {
    "sum": None,
    "avg": None,
    "min": None,
    "max": None,
    "count": None,
    "stddev": None,
    "stdvar": None,
    "group": None,
    "topk": "k",
    "bottomk": "k",
    "quantile": "phi",
    "count_values": "label",
}

_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    ">": 3,
    "<": 3,
    ">=": 3,
    "<=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
BINARY_OPERATORS: tuple[str, ...] = tuple(_PRECEDENCE)
_SET_OPS = frozenset({"and", "or", "unless"})
_COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})


def _check_param(fn: str, param: _Param, value: Any) -> Any:
    where = f"{param.name} of {fn}"
    if param.kind in ("number", "phi", "smoothing"):
        format_number(value, what=where)
        if param.kind == "phi" and not 0 <= value <= 1:
            raise InvalidInput(f"{where} must be between 0 and 1, got {value!r}", field="args")
        if param.kind == "smoothing" and not 0 < value < 1:
            raise InvalidInput(
                f"{where} must be strictly between 0 and 1, got {value!r}", field="args"
            )
        return value
    if param.kind == "label":
        return validate_label_name(value, what=where)
    if not isinstance(value, str):
        raise InvalidInput(f"{where} must be a string, got {value!r}", field="args")
    quote(value)
    if param.kind == "regex":
        validate_regex(value, anchored=True, what=where)
    return value


def _render_param(param: _Param, value: Any) -> str:
    if param.kind in ("number", "phi", "smoothing"):
        return format_number(value)
    return quote(value)


def _describe_params(fn: _FunctionDef) -> str:
    if not fn.params:
        return "no parameters"
    names = [
        p.name + ("?" if p.optional else "") + ("..." if p.variadic else "") for p in fn.params
    ]
    return "parameters (" + ", ".join(names) + ")"


def _grouping_labels(labels: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(labels, str):
        labels = (labels,)
    out: list[str] = []
    for name in labels:
        validate_label_name(name, what=f"{what} label")
        if name.lower() in _GROUPING_RESERVED:
            raise InvalidInput(
                f"label {name!r} cannot be used in {what}(...): Prometheus 2.42 parses it as a "
                "keyword there",
                field=what,
            )
        if name not in out:
            out.append(name)
    return tuple(out)


# --------------------------------------------------------------------------- nodes and steps


@dataclass(frozen=True)
class _Selector:
    metric: str | None = None
    matchers: tuple[Matcher, ...] = ()
    range: str | None = None
    offset: str | None = None
    at: str | int | float | None = None


@dataclass(frozen=True)
class _Number:
    value: int | float


@dataclass(frozen=True)
class _Binary:
    op: str
    lhs: QueryBuilder
    rhs: QueryBuilder
    matching: str | None = None  # "on" | "ignoring"
    matching_labels: tuple[str, ...] = ()
    group: str | None = None  # "left" | "right"
    include: tuple[str, ...] = ()
    return_bool: bool = False


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class _Aggregate:
    op: str
    param: Any = None
    grouping: str | None = None  # "by" | "without"
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Subquery:
    range: str
    step: str | None = None


_Node = _Selector | _Number | _Binary
_Step = _Call | _Aggregate | _Subquery


@dataclass(frozen=True)
class _Rendered:
    text: str
    type: str
    precedence: int | None = None  # None: an atom; else binding strength as an operand
    call_like: bool = False  # ends in ')' of a call/aggregation: can take [r:s] directly


# --------------------------------------------------------------------------- the builder


@dataclass(frozen=True, init=False, repr=False)
class QueryBuilder:
    """An immutable PromQL query. ``str(builder)`` renders it; every method returns a copy."""

    _node: _Node
    _steps: tuple[_Step, ...]

    def __init__(self, metric: str | None = None) -> None:
        if metric is not None:
            validate_metric_name(metric)
        object.__setattr__(self, "_node", _Selector(metric=metric))
        object.__setattr__(self, "_steps", ())

    # ---- construction helpers

    @classmethod
    def _make(cls, node: _Node, steps: tuple[_Step, ...] = ()) -> QueryBuilder:
        new = object.__new__(cls)
        object.__setattr__(new, "_node", node)
        object.__setattr__(new, "_steps", steps)
        return new

    @classmethod
    def number(cls, value: int | float) -> QueryBuilder:
        """A number literal, e.g. ``QueryBuilder.number(1).with_function("vector")``."""
        format_number(value, what="number literal")
        return cls._make(_Number(value))

    @classmethod
    def from_dict(cls, body: Mapping[str, Any] | PromQLSpec) -> QueryBuilder:
        """Build from a :class:`PromQLSpec` body.

        Raises pydantic ``ValidationError`` or ``InvalidInput``.
        """
        spec = body if isinstance(body, PromQLSpec) else PromQLSpec.model_validate(body)
        return spec.build()

    def _selector(self, method: str) -> _Selector:
        if not isinstance(self._node, _Selector):
            kind = "binary expression" if isinstance(self._node, _Binary) else "number literal"
            raise InvalidInput(
                f"{method}() applies to a series selector, but this builder is a {kind}"
            )
        return self._node

    def _with_selector(self, **changes: Any) -> QueryBuilder:
        assert isinstance(self._node, _Selector)
        return self._make(replace(self._node, **changes), self._steps)

    def _then(self, step: _Step) -> QueryBuilder:
        return self._make(self._node, self._steps + (step,))

    # ---- selector

    def with_label(self, name: str, value: str, op: str = "=") -> QueryBuilder:
        """Add the matcher ``name op "value"`` (``op`` one of ``= != =~ !~``)."""
        sel = self._selector("with_label")
        validate_label_name(name)
        if name.startswith("__") and name != "__name__":
            raise InvalidInput(
                f"label {name!r} is reserved: names starting with '__' are internal to "
                "Prometheus and only __name__ can be matched",
                field="labels",
            )
        if name == "__name__" and sel.metric is not None:
            raise InvalidInput(
                f"metric name is already {sel.metric!r}; a __name__ matcher would set it twice",
                field="labels",
            )
        return self._with_selector(matchers=sel.matchers + (Matcher(name, op, value),))

    def with_label_not(self, name: str, value: str) -> QueryBuilder:
        """Add ``name!="value"``."""
        return self.with_label(name, value, "!=")

    def with_label_regex(self, name: str, regex: str) -> QueryBuilder:
        """Add ``name=~"regex"`` (the regex is anchored; see ``regex_escape_literal``)."""
        return self.with_label(name, regex, "=~")

    def with_label_not_regex(self, name: str, regex: str) -> QueryBuilder:
        """Add ``name!~"regex"``."""
        return self.with_label(name, regex, "!~")

    def with_labels(self, **labels: str) -> QueryBuilder:
        """Add one equality matcher per keyword argument."""
        builder = self
        for name, value in labels.items():
            builder = builder.with_label(name, value)
        return builder

    def with_range(self, range: str | timedelta | None) -> QueryBuilder:  # noqa: A002
        """Make the selector a range vector ``[range]`` (``None`` removes it)."""
        self._selector("with_range")
        value = None if range is None else duration(range, what="range")
        return self._with_selector(range=value)

    def offset(self, offset: str | timedelta | None) -> QueryBuilder:
        """Shift the selector back in time (``offset 5m``); negative looks ahead; 0/None removes."""
        self._selector("offset")
        value = (
            None
            if offset is None
            else duration(offset, what="offset", allow_negative=True, allow_zero=True)
        )
        if value is not None and parse_promql_duration_ms(value, what="offset") == 0:
            value = None
        return self._with_selector(offset=value)

    def at(self, timestamp: float | int | datetime | str | None) -> QueryBuilder:
        """Pin the selector to a time: ``@ <unix seconds>``, ``@ start()`` or ``@ end()``."""
        self._selector("at")
        value: str | int | float | None
        if timestamp is None or timestamp in ("start", "end"):
            value = timestamp
        elif isinstance(timestamp, datetime):
            if timestamp.tzinfo is None:
                raise InvalidInput("at() needs a timezone-aware datetime", field="at")
            value = timestamp.timestamp()
        elif isinstance(timestamp, str):
            raise InvalidInput(
                f"at() takes a unix timestamp, a datetime, 'start' or 'end', got {timestamp!r}",
                field="at",
            )
        else:
            format_number(timestamp, what="@ timestamp")
            value = timestamp
        if isinstance(value, numbers.Real) and abs(value) > _MAX_AT_TIMESTAMP:
            raise InvalidInput(f"@ timestamp {value!r} is out of range", field="at")
        return self._with_selector(at=value)

    # ---- functions, aggregations, subqueries

    def with_function(self, name: str, *args: Any) -> QueryBuilder:
        """Wrap the expression in a function; numeric/string parameters go in ``args``.

        ``with_function("histogram_quantile", 0.9)`` -> ``histogram_quantile(0.9, <expr>)``;
        ``with_function("label_replace", "dst", "$1", "src", "(.*)")``;
        ``with_function("clamp", 0, 100)``. Functions compose in call order.
        """
        fn = _FUNCTIONS.get(name) if isinstance(name, str) else None
        if fn is None:
            if name in AGGREGATIONS:
                raise InvalidInput(
                    f"{name} is an aggregation, not a function; use aggregate({name!r}, ...) "
                    "or group_by(...)",
                    field="function",
                )
            raise InvalidInput(
                f"unknown function {name!r}; supported: {', '.join(sorted(_FUNCTIONS))}",
                field="function",
            )
        required = [p for p in fn.params if not p.optional and not p.variadic]
        variadic = fn.params[-1] if fn.params and fn.params[-1].variadic else None
        max_args = None if variadic else len(fn.params)
        if len(args) < len(required) or (max_args is not None and len(args) > max_args):
            raise InvalidInput(
                f"{name} takes {_describe_params(fn)}; got {len(args)} argument(s) {list(args)!r}",
                field="function_args",
            )
        checked = []
        for i, value in enumerate(args):
            param = fn.params[i] if i < len(fn.params) else variadic
            assert param is not None
            checked.append(_check_param(name, param, value))
        if name == "clamp" and args[0] > args[1]:
            raise InvalidInput(
                f"clamp min {args[0]!r} is greater than max {args[1]!r}", field="function_args"
            )
        return self._then(_Call(name, tuple(checked)))

    def aggregate(
        self,
        op: str,
        param: Any = None,
        *,
        by: Iterable[str] | None = None,
        without: Iterable[str] | None = None,
    ) -> QueryBuilder:
        """Wrap the expression in an aggregation: ``aggregate("topk", 5, by=["job"])``."""
        if op not in AGGREGATIONS:
            raise InvalidInput(
                f"unknown aggregation {op!r}; supported: {', '.join(AGGREGATIONS)}",
                field="aggregation",
            )
        kind = AGGREGATIONS[op]
        if kind is None and param is not None:
            raise InvalidInput(
                f"aggregation {op} takes no parameter, got {param!r}", field="aggregation_param"
            )
        if kind is not None and param is None:
            raise InvalidInput(
                f"aggregation {op} needs a parameter ({'label name' if kind == 'label' else kind})",
                field="aggregation_param",
            )
        if kind == "k" and (
            isinstance(param, bool) or not isinstance(param, numbers.Integral) or param < 1
        ):
            raise InvalidInput(
                f"{op} needs an integer k >= 1, got {param!r}", field="aggregation_param"
            )
        if kind == "phi":
            format_number(param, what=f"φ of {op}")
            if not 0 <= param <= 1:
                raise InvalidInput(
                    f"φ of {op} must be between 0 and 1, got {param!r}", field="aggregation_param"
                )
        if kind == "label":
            validate_label_name(param, what=f"label of {op}")
        if by is not None and without is not None:
            raise InvalidInput("use either by or without, not both", field="group_by")
        grouping, labels = None, ()
        if by is not None:
            grouping, labels = "by", _grouping_labels(by, "by")
        elif without is not None:
            grouping, labels = "without", _grouping_labels(without, "without")
        return self._then(_Aggregate(op, param, grouping, labels))

    def _regroup(self, grouping: str, labels: tuple[str, ...]) -> QueryBuilder:
        last = self._steps[-1] if self._steps else None
        if isinstance(last, _Aggregate) and last.grouping is None:
            return self._make(
                self._node, self._steps[:-1] + (_Aggregate(last.op, last.param, grouping, labels),)
            )
        return self._then(_Aggregate("sum", None, grouping, labels))

    def group_by(self, *labels: str) -> QueryBuilder:
        """``by (labels)`` on the aggregation just added, or ``sum by (labels) (...)`` otherwise."""
        return self._regroup("by", _grouping_labels(labels, "by"))

    def without(self, *labels: str) -> QueryBuilder:
        """``without (labels)`` on the aggregation just added, else ``sum without (...)``."""
        return self._regroup("without", _grouping_labels(labels, "without"))

    def subquery(self, range: str | timedelta, step: str | timedelta | None = None) -> QueryBuilder:  # noqa: A002
        """Turn the instant-vector expression into a range vector: ``<expr>[range:step]``."""
        r = duration(range, what="subquery range")
        s = None if step is None else duration(step, what="subquery step")
        return self._then(_Subquery(r, s))

    # ---- binary operations

    def binary(
        self,
        op: str,
        other: QueryBuilder | int | float,
        *,
        on: Iterable[str] | None = None,
        ignoring: Iterable[str] | None = None,
        group_left: Iterable[str] | None = None,
        group_right: Iterable[str] | None = None,
        bool_modifier: bool = False,
    ) -> QueryBuilder:
        """``self op other`` with optional vector matching: ``a.binary("/", b, on=["instance"])``.

        ``group_left=[]`` renders a bare ``group_left``; ``bool_modifier=True`` renders
        ``> bool`` (comparisons only).
        """
        if op not in _PRECEDENCE:
            raise InvalidInput(
                f"unknown binary operator {op!r}; supported: {' '.join(BINARY_OPERATORS)}",
                field="op",
            )
        rhs = _operand(other)
        if on is not None and ignoring is not None:
            raise InvalidInput("use either on or ignoring, not both", field="on")
        if group_left is not None and group_right is not None:
            raise InvalidInput("use either group_left or group_right, not both", field="group_left")
        if bool_modifier and op not in _COMPARISONS:
            raise InvalidInput(f"the bool modifier only applies to comparisons, not {op!r}")
        matching, matching_labels = None, ()
        if on is not None:
            matching, matching_labels = "on", _grouping_labels(on, "on")
        elif ignoring is not None:
            matching, matching_labels = "ignoring", _grouping_labels(ignoring, "ignoring")
        group, include = None, ()
        if group_left is not None or group_right is not None:
            group = "left" if group_left is not None else "right"
            include = _grouping_labels(
                group_left if group_left is not None else group_right, f"group_{group}"
            )
            if matching is None:
                raise InvalidInput(
                    f"group_{group} needs on(...) or ignoring(...)", field="group_left"
                )
            if op in _SET_OPS:
                raise InvalidInput(f"group_{group} is not allowed with the set operator {op!r}")
            if matching == "on":
                both = sorted(set(include) & set(matching_labels))
                if both:
                    raise InvalidInput(
                        f"label {both[0]!r} must not be in both on(...) and group_{group}(...)"
                    )
        node = _Binary(op, self, rhs, matching, matching_labels, group, include, bool_modifier)
        return self._make(node)

    def __add__(self, other: Any) -> QueryBuilder:
        return self._dunder("+", other)

    def __sub__(self, other: Any) -> QueryBuilder:
        return self._dunder("-", other)

    def __mul__(self, other: Any) -> QueryBuilder:
        return self._dunder("*", other)

    def __truediv__(self, other: Any) -> QueryBuilder:
        return self._dunder("/", other)

    def __mod__(self, other: Any) -> QueryBuilder:
        return self._dunder("%", other)

    def __pow__(self, other: Any) -> QueryBuilder:
        return self._dunder("^", other)

    def __and__(self, other: Any) -> QueryBuilder:
        return self._dunder("and", other)

    def __or__(self, other: Any) -> QueryBuilder:
        return self._dunder("or", other)

    def __radd__(self, other: Any) -> QueryBuilder:
        return self._rdunder("+", other)

    def __rsub__(self, other: Any) -> QueryBuilder:
        return self._rdunder("-", other)

    def __rmul__(self, other: Any) -> QueryBuilder:
        return self._rdunder("*", other)

    def __rtruediv__(self, other: Any) -> QueryBuilder:
        return self._rdunder("/", other)

    def __rmod__(self, other: Any) -> QueryBuilder:
        return self._rdunder("%", other)

    def __rpow__(self, other: Any) -> QueryBuilder:
        return self._rdunder("^", other)

    def _dunder(self, op: str, other: Any) -> Any:
        if not isinstance(other, (QueryBuilder, numbers.Real)):
            return NotImplemented
        return self.binary(op, other)

    def _rdunder(self, op: str, other: Any) -> Any:
        if not isinstance(other, numbers.Real):
            return NotImplemented
        return QueryBuilder.number(other).binary(op, self)

    # ---- inspection

    @property
    def metric(self) -> str | None:
        return self._node.metric if isinstance(self._node, _Selector) else None

    @property
    def matchers(self) -> tuple[Matcher, ...]:
        return self._node.matchers if isinstance(self._node, _Selector) else ()

    @property
    def range(self) -> str | None:
        return self._node.range if isinstance(self._node, _Selector) else None

    @property
    def value_type(self) -> str:
        """``"scalar"``, ``"instant vector"`` or ``"range vector"`` (validates the query)."""
        return self._render().type

    # ---- rendering

    def render(self) -> str:
        """The PromQL text; raises ``InvalidInput`` if the query is not valid yet."""
        return self._render().text

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        try:
            return f"QueryBuilder({self.render()!r})"
        except InvalidInput as exc:
            return f"QueryBuilder(<invalid: {exc.message}>)"

    def _render(self) -> _Rendered:
        node = self._node
        if isinstance(node, _Selector):
            out = _render_selector(node)
        elif isinstance(node, _Number):
            text = format_number(node.value)
            out = _Rendered(text, SCALAR, 0 if text.startswith("-") else None)
        else:
            out = _render_binary(node)
        for index, step in enumerate(self._steps):
            direct = index == 0 and isinstance(node, _Selector)
            if isinstance(step, _Call):
                out = _render_call(step, out, direct)
            elif isinstance(step, _Aggregate):
                out = _render_aggregate(step, out)
            else:
                out = _render_subquery(step, out)
        return out

    # ---- structured form

    def to_dict(self) -> dict[str, Any]:
        """The :class:`PromQLSpec` body for this builder (only for the shapes it can describe)."""
        node = self._node
        if not isinstance(node, _Selector):
            raise InvalidInput(
                "this query cannot be described by a PromQLSpec: it is not based on a series "
                "selector"
            )
        steps = list(self._steps)
        function = aggregation = None
        outer: list[_Call] = []
        if steps and isinstance(steps[0], _Call):
            function = steps.pop(0)
        if steps and isinstance(steps[0], _Aggregate):
            aggregation = steps.pop(0)
        while steps and isinstance(steps[0], _Call):
            outer.append(steps.pop(0))  # type: ignore[arg-type]
        if steps:
            raise InvalidInput(
                "this query cannot be described by a PromQLSpec: it has more than one "
                "aggregation, a function between aggregations, or a subquery"
            )
        spec = PromQLSpec(
            metric=node.metric,
            labels=[LabelMatcherSpec(name=m.name, op=m.op, value=m.value) for m in node.matchers],
            range=node.range,
            offset=node.offset,
            at=node.at,
            function=function.name if function else None,
            function_args=list(function.args) if function else [],
            aggregation=aggregation.op if aggregation else None,
            aggregation_param=aggregation.param if aggregation else None,
            group_by=list(aggregation.labels)
            if aggregation and aggregation.grouping == "by"
            else None,
            without=list(aggregation.labels)
            if aggregation and aggregation.grouping == "without"
            else None,
            outer_functions=[FunctionCallSpec(name=c.name, args=list(c.args)) for c in outer],
        )
        return spec.model_dump(mode="json", exclude_defaults=True)


def _operand(other: Any) -> QueryBuilder:
    if isinstance(other, QueryBuilder):
        return other
    if isinstance(other, numbers.Real) and not isinstance(other, bool):
        return QueryBuilder.number(other)
    raise InvalidInput(
        f"a binary operand must be a QueryBuilder or a number, got {type(other).__name__}"
    )


def _article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def _render_selector(sel: _Selector) -> _Rendered:
    matchers = list(sel.matchers)
    metric = sel.metric
    if metric is not None and metric.lower() in _KEYWORDS:
        matchers.insert(0, Matcher("__name__", "=", metric))
        metric = None
    if metric is None:
        if not matchers:
            raise InvalidInput(
                "a series selector needs a metric name or at least one label matcher"
            )
        if all(m.matches_empty() for m in matchers):
            raise InvalidInput(
                "a selector without a metric name needs at least one matcher that does not "
                f"match the empty string; {{{', '.join(map(str, matchers))}}} matches every series"
            )
    text = metric or ""
    if matchers:
        text += "{" + ", ".join(str(m) for m in matchers) + "}"
    kind = VECTOR
    if sel.range is not None:
        text += f"[{sel.range}]"
        kind = MATRIX
    if sel.at is not None:
        at = f"{sel.at}()" if sel.at in ("start", "end") else format_number(sel.at)
        text += f" @ {at}"
    if sel.offset is not None:
        text += f" offset {sel.offset}"
    return _Rendered(text, kind, call_like=sel.at is None and sel.offset is None)


def _render_call(call: _Call, inner: _Rendered, direct: bool) -> _Rendered:
    fn = _FUNCTIONS[call.name]
    if inner.type != fn.arg:
        if fn.arg == MATRIX and direct:
            raise InvalidInput(f"{call.name} needs a range vector; call with_range(...)")
        if fn.arg == MATRIX:
            raise InvalidInput(
                f"{call.name} needs a range vector, but its argument is {_article(inner.type)}; "
                "call subquery(...) first"
            )
        hint = ""
        if inner.type == MATRIX:
            hint = "; apply a range function such as rate first" + (
                " or drop with_range(...)" if direct else ""
            )
        raise InvalidInput(
            f"{call.name} needs {_article(fn.arg)}, but its argument is "
            f"{_article(inner.type)}{hint}"
        )
    params = [_render_param(_param_at(fn, i), v) for i, v in enumerate(call.args)]
    args = params + [inner.text] if fn.inner_last else [inner.text] + params
    return _Rendered(f"{call.name}({', '.join(args)})", fn.returns, call_like=True)


def _param_at(fn: _FunctionDef, index: int) -> _Param:
    return fn.params[min(index, len(fn.params) - 1)]


def _render_aggregate(agg: _Aggregate, inner: _Rendered) -> _Rendered:
    if inner.type != VECTOR:
        hint = "; apply a range function such as rate first" if inner.type == MATRIX else ""
        raise InvalidInput(
            f"aggregation {agg.op} needs an instant vector, but its argument is "
            f"{_article(inner.type)}{hint}"
        )
    head = agg.op
    if agg.grouping is not None:
        head += f" {agg.grouping} ({', '.join(agg.labels)}) "
    args = [inner.text]
    if agg.param is not None:
        kind = AGGREGATIONS[agg.op]
        args.insert(0, quote(agg.param) if kind == "label" else format_number(agg.param))
    return _Rendered(f"{head}({', '.join(args)})", VECTOR, call_like=True)


def _render_subquery(sub: _Subquery, inner: _Rendered) -> _Rendered:
    if inner.type != VECTOR:
        raise InvalidInput(
            f"a subquery needs an instant vector, but its argument is {_article(inner.type)}"
        )
    text = inner.text if inner.call_like and inner.precedence is None else f"({inner.text})"
    return _Rendered(f"{text}[{sub.range}:{sub.step or ''}]", MATRIX)


def _render_binary(node: _Binary) -> _Rendered:
    lhs, rhs = node.lhs._render(), node.rhs._render()
    op = node.op
    for side, operand in (("left", lhs), ("right", rhs)):
        if operand.type == MATRIX:
            raise InvalidInput(
                f"binary operator {op!r} needs scalars or instant vectors, but the {side} operand "
                "is a range vector; apply a range function such as rate first"
            )
    if op in _SET_OPS and (lhs.type == SCALAR or rhs.type == SCALAR):
        raise InvalidInput(f"set operator {op!r} needs instant vectors on both sides, not a scalar")
    if op in _COMPARISONS and lhs.type == rhs.type == SCALAR and not node.return_bool:
        raise InvalidInput(f"comparison {op!r} between two scalars needs bool_modifier=True")
    if node.matching is not None and SCALAR in (lhs.type, rhs.type):
        raise InvalidInput(
            f"{node.matching}(...) vector matching needs instant vectors on both sides, "
            "not a scalar"
        )
    prec = _PRECEDENCE[op]
    left, right = lhs.text, rhs.text
    if lhs.precedence is not None and (
        lhs.precedence < prec or (lhs.precedence == prec and op == "^")
    ):
        left = f"({left})"
    if rhs.precedence is not None and (
        rhs.precedence < prec or (rhs.precedence == prec and op != "^")
    ):
        right = f"({right})"
    parts = [op]
    if node.return_bool:
        parts.append("bool")
    if node.matching is not None:
        parts.append(f"{node.matching} ({', '.join(node.matching_labels)})")
    if node.group is not None:
        parts.append(
            f"group_{node.group}" + (f" ({', '.join(node.include)})" if node.include else "")
        )
    kind = SCALAR if lhs.type == rhs.type == SCALAR else VECTOR
    return _Rendered(f"{left} {' '.join(parts)} {right}", kind, prec)


# --------------------------------------------------------------------------- the spec

_Arg = StrictInt | StrictFloat | StrictStr


class FunctionCallSpec(BaseModel):
    """``{"name": "histogram_quantile", "args": [0.9]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    args: list[_Arg] = Field(default_factory=list)


class PromQLSpec(BaseModel):
    """The structured description of a PromQL query (the ``query-builder`` endpoint body).

    Applied in this order: selector (``metric``, ``labels``, ``range``, ``offset``, ``at``),
    ``function`` with ``function_args``, the aggregation (``aggregation`` with
    ``aggregation_param``, grouped by ``group_by`` or ``without``; ``sum`` if only a grouping
    is given), then ``outer_functions`` (e.g. ``histogram_quantile`` around ``sum by (le)``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = None
    labels: list[LabelMatcherSpec] = Field(default_factory=list)
    range: str | None = None
    offset: str | None = None
    at: StrictInt | StrictFloat | Literal["start", "end"] | None = None
    function: str | None = None
    function_args: list[_Arg] = Field(default_factory=list)
    aggregation: str | None = None
    aggregation_param: _Arg | None = None
    group_by: list[str] | None = None
    without: list[str] | None = None
    outer_functions: list[FunctionCallSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_grouping(self) -> PromQLSpec:
        if self.group_by is not None and self.without is not None:
            raise ValueError("give either group_by or without, not both")
        if self.function is None and self.function_args:
            raise ValueError("function_args given without function")
        if self.aggregation_param is not None and self.aggregation is None:
            raise ValueError("aggregation_param given without aggregation")
        return self

    def build(self) -> QueryBuilder:
        """The :class:`QueryBuilder` this spec describes (raises ``InvalidInput`` if invalid)."""
        builder = QueryBuilder(self.metric)
        for m in self.labels:
            builder = builder.with_label(m.name, m.value, m.op)
        if self.range is not None:
            builder = builder.with_range(self.range)
        if self.offset is not None:
            builder = builder.offset(self.offset)
        if self.at is not None:
            builder = builder.at(self.at)
        if self.function is not None:
            builder = builder.with_function(self.function, *self.function_args)
        if self.aggregation is not None or self.group_by is not None or self.without is not None:
            builder = builder.aggregate(
                self.aggregation or "sum",
                self.aggregation_param,
                by=self.group_by,
                without=self.without,
            )
        for call in self.outer_functions:
            builder = builder.with_function(call.name, *call.args)
        builder.render()  # fail now, not when the caller first uses it
        return builder


# --------------------------------------------------------------------------- coarse steps
#
# A range query evaluates its expression at start, start+step, ...; an instant selector such as
# ``gauge{job="x"}`` then takes each series' latest sample no older than the server's lookback
# delta (``--query.lookback-delta``, 5m by default). With a step longer than that, a series
# sampled less often than the lookback (an hourly gauge written at :00:01) has no sample at most
# (or all) steps, and samples between steps are never read. ``last_over_time(sel[step])`` reads
# each step's latest sample in the whole step instead (Prometheus 2.x selects the closed
# interval [t-step, t], 3.x the left-open (t-step, t]). The functions below find the selectors
# of a PromQL string with a small lexer (no full parser: what they cannot read they leave as
# it is) and rewrite or describe them.

_TOKEN_RE = re.compile(
    r"""(?P<ws>\s+|\#[^\n]*)
      |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
      |(?P<dur>(?:\d+(?:ms|[smhdwy]))+(?![\w:.]))
      |(?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
      |(?P<ident>[a-zA-Z_:][\w:]*)
      |(?P<punct>=~|!~|==|!=|<=|>=|[-+*/%^<>=(){}\[\],:@])""",
    re.VERBOSE,
)
_AGGREGATORS = frozenset(
    "sum avg count min max group stddev stdvar topk bottomk count_values quantile limitk "
    "limit_ratio".split()
)
_LABEL_LIST_KEYWORDS = frozenset("by without on ignoring group_left group_right".split())
_BINARY_KEYWORDS = frozenset("and or unless bool atan2 inf nan".split())
_CLOSERS = {"(": ")", "{": "}", "[": "]"}


class _Unreadable(Exception):
    pass


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class SelectorUse:
    """One series selector in a query: ``text`` (name and matchers) at ``[start, end)``, its
    range (``[5m]``, in milliseconds) if any, and its ``offset``/``@`` modifiers, which end at
    ``modifiers_end``. ``in_subquery``: evaluated at a subquery's resolution, not the step."""

    text: str
    start: int
    end: int
    range_ms: int | None
    range_end: int
    modifiers: str
    modifiers_end: int
    in_subquery: bool

    @property
    def instant(self) -> bool:
        return self.range_ms is None and not self.in_subquery


def _tokens(query: str) -> list[_Token]:
    out, pos = [], 0
    while pos < len(query):
        m = _TOKEN_RE.match(query, pos)
        if m is None or m.end() == pos:
            raise _Unreadable(f"cannot read {query[pos : pos + 10]!r}")
        if m.lastgroup != "ws":
            out.append(_Token(m.lastgroup or "", m.group(), pos, m.end()))
        pos = m.end()
    return out


def _pairs(tokens: list[_Token]) -> dict[int, int]:
    """Index of each opening bracket -> index of its closing one."""
    stack: list[int] = []
    out: dict[int, int] = {}
    for i, tok in enumerate(tokens):
        if tok.kind != "punct":
            continue
        if tok.text in _CLOSERS:
            stack.append(i)
        elif tok.text in (")", "}", "]"):
            if not stack or _CLOSERS[tokens[stack[-1]].text] != tok.text:
                raise _Unreadable("unbalanced brackets")
            out[stack.pop()] = i
    if stack:
        raise _Unreadable("unbalanced brackets")
    return out


def find_selectors(query: str) -> list[SelectorUse] | None:
    """Every series selector of ``query`` in order, or None when the lexer cannot read it."""
    try:
        tokens = _tokens(query)
        pairs = _pairs(tokens)
        return _selectors(query, tokens, pairs)
    except _Unreadable:
        return None


def _selectors(query: str, t: list[_Token], pairs: dict[int, int]) -> list[SelectorUse]:
    n = len(t)

    def text(i: int) -> str | None:
        return t[i].text if i < n else None

    found: list[
        tuple[int, int, int | None, int, int, bool]
    ] = []  # start, end, range, range_end, mods_end, subq
    subqueries: list[tuple[int, int]] = []
    i = 0
    while i < n:
        tok = t[i]
        if tok.kind == "ident":
            low = tok.text.lower()
            if low in _LABEL_LIST_KEYWORDS:
                i = pairs[i + 1] + 1 if text(i + 1) == "(" else i + 1
                continue
            if low in _BINARY_KEYWORDS:
                i += 1
                continue
            if low == "offset":
                i = _skip_duration(t, i + 1)
                continue
            if text(i + 1) == "(" or (
                low in _AGGREGATORS and (text(i + 1) or "").lower() in ("by", "without")
            ):
                i += 1  # a function or an aggregation
                continue
            end = pairs[i + 1] + 1 if text(i + 1) == "{" else i + 1
        elif tok.text == "{":
            end = pairs[i] + 1
        else:
            if tok.text == "(" and text(pairs[i] + 1) == "[":
                subqueries.append((tok.start, t[pairs[i]].end))
            if tok.text == "[":  # a subquery's range: skip it
                i = pairs[i] + 1
                continue
            i += 1
            continue
        start, sel_end = tok.start, t[end - 1].end
        range_ms, range_end, subquery = None, sel_end, False
        j = end
        if text(j) == "[":
            inner = t[j + 1 : pairs[j]]
            if any(x.text == ":" for x in inner):
                subquery = True
            elif len(inner) == 1 and inner[0].kind == "dur":
                from aiops.timeutil import parse_promql_duration_ms as _ms

                range_ms = _ms(inner[0].text)
            else:
                raise _Unreadable("unexpected range")
            range_end = t[pairs[j]].end
            j = pairs[j] + 1
        mods_end = range_end
        while j < n and (
            text(j) == "@" or (t[j].kind == "ident" and t[j].text.lower() == "offset")
        ):
            if text(j) == "@":
                j += 1
                if j < n and t[j].kind == "ident" and text(j + 1) == "(":
                    j = pairs[j + 1] + 1
                else:
                    j += 2 if text(j) in ("-", "+") else 1
            else:
                j = _skip_duration(t, j + 1)
            mods_end = t[j - 1].end
        found.append((start, sel_end, range_ms, range_end, mods_end, subquery))
        i = j
    out = []
    for start, end, range_ms, range_end, mods_end, subquery in found:
        inside = subquery or any(lo < start and end <= hi for lo, hi in subqueries)
        out.append(
            SelectorUse(
                text=query[start:end],
                start=start,
                end=end,
                range_ms=range_ms,
                range_end=range_end,
                modifiers=query[range_end:mods_end],
                modifiers_end=mods_end,
                in_subquery=inside,
            )
        )
    return out


def _skip_duration(t: list[_Token], i: int) -> int:
    if i < len(t) and t[i].text in ("-", "+"):
        i += 1
    return i + 1


def seconds_duration(seconds: float) -> str:
    """``3600`` -> ``"1h"``, ``5400`` -> ``"1h30m"``, ``0.5`` -> ``"500ms"`` (PromQL durations)."""
    ms = round(seconds * 1000)
    if ms <= 0:
        raise InvalidInput(f"a duration must be positive, not {seconds!r}", field="duration")
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(parts)


def read_every_sample(query: str, step_seconds: float) -> str:
    """``query`` with each instant selector ``sel <modifiers>`` read as
    ``last_over_time(sel[step] <modifiers>)``: every step gets its series' latest sample of
    the whole step, however long the step and whatever the server's lookback delta. Range
    selectors and selectors inside subqueries are left alone, and so is a query the lexer
    cannot read (Prometheus then reports its error)."""
    found = find_selectors(query)
    if not found:
        return query
    window = seconds_duration(step_seconds)
    out = query
    for sel in reversed([s for s in found if s.instant]):
        wrapped = f"last_over_time({sel.text}[{window}]{sel.modifiers})"
        out = out[: sel.start] + wrapped + out[sel.modifiers_end :]
    return out


def query_for_step(query: str, step_seconds: float, lookback_seconds: float) -> str:
    """The query a detector runs at ``step_seconds`` against a server with the given lookback
    delta: ``query`` itself, or :func:`read_every_sample` when the step is longer."""
    return read_every_sample(query, step_seconds) if step_seconds > lookback_seconds else query


def presence_probe(query: str, window_seconds: float) -> str | None:
    """An instant query, evaluated at a window's end, that returns something iff a series of
    ``query``'s selectors has a sample in the window: ``present_over_time(sel[window]) or ...``.
    None when no selector is found."""
    found = find_selectors(query)
    if not found:
        return None
    window = seconds_duration(window_seconds)
    parts = dict.fromkeys(f"present_over_time({s.text}[{window}]{s.modifiers})" for s in found)
    return " or ".join(parts)


def sampling_notes(query: str, step_seconds: float, lookback_seconds: float) -> list[str]:
    """What an operator should know about how ``query`` reads samples at ``step_seconds``
    (empty when nothing is lost): a step over the lookback delta, ranges shorter than the step."""
    found = find_selectors(query) or []
    step, lookback = seconds_duration(step_seconds), seconds_duration(lookback_seconds)
    notes = []
    instant = [s.text for s in found if s.instant]
    if instant and step_seconds > lookback_seconds:
        notes.append(
            f"the step {step} exceeds the datasource's lookback delta {lookback}: a plain "
            "selector finds no sample at a step whose series was last sampled more than "
            f"{lookback} before it (an hourly series sampled off the step grid gets none at all), "
            "so the detector reads each step's latest sample instead: "
            f"last_over_time({instant[0]}[{step}])"
        )
    for s in found:
        if s.range_ms is not None and not s.in_subquery and s.range_ms < step_seconds * 1000:
            notes.append(
                f"{s.text}[{seconds_duration(s.range_ms / 1000)}] covers only part of each {step} "
                f"step: samples between its range and the previous step are not read"
            )
    return notes


def detector_sampling_notes(detector: Any, configs: Mapping[str, Any]) -> list[str]:
    """:func:`sampling_notes` for each Prometheus datasource feeding ``detector`` (a stored
    detector), with ``configs`` the configured datasources by name."""
    out = []
    for ds in getattr(detector, "datasources", None) or ():
        config = configs.get(ds.name)
        if config is not None and config.type == "prometheus":
            notes = sampling_notes(ds.query, ds.step_seconds, config.lookback_delta_seconds)
            out += [f"datasource {ds.name}: {note}" for note in notes]
    return out
