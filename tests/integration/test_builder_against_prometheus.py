"""Hostile label values through the PromQL builder to the real Prometheus.

Whatever the value, the rendered query must parse, and a matcher built from it must select
exactly the series carrying that value: no value can change the query's structure.
"""

from __future__ import annotations

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiops.promql import QueryBuilder
from aiops.querylang import quote
from tests.support.prometheus import LOADED_HOSTILE

pytestmark = pytest.mark.prometheus

# Prometheus keeps label values as UTF-8 strings; hypothesis' text() never yields surrogates.
values = st.one_of(
    st.sampled_from(LOADED_HOSTILE),
    st.text(min_size=1, max_size=40),
    st.text(alphabet=st.sampled_from("\\\"'`{}()[],=~!#$\n\r\t\x00 "), min_size=1, max_size=20),
)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def instant(url: str, query: str, at: int) -> dict:
    response = httpx.get(url + "/api/v1/query", params={"query": query, "time": at}, timeout=10)
    body = response.json()
    assert response.status_code == 200, f"{query!r} was refused: {body}"
    return body["data"]


@SETTINGS
@given(value=values)
def test_a_matcher_selects_exactly_the_series_with_that_value(prometheus, value):
    at = prometheus.history.timestamp(10)
    query = str(QueryBuilder("aiops_hostile").with_label("v", value))
    result = instant(prometheus.url, query, at)["result"]
    expected = [value] if value in LOADED_HOSTILE else []
    assert [r["metric"]["v"] for r in result] == expected

    negated = str(QueryBuilder("aiops_hostile").with_label("v", value, op="!="))
    others = sorted(r["metric"]["v"] for r in instant(prometheus.url, negated, at)["result"])
    assert others == sorted(v for v in LOADED_HOSTILE if v != value)


@SETTINGS
@given(value=values)
def test_a_quoted_value_reaches_prometheus_unchanged(prometheus, value):
    # label_join's separator is a plain string literal: the label Prometheus builds from it is
    # exactly the value it parsed, so this checks the escaping round trip through its lexer.
    query = f'label_join(vector(1), "echo", {quote(value)}, "a", "b")'
    (sample,) = instant(prometheus.url, query, prometheus.history.timestamp(10))["result"]
    assert sample["metric"].get("echo", "") == value


@SETTINGS
@given(value=values)
def test_hostile_values_inside_a_full_query_keep_its_shape(prometheus, value):
    q = (
        QueryBuilder("aiops_test_requests_total")
        .with_label("job", value)
        .with_function("rate")
        .with_range("5m")
        .group_by("instance")
    )
    data = instant(prometheus.url, str(q), prometheus.history.timestamp(200))
    assert data["resultType"] == "vector"
    assert data["result"] == ([] if value != "test" else data["result"])
