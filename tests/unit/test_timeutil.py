"""Times from users: relative times stay within 1970-2200, conversions never overflow into a 500."""

from __future__ import annotations

import pytest

from aiops.errors import InvalidInput
from aiops.timeutil import parse_time, to_datetime

NOW = 1_767_225_600.0  # 2026-01-01


def test_relative_times_are_resolved_against_now():
    assert parse_time("now-1h", now=NOW) == NOW - 3600
    assert parse_time("-15m", now=NOW) == NOW - 900
    assert parse_time("now-0s", now=NOW) == NOW


@pytest.mark.parametrize("text", ["now-10000000000000000000s", "now+1000000y", "-100000y"])
def test_relative_times_outside_1970_2200_are_invalid_input(text):
    with pytest.raises(InvalidInput, match="outside 1970-2200"):
        parse_time(text, field="since", now=NOW)


@pytest.mark.parametrize("seconds", [-9.2e18, 9.2e18, float("inf")])
def test_to_datetime_of_an_impossible_instant_is_invalid_input(seconds):
    with pytest.raises(InvalidInput, match="outside the range of dates"):
        to_datetime(seconds)
