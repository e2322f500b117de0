"""Each duration parser says its unit in its name, and the old names are the same functions."""

from __future__ import annotations

import pytest

from aiops import querylang, store, timeutil
from aiops.errors import InvalidInput


def test_one_text_in_each_unit():
    assert timeutil.parse_seconds("1h30m") == 5400.0
    assert timeutil.parse_whole_seconds("1h30m") == 5400
    assert timeutil.parse_promql_duration_ms("1h30m") == 5_400_000
    assert timeutil.format_promql_duration(5_400_000) == "1h30m"


def test_whole_seconds_refuse_fractions_that_float_seconds_accept():
    assert timeutil.parse_seconds("1500ms") == 1.5
    with pytest.raises(InvalidInput):
        timeutil.parse_whole_seconds("1500ms")


def test_the_older_names_are_the_same_functions():
    assert timeutil.parse_duration is timeutil.parse_seconds
    assert timeutil.parse_time is timeutil.parse_unix_seconds
    assert timeutil.to_datetime is timeutil.datetime_from_seconds
    assert querylang.parse_duration is timeutil.parse_promql_duration_ms
    assert querylang.format_duration is timeutil.format_promql_duration
    assert store.parse_duration is timeutil.parse_whole_seconds
