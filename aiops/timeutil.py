"""Parsing of times and durations from users, config files and datasources.

Times become float Unix seconds (UTC); durations become float seconds. Anything that cannot be
read is an :class:`~aiops.errors.InvalidInput` naming the field and the value.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from aiops.errors import InvalidInput

__all__ = ["parse_time", "parse_duration", "to_datetime"]

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 365 * 86400.0,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_RELATIVE = re.compile(r"^now\s*([+-])\s*(.+)$")

# Unix seconds between 1970 and 2200: anything else given as a number is a mistake
# (or nanoseconds/milliseconds, which we detect below).
_MAX_SECONDS = 7_258_118_400.0


def parse_duration(value: Any, *, field: str = "duration", allow_zero: bool = False) -> float:
    """``"5m"``, ``"1h30m"``, ``"500ms"``, ``90``, ``"90"``, ``timedelta`` -> seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise InvalidInput(f"{field} must be a duration, not a boolean", field=field)
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for m in _DURATION.finditer(text):
                if m.start() != pos:
                    break
                seconds += float(m.group(1)) * _UNITS[m.group(2)]
                pos = m.end()
            if pos != len(text) or not text:
                raise InvalidInput(
                    f"{field} {value!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d, or seconds)",
                    field=field,
                ) from None
    else:
        raise InvalidInput(f"{field} must be a duration, got {type(value).__name__}", field=field)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidInput(f"{field} must be a positive duration, got {value!r}", field=field)
    return seconds


def parse_time(value: Any, *, field: str = "time", now: float | None = None) -> float:
    """A point in time as Unix seconds.

    Accepts Unix seconds (int/float/str), milliseconds or nanoseconds (detected by size),
    RFC 3339 / ISO 8601 strings (naive means UTC), ``datetime``/``pandas.Timestamp``,
    ``"now"``, ``"now-1h"`` and ``"-1h"`` (relative to ``now``).
    """
    current = time.time() if now is None else now
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{field} is missing or not a time", field=field)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return dt.timestamp()
    if isinstance(value, int | float):
        return _from_number(float(value), field)
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a time, got {type(value).__name__}", field=field)
    text = value.strip()
    if text == "now":
        return current
    rel = _RELATIVE.match(text)
    if rel or text.startswith("-"):
        sign, amount = (rel.group(1), rel.group(2)) if rel else ("-", text[1:])
        delta = parse_duration(amount, field=field, allow_zero=True)  # now-0s is now
        result = current - delta if sign == "-" else current + delta
        if not 0 <= result <= _MAX_SECONDS:
            raise InvalidInput(f"{field} {value!r} is outside 1970-2200", field=field)
        return result
    try:
        return _from_number(float(text), field)
    except ValueError:
        pass
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise InvalidInput(
            f"{field} {value!r} is not a time (use RFC 3339, Unix seconds, 'now' or 'now-1h')",
            field=field,
        ) from None
    if ts is pd.NaT:
        raise InvalidInput(f"{field} {value!r} is not a time", field=field)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()


def _from_number(number: float, field: str) -> float:
    if not math.isfinite(number) or number < 0:
        raise InvalidInput(f"{field} {number!r} is not a valid Unix time", field=field)
    if number > 1e17:  # nanoseconds
        number /= 1e9
    elif number > 1e14:  # microseconds
        number /= 1e6
    elif number > 1e11:  # milliseconds
        number /= 1e3
    if number > _MAX_SECONDS:
        raise InvalidInput(f"{field} {number!r} is too far in the future", field=field)
    return number


def to_datetime(seconds: float, *, field: str = "time") -> datetime:
    """Unix seconds as an aware UTC datetime; outside what a datetime holds: InvalidInput."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(f"{field} {seconds!r} is outside the range of dates", field=field) from None
