"""LogQL builder: rendering, ordering rules, immutability, errors, escaping and the spec."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from aiops.errors import InvalidInput
from aiops.logql import LogQLBuilder, LogQLSpec
from aiops.querylang import Matcher, quote
from tests.support.gostrings import reference_unquote, skeleton

L = LogQLBuilder
APP = '{app="backend"}'


# --------------------------------------------------------------------------- rendering

RENDER_CASES: list[tuple[str, Callable[[], LogQLBuilder], str]] = [
    (
        "issue_example",
        lambda: L(APP).contains("error").json().rate("5m").by("level", "pod"),
        'sum by (level, pod) (rate({app="backend"} |= "error" | json [5m]))',
    ),
    ("selector_only", lambda: L(APP), APP),
    (
        "selector_whitespace",
        lambda: L(' { app = "backend" ,env=~`prod|stage` } '),
        '{app="backend", env=~"prod|stage"}',
    ),
    ("selector_escapes", lambda: L(r'{app="a\"b\\c\n"}'), r'{app="a\"b\\c\n"}'),
    (
        "from_labels",
        lambda: L.from_labels(app="backend", env="prod"),
        '{app="backend", env="prod"}',
    ),
    (
        "with_label_ops",
        lambda: (
            L().with_label("app", "x").with_label("env", "dev", "!=").with_label("ns", "a.*", "=~")
        ),
        '{app="x", env!="dev", ns=~"a.*"}',
    ),
    (
        "line_filters",
        lambda: L(APP).contains("a").not_contains("b").matches("c+").not_matches("d?"),
        '{app="backend"} |= "a" != "b" |~ "c+" !~ "d?"',
    ),
    (
        "pattern_filters",
        lambda: L(APP).pattern_filter("<_> error <_>").not_pattern_filter("<_> debug <_>"),
        '{app="backend"} |> "<_> error <_>" !> "<_> debug <_>"',
    ),
    (
        "json_params",
        lambda: L(APP).json("level", ua='request.headers["User-Agent"]'),
        '{app="backend"} | json level, ua="request.headers[\\"User-Agent\\"]"',
    ),
    ("logfmt", lambda: L(APP).logfmt(), '{app="backend"} | logfmt'),
    (
        "logfmt_flags",
        lambda: L(APP).logfmt("level", strict=True, keep_empty=True, msg="message"),
        '{app="backend"} | logfmt --strict --keep-empty level, msg="message"',
    ),
    (
        "pattern",
        lambda: L(APP).pattern("<ip> - <_> [<ts>] <status>"),
        '{app="backend"} | pattern "<ip> - <_> [<ts>] <status>"',
    ),
    (
        "regexp",
        lambda: L(APP).regexp(r"(?P<method>\w+) (?P<path>\S+)"),
        '{app="backend"} | regexp "(?P<method>\\\\w+) (?P<path>\\\\S+)"',
    ),
    ("unpack", lambda: L(APP).unpack(), '{app="backend"} | unpack'),
    (
        "string_label_filters",
        lambda: (
            L(APP)
            .json()
            .label_filter("level", "=", "error")
            .label_filter("path", "!~", "/health.*")
        ),
        '{app="backend"} | json | level="error" | path!~"/health.*"',
    ),
    (
        "number_label_filter",
        lambda: L(APP).logfmt().label_filter("status", ">=", 500).label_filter("ratio", "<", 0.5),
        '{app="backend"} | logfmt | status >= 500 | ratio < 0.5',
    ),
    (
        "number_equality",
        lambda: L(APP).logfmt().label_filter("status", "=", 200),
        '{app="backend"} | logfmt | status == 200',
    ),
    (
        "duration_label_filter",
        lambda: (
            L(APP).logfmt().label_filter("latency", ">", "250ms").label_filter("t", "<=", "1.5s")
        ),
        '{app="backend"} | logfmt | latency > 250ms | t <= 1.5s',
    ),
    (
        "timedelta_label_filter",
        lambda: L(APP).logfmt().label_filter("latency", "!=", timedelta(minutes=90)),
        '{app="backend"} | logfmt | latency != 1h30m',
    ),
    (
        "explicit_duration_kind",
        lambda: L(APP).logfmt().label_filter("latency", "!=", "5s", kind="duration"),
        '{app="backend"} | logfmt | latency != 5s',
    ),
    (
        "bytes_label_filter",
        lambda: L(APP).logfmt().label_filter("size", ">", "20MB").label_filter("s", "<", "1.5KiB"),
        '{app="backend"} | logfmt | size > 20MB | s < 1.5KiB',
    ),
    (
        "error_label_filter",
        lambda: L(APP).json().label_filter("__error__", "=", ""),
        '{app="backend"} | json | __error__=""',
    ),
    (
        "line_format",
        lambda: L(APP).logfmt().line_format('{{.level}} "{{.msg}}"\n'),
        '{app="backend"} | logfmt | line_format "{{.level}} \\"{{.msg}}\\"\\n"',
    ),
    (
        "label_format",
        lambda: L(APP).label_format(svc="{{.app}}", env="prod"),
        '{app="backend"} | label_format svc="{{.app}}", env="prod"',
    ),
    (
        "drop_keep",
        lambda: L(APP).json().drop("a", "b").keep("level"),
        '{app="backend"} | json | drop a, b | keep level',
    ),
    ("decolorize", lambda: L(APP).decolorize(), '{app="backend"} | decolorize'),
    (
        "count_over_time",
        lambda: L(APP).count_over_time("1h"),
        'count_over_time({app="backend"}[1h])',
    ),
    (
        "bytes_over_time",
        lambda: L(APP).bytes_over_time("5m"),
        'bytes_over_time({app="backend"}[5m])',
    ),
    ("bytes_rate", lambda: L(APP).bytes_rate("5m"), 'bytes_rate({app="backend"}[5m])'),
    (
        "absent_over_time",
        lambda: L(APP).absent_over_time("10m"),
        'absent_over_time({app="backend"}[10m])',
    ),
    ("rate_timedelta", lambda: L(APP).rate(timedelta(seconds=30)), 'rate({app="backend"}[30s])'),
    *[
        (
            f"unwrap_{fn}",
            (lambda fn=fn: getattr(L(APP).logfmt().unwrap("latency"), fn)("5m")),
            f'{fn}({{app="backend"}} | logfmt | unwrap latency [5m])',
        )
        for fn in (
            "avg_over_time min_over_time max_over_time sum_over_time stddev_over_time "
            "stdvar_over_time first_over_time last_over_time rate_counter rate absent_over_time"
        ).split()
    ],
    (
        "quantile_unwrap_duration",
        lambda: (
            L(APP)
            .json()
            .unwrap("latency", "duration")
            .label_filter("__error__", "=", "")
            .quantile_over_time(0.99, "5m")
            .by("route")
        ),
        'sum by (route) (quantile_over_time(0.99, {app="backend"} | json '
        '| unwrap duration(latency) | __error__="" [5m]))',
    ),
    (
        "unwrap_bytes",
        lambda: L(APP).logfmt().unwrap("size", "bytes").sum_over_time("1h"),
        'sum_over_time({app="backend"} | logfmt | unwrap bytes(size) [1h])',
    ),
    (
        "unwrap_duration_seconds",
        lambda: L(APP).logfmt().unwrap("t", "duration_seconds").avg_over_time("1m"),
        'avg_over_time({app="backend"} | logfmt | unwrap duration_seconds(t) [1m])',
    ),
    ("offset", lambda: L(APP).rate("5m").offset("1h"), 'rate({app="backend"}[5m] offset 1h)'),
    (
        "offset_before_rate",
        lambda: L(APP).offset("1h").contains("x").rate("5m"),
        'rate({app="backend"} |= "x" [5m] offset 1h)',
    ),
    (
        "without",
        lambda: L(APP).rate("5m").without("pod"),
        'sum without (pod) (rate({app="backend"}[5m]))',
    ),
    (
        "avg_by",
        lambda: L(APP).rate("5m").aggregate("avg").by("pod"),
        'avg by (pod) (rate({app="backend"}[5m]))',
    ),
    (
        "aggregate_kw_by",
        lambda: L(APP).rate("5m").aggregate("max", by=["pod"]),
        'max by (pod) (rate({app="backend"}[5m]))',
    ),
    (
        "topk_of_sum",
        lambda: L(APP).json().rate("5m").by("path").aggregate("topk", 10),
        'topk(10, sum by (path) (rate({app="backend"} | json [5m])))',
    ),
    (
        "bottomk_by",
        lambda: L(APP).rate("5m").aggregate("bottomk", 3, by=["pod"]),
        'bottomk by (pod) (3, rate({app="backend"}[5m]))',
    ),
    (
        "function_named_labels",
        lambda: (
            L('{rate="a", sum="b", bytes="c"}')
            .logfmt()
            .unwrap("duration")
            .sum_over_time("5m")
            .by("count")
        ),
        'sum by (count) (sum_over_time({rate="a", sum="b", bytes="c"} | logfmt '
        "| unwrap duration [5m]))",
    ),
    (
        "injection_in_filter",
        lambda: L(APP).contains('"} | drop app #'),
        '{app="backend"} |= "\\"} | drop app #"',
    ),
]


@pytest.mark.parametrize(
    ("build", "expected"), [c[1:] for c in RENDER_CASES], ids=[c[0] for c in RENDER_CASES]
)
def test_renders_expected_logql(build: Callable[[], LogQLBuilder], expected: str) -> None:
    builder = build()
    assert str(builder) == expected
    assert builder.render() == expected


def test_is_metric_query_turns_true_with_a_range_function() -> None:
    log = L(APP).contains("error").json()
    assert not log.is_metric_query
    assert log.rate("5m").is_metric_query
    assert log.rate("5m").by("level").is_metric_query


def test_builders_are_immutable_and_compare_by_value() -> None:
    base = L(APP).contains("error")
    before = str(base)
    chained = base.json().label_filter("level", "=", "error").rate("5m").by("pod")
    base.logfmt()
    base.with_label("env", "prod")
    base.offset("1h")
    assert str(base) == before
    assert base != chained
    assert chained == L.from_labels(app="backend").contains("error").json().label_filter(
        "level", "=", "error"
    ).rate("5m").by("pod")
    assert len({base, chained, L(APP).contains("error")}) == 2
    with pytest.raises(AttributeError):
        base._stages = ()  # type: ignore[misc]


def test_repr_shows_the_query_or_the_problem() -> None:
    assert repr(L(APP)) == "LogQLBuilder('{app=\"backend\"}')"
    assert "unwrap(...) needs" in repr(L(APP).logfmt().unwrap("x"))


# --------------------------------------------------------------------------- errors

ERROR_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("selector_no_braces", lambda: L('app="x"'), "expected '{' at position 0"),
    ("selector_unquoted", lambda: L("{app=x}"), "expected a quoted value for label 'app'"),
    ("selector_with_pipeline", lambda: L('{app="x"} |= "y"'), "unexpected text after '}'"),
    ("selector_trailing_comma", lambda: L('{app="x",}'), "expected a label name"),
    ("selector_empty", lambda: L("{}"), "needs at least one matcher"),
    ("selector_extra_brace", lambda: L('{app="x"}}'), "unexpected text after '}'"),
    ("selector_bad_label", lambda: L('{1app="x"}'), "expected a label name"),
    ("selector_bad_op", lambda: L('{app=="x"}'), "expected a quoted value"),
    ("selector_raw_newline", lambda: L('{app="a\nb"}'), "unterminated string"),
    ("selector_unterminated", lambda: L('{app="x}'), "unterminated string"),
    ("selector_bad_escape", lambda: L(r'{app="\q"}'), "unknown escape sequence \\q"),
    ("selector_single_quotes", lambda: L("{app='x'}"), "expected a quoted value"),
    ("selector_bad_regex", lambda: L('{app=~"(x"}'), "invalid regex for label 'app'"),
    ("selector_keyword_label", lambda: L('{json="x"}'), "label name 'json' is a LogQL keyword"),
    ("selector_not_string", lambda: L(5), "selector must be a string"),
    ("keyword_label_case", lambda: L().with_label("By", "x"), "'By' is a LogQL keyword"),
    ("no_matchers", lambda: str(L()), "needs at least one label matcher"),
    ("only_negative_matchers", lambda: str(L('{app!="x"}')), "needs at least one = or =~ matcher"),
    ("empty_regex_matcher", lambda: str(L('{app=~".*"}')), "does not match the empty string"),
    (
        "by_on_log_query",
        lambda: L(APP).by("level"),
        "by() needs a metric query, but this is a log query",
    ),
    ("without_on_log_query", lambda: L(APP).without("level"), "without() needs a metric query"),
    ("aggregate_on_log_query", lambda: L(APP).aggregate("sum"), "aggregate() needs a metric query"),
    ("stage_after_range", lambda: L(APP).rate("5m").json(), "json() cannot follow rate(...)"),
    (
        "filter_after_range",
        lambda: L(APP).rate("5m").contains("x"),
        "the range function closes the log pipeline",
    ),
    (
        "parser_after_unwrap",
        lambda: L(APP).logfmt().unwrap("x").json(),
        "json() cannot follow unwrap(...)",
    ),
    (
        "line_filter_after_unwrap",
        lambda: L(APP).logfmt().unwrap("x").contains("y"),
        "only label filters may follow it",
    ),
    (
        "unwrap_twice",
        lambda: L(APP).logfmt().unwrap("x").unwrap("y"),
        "unwrap() can be used only once",
    ),
    (
        "unwrap_without_range_fn",
        lambda: str(L(APP).logfmt().unwrap("x")),
        "unwrap(...) needs an unwrap range function",
    ),
    (
        "unwrap_with_count",
        lambda: L(APP).logfmt().unwrap("x").count_over_time("5m"),
        "count_over_time counts log lines or bytes and cannot be used with unwrap",
    ),
    (
        "unwrap_with_bytes_rate",
        lambda: L(APP).logfmt().unwrap("x").bytes_rate("5m"),
        "cannot be used with unwrap",
    ),
    (
        "sum_over_time_needs_unwrap",
        lambda: L(APP).sum_over_time("5m"),
        "sum_over_time needs an unwrapped value; call unwrap(label) first",
    ),
    (
        "bad_conversion",
        lambda: L(APP).unwrap("x", "seconds"),
        "invalid unwrap conversion 'seconds'",
    ),
    ("unwrap_keyword_label", lambda: L(APP).unwrap("unwrap"), "is a LogQL keyword"),
    (
        "two_range_functions",
        lambda: L(APP).rate("5m").range_function("count_over_time", "5m"),
        "already has the range function rate",
    ),
    (
        "unknown_range_function",
        lambda: L(APP).range_function("avg", "5m"),
        "unknown range function 'avg'",
    ),
    (
        "quantile_phi",
        lambda: L(APP).logfmt().unwrap("x").quantile_over_time(1.5, "5m"),
        "between 0 and 1",
    ),
    (
        "quantile_missing_phi",
        lambda: L(APP).logfmt().unwrap("x").range_function("quantile_over_time", "5m"),
        "needs φ",
    ),
    ("param_on_rate", lambda: L(APP).range_function("rate", "5m", 0.5), "rate takes no parameter"),
    ("range_zero", lambda: L(APP).rate("0s"), "range must be greater than zero"),
    ("range_go_style", lambda: L(APP).rate("1.5m"), "invalid range '1.5m'"),
    (
        "offset_without_range_fn",
        lambda: str(L(APP).offset("1h")),
        "offset(...) needs a range function",
    ),
    ("negative_offset", lambda: L(APP).offset("-1h"), "offset must not be negative"),
    (
        "unknown_aggregation",
        lambda: L(APP).rate("5m").aggregate("median"),
        "unknown aggregation 'median'",
    ),
    (
        "group_aggregation",
        lambda: L(APP).rate("5m").aggregate("group"),
        "unknown aggregation 'group'",
    ),
    ("topk_zero", lambda: L(APP).rate("5m").aggregate("topk", 0), "topk needs an integer k >= 1"),
    (
        "sum_param",
        lambda: L(APP).rate("5m").aggregate("sum", 2),
        "aggregation sum takes no parameter",
    ),
    ("by_keyword", lambda: L(APP).rate("5m").by("without"), "'without' is a LogQL keyword"),
    (
        "by_and_without",
        lambda: L(APP).rate("5m").aggregate("sum", by=["a"], without=["b"]),
        "either by or without",
    ),
    (
        "bad_line_filter_op",
        lambda: L(APP).line_filter("|", "x"),
        "invalid line filter operator '|'",
    ),
    ("bad_line_regex", lambda: L(APP).matches("(x"), "invalid line filter regex '(x'"),
    ("surrogate_in_filter", lambda: L(APP).contains("\udfff"), "lone surrogate"),
    (
        "pattern_without_capture",
        lambda: L(APP).pattern("<_> - <_>"),
        "needs at least one named capture",
    ),
    ("pattern_consecutive", lambda: L(APP).pattern("<a><b>"), "two captures in a row"),
    ("pattern_duplicate", lambda: L(APP).pattern("<a> <a>"), "captures 'a' more than once"),
    ("regexp_without_group", lambda: L(APP).regexp("(a)"), "needs at least one named group"),
    ("regexp_invalid", lambda: L(APP).regexp("(?P<a>"), "invalid regexp parser"),
    ("regexp_group_keyword", lambda: L(APP).regexp("(?P<json>a)"), "'json' is a LogQL keyword"),
    ("json_keyword_label", lambda: L(APP).json("logfmt"), "'logfmt' is a LogQL keyword"),
    ("json_bad_label", lambda: L(APP).json(**{"a-b": "x"}), "invalid extracted label 'a-b'"),
    ("json_duplicate_label", lambda: L(APP).json("a", a="x"), "extracted labels must be unique"),
    (
        "label_filter_bad_op",
        lambda: L(APP).label_filter("a", "~", "x"),
        "invalid label filter operator '~'",
    ),
    (
        "label_filter_regex_on_number",
        lambda: L(APP).label_filter("a", "=~", 5),
        "invalid number label filter operator '=~'",
    ),
    (
        "label_filter_not_a_unit",
        lambda: L(APP).label_filter("a", ">", "fast"),
        "neither a duration",
    ),
    (
        "label_filter_lowercase_bytes",
        lambda: L(APP).label_filter("a", ">", "10mb"),
        "neither a duration",
    ),
    ("label_filter_nan", lambda: L(APP).label_filter("a", ">", float("nan")), "finite number"),
    ("label_filter_bool", lambda: L(APP).label_filter("a", ">", True), "needs a number"),
    (
        "label_filter_kind_mismatch",
        lambda: L(APP).label_filter("a", ">", "20MB", kind="duration"),
        "duration label filter on 'a' needs a duration",
    ),
    (
        "label_filter_bad_kind",
        lambda: L(APP).label_filter("a", ">", 1, kind="int"),
        "invalid label filter kind 'int'",
    ),
    (
        "label_filter_bad_regex",
        lambda: L(APP).label_filter("a", "=~", "["),
        "invalid regex for label 'a'",
    ),
    ("drop_nothing", lambda: L(APP).drop(), "drop needs at least one label"),
    ("keep_keyword", lambda: L(APP).keep("keep"), "is a LogQL keyword"),
    ("label_format_empty", lambda: L(APP).label_format(), "needs at least one label=template"),
    ("line_format_not_str", lambda: L(APP).line_format(3), "must be a string"),
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


# --------------------------------------------------------------------------- escaping


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.text())
def test_values_never_change_the_query_structure(label: str, needle: str, template: str) -> None:
    query = str(
        L.from_labels(app="x")
        .with_label("env", label)
        .contains(needle)
        .json(field=needle)
        .label_filter("level", "!=", label)
        .line_format(template)
        .rate("5m")
        .by("level")
    )
    assert skeleton(query) == (
        'sum by (level) (rate({app="", env=""} |= "" | json field="" | level!="" '
        '| line_format "" [5m]))'
    )


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_selector_text_round_trips_any_value(value: str) -> None:
    builder = L('{job="x", app=' + quote(value) + "}")
    assert builder.matchers == (Matcher("job", "=", "x"), Matcher("app", "=", value))
    prefix = '{job="x", app='
    decoded, end = reference_unquote(str(builder)[len(prefix) :])
    assert decoded == value and end == len(str(builder)) - len(prefix) - 1


@settings(max_examples=100, deadline=None)
@given(st.text().filter(lambda v: "`" not in v))
def test_raw_backtick_selector_values_are_taken_literally(value: str) -> None:
    assert L('{job="x", app=`' + value + "`}").matchers[1] == Matcher("app", "=", value)


# --------------------------------------------------------------------------- spec


def test_spec_builds_the_issue_example() -> None:
    body = {
        "selector": '{app="backend"}',
        "pipeline": [{"type": "line_filter", "op": "|=", "value": "error"}, {"type": "json"}],
        "range_function": "rate",
        "range": "5m",
        "by": ["level", "pod"],
    }
    assert (
        str(L.from_dict(body))
        == 'sum by (level, pod) (rate({app="backend"} |= "error" | json [5m]))'
    )
    assert LogQLSpec.model_validate(body).build() == L.from_dict(body)


@pytest.mark.parametrize(
    "case",
    [c for c in RENDER_CASES if not c[0].startswith("selector_")],
    ids=lambda c: c[0],
)
def test_to_dict_round_trips(case: tuple[str, Callable[[], LogQLBuilder], str]) -> None:
    builder = case[1]()
    if len(builder._aggregations) > 1:
        with pytest.raises(InvalidInput, match="more than one aggregation"):
            builder.to_dict()
        return
    body = json.loads(json.dumps(builder.to_dict()))
    assert L.from_dict(body) == builder
    assert str(L.from_dict(body)) == case[2]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({}, ValidationError),
        ({"selector": APP, "extra": 1}, ValidationError),
        ({"selector": APP, "pipeline": [{"type": "grep", "value": "x"}]}, ValidationError),
        ({"selector": APP, "range_function": "rate"}, ValidationError),
        ({"selector": APP, "by": ["a"]}, ValidationError),
        (
            {
                "selector": APP,
                "range_function": "rate",
                "range": "5m",
                "by": ["a"],
                "without": ["b"],
            },
            ValidationError,
        ),
        ({"selector": 'app="x"'}, InvalidInput),
        ({"selector": APP, "range_function": "sum_over_time", "range": "5m"}, InvalidInput),
        ({"labels": [{"name": "app", "op": "!=", "value": "x"}]}, InvalidInput),
        ({"selector": APP, "pipeline": [{"type": "pattern", "pattern": "<_>"}]}, InvalidInput),
    ],
)
def test_spec_rejects_invalid_bodies(body: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        L.from_dict(body)
