"""PromQL builder: rendering, immutability, errors, escaping, and the real Prometheus grammar."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiops.errors import InvalidInput
from aiops.promql import PromQLSpec, QueryBuilder, regex_escape_literal
from aiops.promql import (
    find_selectors,
    presence_probe,
    query_for_step,
    read_every_sample,
    sampling_notes,
)
from aiops.querylang import Matcher, format_duration, parse_duration, quote, unquote
from tests.support.gostrings import reference_unquote, skeleton

Q = QueryBuilder

# --------------------------------------------------------------------------- rendering

RENDER_CASES: list[tuple[str, Callable[[], QueryBuilder], str]] = [
    (
        "issue_example",
        lambda: (
            Q("http_requests_total")
            .with_label("status", "200")
            .with_function("rate")
            .with_range("5m")
            .group_by("instance")
        ),
        'sum by (instance) (rate(http_requests_total{status="200"}[5m]))',
    ),
    ("bare_metric", lambda: Q("up"), "up"),
    ("colon_metric", lambda: Q("job:errors:rate5m"), "job:errors:rate5m"),
    (
        "all_match_ops",
        lambda: (
            Q("up")
            .with_label("a", "1")
            .with_label_not("b", "2")
            .with_label_regex("c", "3|4")
            .with_label_not_regex("d", "5.*")
        ),
        'up{a="1", b!="2", c=~"3|4", d!~"5.*"}',
    ),
    ("op_parameter", lambda: Q("up").with_label("job", "api", op="!="), 'up{job!="api"}'),
    (
        "with_labels",
        lambda: Q("up").with_labels(job="api", env="prod"),
        'up{job="api", env="prod"}',
    ),
    ("no_metric", lambda: Q(None).with_label("a", "b"), '{a="b"}'),
    ("name_matcher", lambda: Q().with_label_regex("__name__", "http_.*"), '{__name__=~"http_.*"}'),
    ("keyword_metric", lambda: Q("sum").with_label("a", "b"), '{__name__="sum", a="b"}'),
    ("number_word_metric", lambda: Q("NaN"), '{__name__="NaN"}'),
    ("range", lambda: Q("x").with_range("1h30m"), "x[1h30m]"),
    ("range_timedelta", lambda: Q("x").with_range(timedelta(minutes=90)), "x[1h30m]"),
    ("range_units", lambda: Q("x").with_range("1y2w3d4h5m6s7ms"), "x[1y2w3d4h5m6s7ms]"),
    ("offset", lambda: Q("x").offset("5m"), "x offset 5m"),
    ("negative_offset", lambda: Q("x").with_range("5m").offset("-1h"), "x[5m] offset -1h"),
    ("zero_offset_dropped", lambda: Q("x").offset("0s"), "x"),
    ("at_timestamp", lambda: Q("x").at(1609746000), "x @ 1609746000"),
    ("at_start", lambda: Q("x").with_range("5m").at("start"), "x[5m] @ start()"),
    ("at_datetime", lambda: Q("x").at(datetime(2021, 1, 4, 7, 40, tzinfo=UTC)), "x @ 1609746000.0"),
    ("at_and_offset", lambda: Q("x").at("end").offset("5m"), "x @ end() offset 5m"),
    ("rate", lambda: Q("x").with_range("5m").with_function("rate"), "rate(x[5m])"),
    (
        "range_after_function",
        lambda: Q("x").with_function("increase").with_range("1h"),
        "increase(x[1h])",
    ),
    (
        "quantile_over_time",
        lambda: Q("x").with_range("5m").with_function("quantile_over_time", 0.95),
        "quantile_over_time(0.95, x[5m])",
    ),
    (
        "predict_linear",
        lambda: Q("disk_free").with_range("1h").with_function("predict_linear", 14400),
        "predict_linear(disk_free[1h], 14400)",
    ),
    (
        "holt_winters",
        lambda: Q("x").with_range("1h").with_function("holt_winters", 0.3, 0.7),
        "holt_winters(x[1h], 0.3, 0.7)",
    ),
    *[
        (
            f"range_fn_{fn}",
            (lambda fn=fn: Q("x").with_range("5m").with_function(fn)),
            f"{fn}(x[5m])",
        )
        for fn in (
            "irate delta idelta deriv changes resets avg_over_time min_over_time max_over_time "
            "sum_over_time count_over_time stddev_over_time stdvar_over_time last_over_time "
            "present_over_time absent_over_time"
        ).split()
    ],
    *[
        (f"instant_fn_{fn}", (lambda fn=fn: Q("x").with_function(fn)), f"{fn}(x)")
        for fn in (
            "abs ceil floor exp ln log2 log10 sqrt sgn timestamp absent sort sort_desc sin "
            "deg day_of_week hour"
        ).split()
    ],
    ("clamp", lambda: Q("x").with_function("clamp", -1, 1.5), "clamp(x, -1, 1.5)"),
    ("clamp_min", lambda: Q("x").with_function("clamp_min", 0), "clamp_min(x, 0)"),
    ("clamp_max", lambda: Q("x").with_function("clamp_max", 100), "clamp_max(x, 100)"),
    ("round", lambda: Q("x").with_function("round"), "round(x)"),
    ("round_to", lambda: Q("x").with_function("round", 0.5), "round(x, 0.5)"),
    (
        "histogram_quantile",
        lambda: (
            Q("http_request_duration_seconds_bucket")
            .with_function("rate")
            .with_range("5m")
            .group_by("le")
            .with_function("histogram_quantile", 0.99)
        ),
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "label_replace",
        lambda: Q("up").with_function("label_replace", "host", "$1", "instance", "(.*):.*"),
        'label_replace(up, "host", "$1", "instance", "(.*):.*")',
    ),
    (
        "label_join",
        lambda: Q("up").with_function("label_join", "id", "/", "job", "instance"),
        'label_join(up, "id", "/", "job", "instance")',
    ),
    ("scalar", lambda: Q("x").with_function("scalar"), "scalar(x)"),
    ("vector", lambda: Q.number(1).with_function("vector"), "vector(1)"),
    (
        "functions_compose_in_call_order",
        lambda: Q("x").with_range("5m").with_function("rate").with_function("abs"),
        "abs(rate(x[5m]))",
    ),
    ("sum", lambda: Q("x").aggregate("sum"), "sum(x)"),
    ("without", lambda: Q("x").without("pod"), "sum without (pod) (x)"),
    ("max_by", lambda: Q("x").aggregate("max").group_by("job"), "max by (job) (x)"),
    ("avg_by_kw", lambda: Q("x").aggregate("avg", by=["a", "b"]), "avg by (a, b) (x)"),
    ("topk", lambda: Q("x").aggregate("topk", 5, by=["job"]), "topk by (job) (5, x)"),
    ("bottomk", lambda: Q("x").aggregate("bottomk", 3), "bottomk(3, x)"),
    ("quantile", lambda: Q("x").aggregate("quantile", 0.9), "quantile(0.9, x)"),
    ("count_values", lambda: Q("x").aggregate("count_values", "v"), 'count_values("v", x)'),
    ("group", lambda: Q("x").aggregate("group", without=["a"]), "group without (a) (x)"),
    (
        "group_by_on_grouped_aggregation_wraps",
        lambda: Q("x").aggregate("max", by=["a"]).group_by("b"),
        "sum by (b) (max by (a) (x))",
    ),
    ("group_by_dedupes", lambda: Q("x").group_by("a", "b", "a"), "sum by (a, b) (x)"),
    ("empty_by", lambda: Q("x").group_by(), "sum by () (x)"),
    ("keyword_grouping_label", lambda: Q("x").group_by("by", "sum"), "sum by (by, sum) (x)"),
    (
        "subquery",
        lambda: (
            Q("x")
            .with_range("5m")
            .with_function("rate")
            .subquery("1h", "1m")
            .with_function("max_over_time")
        ),
        "max_over_time(rate(x[5m])[1h:1m])",
    ),
    ("subquery_of_binary", lambda: (Q("a") + Q("b")).subquery("1h"), "(a + b)[1h:]"),
    ("subquery_of_offset", lambda: Q("a").offset("5m").subquery("1h"), "(a offset 5m)[1h:]"),
    ("divide", lambda: Q("a") / Q("b"), "a / b"),
    ("scalar_rhs", lambda: Q("a") * 100, "a * 100"),
    ("scalar_lhs", lambda: 1 - Q("a"), "1 - a"),
    ("negative_scalar", lambda: Q("a") * -1, "a * (-1)"),
    ("float_scalar", lambda: Q("a") / 1e-05, "a / 1e-05"),
    ("left_assoc", lambda: Q("a") - Q("b") - Q("c"), "a - b - c"),
    ("right_group", lambda: Q("a") - (Q("b") - Q("c")), "a - (b - c)"),
    ("precedence_parens", lambda: (Q("a") + Q("b")) / Q("c"), "(a + b) / c"),
    ("precedence_no_parens", lambda: Q("a") + Q("b") / Q("c"), "a + b / c"),
    ("pow_right_assoc", lambda: Q("a") ** (Q("b") ** Q("c")), "a ^ b ^ c"),
    ("pow_left_group", lambda: (Q("a") ** Q("b")) ** Q("c"), "(a ^ b) ^ c"),
    ("mod", lambda: Q("a") % 2, "a % 2"),
    ("and", lambda: Q("a") & Q("b"), "a and b"),
    ("or", lambda: Q("a") | Q("b"), "a or b"),
    ("unless", lambda: Q("a").binary("unless", Q("b"), on=["job"]), "a unless on (job) b"),
    (
        "or_inside_and",
        lambda: (Q("a") | Q("b")) & Q("c"),
        "(a or b) and c",
    ),
    (
        "on",
        lambda: Q("a").binary("/", Q("b"), on=["instance"]),
        "a / on (instance) b",
    ),
    (
        "ignoring_group_left",
        lambda: Q("a").binary("*", Q("b"), ignoring=["code"], group_left=["team"]),
        "a * ignoring (code) group_left (team) b",
    ),
    (
        "bare_group_right",
        lambda: Q("a").binary("+", Q("b"), on=["x"], group_right=[]),
        "a + on (x) group_right b",
    ),
    ("compare_bool", lambda: Q("a").binary(">", 5, bool_modifier=True), "a > bool 5"),
    ("compare_filter", lambda: Q("a").binary("<=", Q("b")), "a <= b"),
    ("scalar_compare_bool", lambda: Q.number(1).binary("==", 2, bool_modifier=True), "1 == bool 2"),
    ("atan2", lambda: Q("a").binary("atan2", Q("b")), "a atan2 b"),
    (
        "function_of_binary",
        lambda: (Q("a") / Q("b")).with_function("abs").group_by("job"),
        "sum by (job) (abs(a / b))",
    ),
    (
        "error_ratio",
        lambda: (
            Q("http_requests_total")
            .with_label_regex("code", "5..")
            .with_range("5m")
            .with_function("rate")
            .group_by("job")
            / Q("http_requests_total").with_range("5m").with_function("rate").group_by("job")
        ),
        'sum by (job) (rate(http_requests_total{code=~"5.."}[5m])) / '
        "sum by (job) (rate(http_requests_total[5m]))",
    ),
    (
        "escaped_values",
        lambda: Q("x").with_label("a", 'say "hi"\\n\n\t').with_label("b", "é\x00\u2028"),
        'x{a="say \\"hi\\"\\\\n\\n\\t", b="é\\u0000\\u2028"}',
    ),
    (
        "literal_regex",
        lambda: Q("x").with_label_regex("path", regex_escape_literal("/api/v1.0/(x)")),
        'x{path=~"/api/v1\\\\.0/\\\\(x\\\\)"}',
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES]
)
def test_renders_expected_promql(build: Callable[[], QueryBuilder], expected: str) -> None:
    builder = build()
    assert str(builder) == expected
    assert builder.render() == expected


def test_builders_are_immutable_and_compare_by_value() -> None:
    base = Q("http_requests_total").with_label("job", "api")
    before = str(base)
    chained = base.with_label("code", "500").with_range("5m").with_function("rate").group_by("x")
    base.offset("1h")
    base.at(5)
    base.without("y")
    _ = base / chained
    assert str(base) == before
    assert chained != base
    assert chained == (
        Q("http_requests_total")
        .with_label("job", "api")
        .with_label("code", "500")
        .with_function("rate")
        .with_range("5m")
        .group_by("x")
    )
    assert len({chained, base, Q("http_requests_total").with_label("job", "api")}) == 2
    with pytest.raises(AttributeError):
        base._steps = ()  # type: ignore[misc]


def test_value_type_follows_prometheus_types() -> None:
    assert Q("x").value_type == "instant vector"
    assert Q("x").with_range("5m").value_type == "range vector"
    assert Q("x").with_function("scalar").value_type == "scalar"
    assert (Q.number(1) + 2).value_type == "scalar"
    assert Q("x").with_range("5m").with_function("rate").value_type == "instant vector"


def test_inspection_properties() -> None:
    b = Q("up").with_label("job", "api").with_range("5m")
    assert b.metric == "up"
    assert b.matchers == (Matcher("job", "=", "api"),)
    assert b.range == "5m"
    assert repr(b) == "QueryBuilder('up{job=\"api\"}[5m]')"
    assert "rate needs a range vector" in repr(Q("x").with_function("rate"))


# --------------------------------------------------------------------------- errors

ERROR_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("metric_with_dash", lambda: Q("http-requests"), "invalid metric name 'http-requests'"),
    ("metric_digit_first", lambda: Q("1up"), "invalid metric name '1up'"),
    ("metric_empty", lambda: Q(""), "invalid metric name ''"),
    ("metric_trailing_newline", lambda: Q("up\n"), "invalid metric name"),
    ("label_with_colon", lambda: Q("x").with_label("a:b", "1"), "invalid label name 'a:b'"),
    ("label_unicode", lambda: Q("x").with_label("é", "1"), "invalid label name 'é'"),
    ("reserved_label", lambda: Q("x").with_label("__meta_pod", "1"), "'__meta_pod' is reserved"),
    ("name_twice", lambda: Q("x").with_label("__name__", "y"), "would set it twice"),
    ("bad_op", lambda: Q("x").with_label("a", "1", op="=="), "invalid matcher operator '=='"),
    ("bad_regex", lambda: Q("x").with_label_regex("a", "(x"), "invalid regex for label 'a'"),
    ("regex_breaks_anchor", lambda: Q("x").with_label_regex("a", "a)|(b"), "invalid regex"),
    ("non_string_value", lambda: Q("x").with_label("a", 5), "expected a string value"),
    ("lone_surrogate", lambda: Q("x").with_label("a", "\ud800"), "lone surrogate U+D800"),
    ("range_no_unit", lambda: Q("x").with_range("5"), "invalid range '5'"),
    ("range_bad_unit", lambda: Q("x").with_range("5x"), "invalid range '5x'"),
    ("range_wrong_order", lambda: Q("x").with_range("1m1h"), "invalid range '1m1h'"),
    ("range_fraction", lambda: Q("x").with_range("1.5m"), "invalid range '1.5m'"),
    ("range_zero", lambda: Q("x").with_range("0s"), "range must be greater than zero"),
    ("range_negative", lambda: Q("x").with_range("-5m"), "range must not be negative"),
    ("range_overflow", lambda: Q("x").with_range("300y"), "out of range"),
    ("range_submillisecond", lambda: Q("x").with_range(timedelta(microseconds=5)), "millisecond"),
    ("range_int", lambda: Q("x").with_range(300), "must be a string like '5m'"),
    (
        "rate_without_range",
        lambda: str(Q("x").with_function("rate")),
        "rate needs a range vector; call with_range(...)",
    ),
    (
        "range_fn_on_instant_expression",
        lambda: str(Q("x").aggregate("sum").with_function("rate")),
        "call subquery(...) first",
    ),
    (
        "instant_fn_on_range",
        lambda: str(Q("x").with_range("5m").with_function("abs")),
        "abs needs an instant vector, but its argument is a range vector",
    ),
    (
        "aggregate_range",
        lambda: str(Q("x").with_range("5m").group_by("a")),
        "aggregation sum needs an instant vector",
    ),
    ("vector_of_vector", lambda: str(Q("x").with_function("vector")), "vector needs a scalar"),
    ("unknown_function", lambda: Q("x").with_function("rates"), "unknown function 'rates'"),
    (
        "prometheus3_function",
        lambda: Q("x").with_function("double_exponential_smoothing", 0.5, 0.5),
        "unknown function 'double_exponential_smoothing'",
    ),
    ("aggregation_as_function", lambda: Q("x").with_function("sum"), "sum is an aggregation"),
    ("too_few_args", lambda: Q("x").with_function("clamp", 1), "clamp takes parameters (min, max)"),
    ("too_many_args", lambda: Q("x").with_function("abs", 1), "abs takes no parameters"),
    ("phi_above_one", lambda: Q("x").with_function("histogram_quantile", 1.5), "between 0 and 1"),
    (
        "phi_negative",
        lambda: Q("x").with_range("1m").with_function("quantile_over_time", -0.1),
        "between 0 and 1",
    ),
    (
        "smoothing_one",
        lambda: Q("x").with_function("holt_winters", 1, 0.5),
        "strictly between 0 and 1",
    ),
    ("nan_arg", lambda: Q("x").with_function("clamp_min", float("nan")), "finite number"),
    ("inf_arg", lambda: Q("x").with_function("clamp_max", float("inf")), "finite number"),
    ("bool_arg", lambda: Q("x").with_function("round", True), "must be a number"),
    ("string_for_number", lambda: Q("x").with_function("round", "1"), "must be a number"),
    (
        "clamp_inverted",
        lambda: Q("x").with_function("clamp", 5, 1),
        "clamp min 5 is greater than max 1",
    ),
    (
        "label_replace_bad_label",
        lambda: Q("x").with_function("label_replace", "a-b", "$1", "src", "(.*)"),
        "invalid dst_label of label_replace 'a-b'",
    ),
    (
        "label_replace_bad_regex",
        lambda: Q("x").with_function("label_replace", "d", "$1", "s", "(.*"),
        "invalid regex of label_replace",
    ),
    ("unknown_aggregation", lambda: Q("x").aggregate("median"), "unknown aggregation 'median'"),
    ("topk_zero", lambda: Q("x").aggregate("topk", 0), "topk needs an integer k >= 1"),
    ("topk_float", lambda: Q("x").aggregate("topk", 1.5), "topk needs an integer k >= 1"),
    ("topk_missing", lambda: Q("x").aggregate("topk"), "aggregation topk needs a parameter"),
    ("sum_with_param", lambda: Q("x").aggregate("sum", 3), "aggregation sum takes no parameter"),
    ("quantile_phi", lambda: Q("x").aggregate("quantile", 2), "between 0 and 1"),
    (
        "count_values_label",
        lambda: Q("x").aggregate("count_values", "a b"),
        "invalid label of count_values",
    ),
    (
        "by_and_without",
        lambda: Q("x").aggregate("sum", by=["a"], without=["b"]),
        "either by or without",
    ),
    (
        "by_without_keyword",
        lambda: Q("x").group_by("without"),
        "label 'without' cannot be used in by",
    ),
    ("by_inf", lambda: Q("x").group_by("Inf"), "label 'Inf' cannot be used in by"),
    ("by_bad_label", lambda: Q("x").group_by("a.b"), "invalid by label 'a.b'"),
    ("empty_selector", lambda: str(Q()), "needs a metric name or at least one label matcher"),
    (
        "selector_matches_everything",
        lambda: str(Q().with_label_regex("a", ".*").with_label("b", "")),
        "needs at least one matcher that does not match the empty string",
    ),
    ("unknown_binary_op", lambda: Q("a").binary("//", Q("b")), "unknown binary operator '//'"),
    ("bad_operand", lambda: Q("a").binary("+", "b"), "must be a QueryBuilder or a number"),
    (
        "on_and_ignoring",
        lambda: Q("a").binary("+", Q("b"), on=["x"], ignoring=["y"]),
        "either on or ignoring",
    ),
    (
        "group_without_on",
        lambda: Q("a").binary("*", Q("b"), group_left=["x"]),
        "group_left needs on(...) or ignoring(...)",
    ),
    (
        "group_with_set_op",
        lambda: Q("a").binary("and", Q("b"), on=["x"], group_left=[]),
        "not allowed with the set operator 'and'",
    ),
    (
        "label_in_on_and_group",
        lambda: Q("a").binary("*", Q("b"), on=["x"], group_left=["x"]),
        "must not be in both on(...) and group_left(...)",
    ),
    (
        "bool_on_arithmetic",
        lambda: Q("a").binary("+", Q("b"), bool_modifier=True),
        "bool modifier only applies to comparisons",
    ),
    (
        "scalar_comparison",
        lambda: str(Q.number(1).binary(">", 2)),
        "between two scalars needs bool_modifier=True",
    ),
    ("set_op_scalar", lambda: str(Q("a") & 5), "set operator 'and' needs instant vectors"),
    (
        "on_with_scalar",
        lambda: str(Q("a").binary("+", 5, on=["x"])),
        "vector matching needs instant vectors",
    ),
    (
        "binary_range_operand",
        lambda: str(Q("a").with_range("5m") + Q("b")),
        "the left operand is a range vector",
    ),
    (
        "label_on_binary",
        lambda: (Q("a") + Q("b")).with_label("x", "y"),
        "with_label() applies to a series selector, but this builder is a binary expression",
    ),
    ("range_on_number", lambda: Q.number(1).with_range("5m"), "this builder is a number literal"),
    ("number_nan", lambda: Q.number(float("nan")), "finite number"),
    ("at_naive_datetime", lambda: Q("x").at(datetime(2024, 1, 1)), "timezone-aware"),
    ("at_word", lambda: Q("x").at("now"), "'start' or 'end'"),
    ("at_out_of_range", lambda: Q("x").at(1e20), "out of range"),
    (
        "subquery_of_range",
        lambda: str(Q("x").with_range("5m").subquery("1h")),
        "a subquery needs an instant vector",
    ),
    (
        "subquery_zero_step",
        lambda: Q("x").subquery("1h", "0s"),
        "subquery step must be greater than zero",
    ),
]


@pytest.mark.parametrize(
    ("action", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_invalid_input_is_rejected_with_a_message_naming_it(
    action: Callable[[], object], message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        action()
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_python_operators_refuse_unsupported_operands() -> None:
    with pytest.raises(TypeError):
        Q("a") + "b"  # type: ignore[operator]


# --------------------------------------------------------------------------- escaping

QUOTE_CASES = [
    ("", '""'),
    ("plain", '"plain"'),
    ('"', '"\\""'),
    ("\\", '"\\\\"'),
    ("\n\r\t", '"\\n\\r\\t"'),
    ("\a\b\f\v", '"\\a\\b\\f\\v"'),
    ("\x00\x1f\x7f", '"\\u0000\\u001f\\u007f"'),
    ("\x85\u00a0\u2028\u2029\ufeff", '"\\u0085\\u00a0\\u2028\\u2029\\ufeff"'),
    ("\U000e0001", '"\\U000e0001"'),
    ("{}[](),=~!|`'#", '"{}[](),=~!|`\'#"'),
    ("héllo 世界 😀", '"héllo 世界 😀"'),
    ('"} or vector(1) #', '"\\"} or vector(1) #"'),
]


@pytest.mark.parametrize(("value", "literal"), QUOTE_CASES)
def test_quote_renders_go_string_literals(value: str, literal: str) -> None:
    assert quote(value) == literal
    assert unquote(literal) == value
    assert reference_unquote(literal) == (value, len(literal))


def test_injection_attempt_stays_inside_the_label_value() -> None:
    evil = '"} or vector(1) or up{a="'
    query = str(Q("up").with_label("job", evil).with_range("5m").with_function("rate"))
    assert skeleton(query) == 'rate(up{job=""}[5m])'


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_renders_as_one_well_formed_string_that_round_trips(value: str) -> None:
    rendered = str(Matcher("label", "=", value))
    assert rendered.startswith('label="')
    decoded, end = reference_unquote(rendered[len("label=") :])
    assert decoded == value
    assert end == len(rendered) - len("label=")  # nothing after the closing quote
    assert unquote(rendered[len("label=") :]) == value
    literal = rendered[len("label=") :]
    assert "\n" not in literal and all(ch.isprintable() for ch in literal)


@settings(max_examples=150, deadline=None)
@given(st.text(), st.text())
def test_values_never_change_the_query_structure(label_value: str, replacement: str) -> None:
    query = str(
        Q("m")
        .with_label("a", label_value)
        .with_label_not("b", label_value)
        .with_function("label_replace", "dst", replacement, "src", "(.*)")
    )
    assert skeleton(query) == 'label_replace(m{a="", b!=""}, "", "", "", "")'


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_regex_escape_literal_matches_exactly_the_literal(value: str) -> None:
    pattern = regex_escape_literal(value)
    compiled = re2.compile(f"^(?:{pattern})$")
    assert compiled.search(value) is not None
    assert compiled.search(value + "x") is None
    if value:
        assert compiled.search(value[:-1]) is None
    assert str(Matcher("a", "=~", pattern))  # always a valid matcher


@given(st.integers(min_value=1, max_value=10**12))
def test_durations_format_and_parse_back(ms: int) -> None:
    text = format_duration(ms)
    assert parse_duration(text) == ms
    assert str(Q("x").with_range(text)) == f"x[{text}]"


# --------------------------------------------------------------------------- spec


def test_spec_builds_the_issue_example() -> None:
    body = {
        "metric": "http_requests_total",
        "labels": [{"name": "status", "op": "=", "value": "200"}],
        "function": "rate",
        "range": "5m",
        "group_by": ["instance"],
    }
    builder = Q.from_dict(body)
    assert str(builder) == 'sum by (instance) (rate(http_requests_total{status="200"}[5m]))'
    assert PromQLSpec.model_validate(body).build() == builder


def test_spec_with_every_field() -> None:
    body = {
        "metric": "http_request_duration_seconds_bucket",
        "labels": [{"name": "job", "op": "=~", "value": "api|web"}],
        "range": "5m",
        "offset": "1h",
        "at": "end",
        "function": "rate",
        "aggregation": "sum",
        "group_by": ["le"],
        "outer_functions": [{"name": "histogram_quantile", "args": [0.95]}],
    }
    assert str(Q.from_dict(body)) == (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(http_request_duration_seconds_bucket{job=~"api|web"}[5m] @ end() offset 1h)))'
    )


@pytest.mark.parametrize(
    "case",
    [
        c
        for c in RENDER_CASES
        if c[0]
        in {
            "issue_example",
            "all_match_ops",
            "no_metric",
            "offset",
            "at_timestamp",
            "quantile_over_time",
            "histogram_quantile",
            "label_replace",
            "topk",
            "count_values",
            "without",
            "round",
            "escaped_values",
            "functions_compose_in_call_order",
        }
    ],
    ids=lambda c: c[0],
)
def test_to_dict_round_trips(case: tuple[str, Callable[[], QueryBuilder], str]) -> None:
    builder = case[1]()
    body = builder.to_dict()
    json.dumps(body)
    assert Q.from_dict(json.loads(json.dumps(body))) == builder


def test_to_dict_refuses_shapes_the_spec_cannot_describe() -> None:
    with pytest.raises(InvalidInput, match="not based on a series selector"):
        (Q("a") / Q("b")).to_dict()
    with pytest.raises(InvalidInput, match="more than one aggregation"):
        Q("a").aggregate("sum").aggregate("max").to_dict()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"metric": "up", "unknown": 1}, ValidationError),
        ({"metric": "up", "labels": [{"name": "a", "op": "==", "value": "b"}]}, ValidationError),
        ({"metric": "up", "group_by": ["a"], "without": ["b"]}, ValidationError),
        ({"metric": "up", "function_args": [1]}, ValidationError),
        ({"metric": "up-1"}, InvalidInput),
        ({"metric": "up", "function": "rate"}, InvalidInput),
        ({"metric": "up", "range": "5 m"}, InvalidInput),
        ({"labels": [{"name": "a", "value": ""}]}, InvalidInput),
    ],
)
def test_spec_rejects_invalid_bodies(body: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        Q.from_dict(body)


# --------------------------------------------------------------------------- real grammar

NASTY_VALUES = [
    "".join(chr(c) for c in range(0x00, 0x80)),
    "".join(chr(c) for c in range(0x80, 0x100)),
    '\\"\\\\"\n}{',
    "\u2028\u2029\ufeff\ufffe\uffff\U0010ffff\U000e0001",
    "😀 世界 é ́ \u200f",
    '"} or vector(1) #',
    "`'",
]
TRICKY_NAMES = [
    "sum",
    "by",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "atan2",
    "offset",
    "without",
    "inf",
    "nan",
    "Inf",
    "start",
    "end",
    "and",
    "unless",
    "count_values",
]


def _grammar_sample() -> list[str]:
    exprs = [c[1]() for c in RENDER_CASES]
    exprs += [Q(name).with_label("a", "b") for name in TRICKY_NAMES]
    exprs += [Q(name).with_range("5m").with_function("rate") for name in TRICKY_NAMES]
    exprs += [Q("x").with_label(name, "v") for name in TRICKY_NAMES]
    grouping = [n for n in TRICKY_NAMES if n.lower() not in {"without", "inf", "nan"}]
    exprs.append(Q("x").group_by(*grouping))
    exprs.append(Q("a").binary("/", Q("b"), on=grouping, group_left=["z"]))
    exprs += [
        Q("x").with_label("a", v).with_label_regex("b", regex_escape_literal(v))
        for v in NASTY_VALUES
    ]
    exprs += [
        Q("x").with_function("label_replace", "d", v, "s", regex_escape_literal(v))
        for v in NASTY_VALUES
    ]
    return [str(e) for e in exprs]


def test_rendered_queries_parse_with_promtool(tmp_path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package 'prometheus'); CI installs it")
    exprs = _grammar_sample()
    lines = ["groups:", "- name: builders", "  rules:"]
    for i, expr in enumerate(exprs):
        lines += [f"  - record: rendered_{i}", f"    expr: {json.dumps(expr, ensure_ascii=False)}"]
    rules = tmp_path / "rules.yml"
    rules.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and f"SUCCESS: {len(exprs)} rules found" in output, (
        output + "\n" + "\n".join(f"{i}: {e}" for i, e in enumerate(exprs))
    )


# --------------------------------------------------------------------------- coarse steps


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("gauge", "last_over_time(gauge[1h])"),
        ('g{job="a",x=~"b|c"}', 'last_over_time(g{job="a",x=~"b|c"}[1h])'),
        ('{__name__="g"}', 'last_over_time({__name__="g"}[1h])'),
        ("sum by (job) (g)", "sum by (job) (last_over_time(g[1h]))"),
        ("sum(g) by (job)", "sum(last_over_time(g[1h])) by (job)"),
        ("g offset 5m", "last_over_time(g[1h] offset 5m)"),
        ("g @ end() offset -5m", "last_over_time(g[1h] @ end() offset -5m)"),
        (
            "g / ignoring(x) group_left(y) h",
            "last_over_time(g[1h]) / ignoring(x) group_left(y) last_over_time(h[1h])",
        ),
        (
            "g > bool 3 and on(i) h",
            "last_over_time(g[1h]) > bool 3 and on(i) last_over_time(h[1h])",
        ),
        ('topk(3, g{a="sum(x)"})', 'topk(3, last_over_time(g{a="sum(x)"}[1h]))'),
        ("rate(c[5m])", "rate(c[5m])"),  # a range selector reads its own range
        (
            "max_over_time((g)[1h:1m])",
            "max_over_time((g)[1h:1m])",
        ),  # inside a subquery: its resolution
        ("max_over_time(g[1h:1m])", "max_over_time(g[1h:1m])"),
        ("sum(", "sum("),  # unreadable: left as it is, Prometheus reports the error
    ],
)
def test_read_every_sample_wraps_instant_selectors_only(query, expected):
    assert read_every_sample(query, 3600) == expected


def test_query_for_step_rewrites_only_steps_longer_than_the_lookback():
    assert query_for_step("g", 300, 300) == "g"
    assert query_for_step("g", 60, 300) == "g"
    assert query_for_step("g", 301, 300) == "last_over_time(g[5m1s])"
    assert query_for_step("g", 86400, 300) == "last_over_time(g[1d])"


def test_selectors_know_ranges_modifiers_and_subqueries():
    (a, b, c) = find_selectors('rate(x{a="1"}[5m] offset 1h) + y @ 100 + max_over_time((z)[1h:])')
    assert (a.text, a.range_ms, a.modifiers.strip(), a.instant) == (
        'x{a="1"}',
        300_000,
        "offset 1h",
        False,
    )
    assert (b.text, b.range_ms, b.modifiers.strip(), b.instant) == ("y", None, "@ 100", True)
    assert (c.text, c.in_subquery, c.instant) == ("z", True, False)


def test_presence_probe_asks_each_selector_over_the_window():
    assert presence_probe("sum(rate(x[5m])) / y offset 1m", 7200) == (
        "present_over_time(x[2h]) or present_over_time(y[2h] offset 1m)"
    )
    assert presence_probe("vector(1)", 60) is None


def test_sampling_notes_name_the_lost_samples():
    assert sampling_notes("g", 60, 300) == []
    assert sampling_notes("rate(c[5m])", 300, 300) == []
    (note,) = sampling_notes("sum(g)", 3600, 300)
    assert (
        "step 1h exceeds the datasource's lookback delta 5m" in note
        and "last_over_time(g[1h])" in note
    )
    (note,) = sampling_notes("rate(c[5m])", 3600, 300)
    assert note.startswith("c[5m] covers only part of each 1h step")
