"""Times from users: relative times stay within 1970-2200, conversions never overflow into a 500."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest

from aiops.errors import InvalidInput
from aiops.timeutil import (
    datetime_from_seconds,
    parse_time,
    to_datetime,
    to_unix_seconds,
    utc_datetime,
)

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


PLUS_2H = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1),  # naive means UTC, not local time
        datetime(2026, 1, 1, 2, tzinfo=PLUS_2H),
        pd.Timestamp("2026-01-01T00:00:00Z"),
    ],
)
def test_to_unix_seconds_of_one_instant_in_every_form(value):
    assert to_unix_seconds(value) == NOW
    assert to_unix_seconds(value) == parse_time(value)


def test_to_unix_seconds_is_the_inverse_of_datetime_from_seconds():
    assert to_unix_seconds(datetime_from_seconds(NOW + 0.25)) == NOW + 0.25


@pytest.mark.parametrize(
    "value", [datetime(2026, 1, 1), datetime(2026, 1, 1, 2, tzinfo=PLUS_2H)], ids=["naive", "+2h"]
)
def test_utc_datetime_is_the_same_instant_in_utc(value):
    result = utc_datetime(value)
    assert result == datetime(2026, 1, 1, tzinfo=UTC)
    assert result.tzinfo is UTC
    assert result.hour == 0


def test_utc_datetime_keeps_a_utc_datetime():
    value = datetime(2026, 1, 1, 12, 30, 0, 5, tzinfo=UTC)
    assert utc_datetime(value) == value
    assert utc_datetime(value).tzinfo is UTC
