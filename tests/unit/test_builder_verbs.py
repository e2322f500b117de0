"""PromQL and LogQL builders speak the same verbs for the same ideas: labels, functions,
ranges and grouping."""

from __future__ import annotations

import pytest

from aiops.errors import InvalidInput
from aiops.logql import LogQLBuilder
from aiops.promql import QueryBuilder


def test_the_same_calls_build_a_grouped_rate_in_both_languages():
    prom = QueryBuilder("http_requests_total").with_labels(app="api")
    logs = LogQLBuilder().with_labels(app="api")
    for b in (prom, logs):
        assert b.with_function("rate").with_range("5m").group_by("pod") == (
            b.with_range("5m").with_function("rate").group_by("pod")
        )
    assert str(prom.with_function("rate").with_range("5m").group_by("pod")) == (
        'sum by (pod) (rate(http_requests_total{app="api"}[5m]))'
    )
    assert str(logs.with_function("rate").with_range("5m").group_by("pod")) == (
        'sum by (pod) (rate({app="api"}[5m]))'
    )


def test_logql_shortcuts_and_the_older_by_still_render_the_same():
    base = LogQLBuilder('{app="api"}').contains("error")
    assert base.rate("5m").by("pod") == base.with_function("rate").with_range("5m").group_by("pod")
    unwrapped = base.logfmt().unwrap("latency")
    assert str(unwrapped.with_function("quantile_over_time", 0.99).with_range("1m")) == str(
        unwrapped.quantile_over_time(0.99, "1m")
    )


def test_logql_label_matcher_verbs_match_promql():
    q = LogQLBuilder().with_label("app", "api").with_label_not("env", "dev")
    q = q.with_label_regex("pod", "web-.*").with_label_not_regex("ns", "kube-.*")
    assert str(q) == '{app="api", env!="dev", pod=~"web-.*", ns!~"kube-.*"}'


def test_a_logql_range_without_a_function_or_a_function_without_a_range_is_refused():
    with pytest.raises(InvalidInput, match="needs a range function"):
        str(LogQLBuilder('{app="api"}').with_range("5m"))
    with pytest.raises(InvalidInput, match="needs a range"):
        str(LogQLBuilder('{app="api"}').with_function("rate"))
    with pytest.raises(InvalidInput, match="already has the range function"):
        LogQLBuilder('{app="api"}').with_function("rate").with_function("count_over_time")
    assert LogQLBuilder('{app="api"}').with_range("5m").with_range(None) == LogQLBuilder(
        '{app="api"}'
    )
