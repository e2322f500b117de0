"""Times and durations: the one module that reads them, each function named for its unit.

=============================  =============================================================
function                       returns
=============================  =============================================================
:func:`parse_unix_seconds`     a point in time as float Unix seconds (UTC)
:func:`parse_seconds`          a duration as float seconds (``"1h30m"``, ``"500ms"``, ``90``)
:func:`parse_whole_seconds`    a duration as int seconds (stored settings: no fractions)
:func:`parse_promql_duration_ms`  a Prometheus/Loki duration as int milliseconds (strict
                               grammar: units ``y w d h m s ms`` largest first)
:func:`format_promql_duration` int milliseconds as Prometheus prints them
:func:`datetime_from_seconds`  float Unix seconds as an aware UTC ``datetime``
:func:`to_unix_seconds`        a ``datetime`` as float Unix seconds (naive means UTC)
:func:`utc_datetime`           a ``datetime`` as the same instant in aware UTC (naive means UTC)
=============================  =============================================================

Where time lives: the API, the CLI and the sources speak float Unix seconds; the store and the
flows aware UTC ``datetime``; log frames and the template miner int64 Unix nanoseconds (a
pandas/numpy column); query texts Prometheus durations. Convert at those seams with the
functions above. The older names ``parse_time``, ``parse_duration`` and ``to_datetime`` are
kept as aliases. Anything that cannot be read is an :class:`~aiops.errors.InvalidInput` naming
the field and the value.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from aiops.errors import InvalidInput

__all__ = [
    "MAX_PROMQL_DURATION_MS",
    "datetime_from_seconds",
    "format_promql_duration",
    "parse_promql_duration_ms",
    "parse_seconds",
    "parse_unix_seconds",
    "parse_whole_seconds",
    "to_unix_seconds",
    "utc_datetime",
    "parse_duration",
    "parse_time",
    "to_datetime",
]

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


def parse_seconds(value: Any, *, field: str = "duration", allow_zero: bool = False) -> float:
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
                    f"{field} {value!r} is not a duration (use e.g. 30s, 5m, 1h30m, 2d, or "
                    "seconds)",
                    field=field,
                ) from None
    else:
        raise InvalidInput(f"{field} must be a duration, got {type(value).__name__}", field=field)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise InvalidInput(f"{field} must be a positive duration, got {value!r}", field=field)
    return seconds


def parse_unix_seconds(value: Any, *, field: str = "time", now: float | None = None) -> float:
    """A point in time as Unix seconds.

    Accepts Unix seconds (int/float/str), milliseconds or nanoseconds (detected by size),
    RFC 3339 / ISO 8601 strings (naive means UTC), ``datetime``/``pandas.Timestamp``,
    ``"now"``, ``"now-1h"`` and ``"-1h"`` (relative to ``now``).
    """
    current = time.time() if now is None else now
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{field} is missing or not a time", field=field)
    if isinstance(value, datetime):
        return to_unix_seconds(value)
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
        delta = parse_seconds(amount, field=field, allow_zero=True)  # now-0s is now
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


def datetime_from_seconds(seconds: float, *, field: str = "time") -> datetime:
    """Unix seconds as an aware UTC datetime; outside what a datetime holds: InvalidInput."""
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(
            f"{field} {seconds!r} is outside the range of dates", field=field
        ) from None


def utc_datetime(value: datetime) -> datetime:
    """The same instant as an aware UTC datetime; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_unix_seconds(value: datetime) -> float:
    """A datetime as float Unix seconds; a naive one is taken as UTC (not local time).

    >>> to_unix_seconds(datetime(2026, 1, 1, tzinfo=UTC))
    1767225600.0
    """
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).timestamp()


# ----------------------------------------------------------- whole seconds (stored settings)

_WHOLE_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
}


def parse_whole_seconds(value: Any) -> int:
    """Whole seconds from ``90``, ``"90"``, ``"90s"``, ``"5m"``, ``"1h30m"``, ``"1d"``, ``"1w"``.

    Raises ``ValueError`` (an :class:`InvalidInput`) for anything else, including
    negative values and fractions of a second.
    """
    if isinstance(value, bool):
        raise InvalidInput(f"not a duration: {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidInput(f"duration must be a whole number of seconds, got {value!r}")
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            seconds = int(text)
        else:
            pos, total_ms = 0, 0
            for match in _WHOLE_DURATION.finditer(text):
                if match.start() != pos:
                    break
                total_ms += int(match.group(1)) * _WHOLE_UNIT_MS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise InvalidInput(
                    f"not a duration: {value!r} (use seconds or e.g. '30s', '5m', '1h30m', '1d')"
                )
            if total_ms % 1000:
                raise InvalidInput(f"duration must be a whole number of seconds, got {value!r}")
            seconds = total_ms // 1000
    else:
        raise InvalidInput(f"not a duration: {value!r}")
    if seconds < 0:
        raise InvalidInput(f"duration must not be negative, got {value!r}")
    return seconds


# ------------------------------------------------ Prometheus durations (query texts, in ms)

_PROMQL_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?"
    r"(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_PROMQL_UNIT_MS = (
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
)
MAX_PROMQL_DURATION_MS = (2**63 - 1) // 1_000_000  # time.Duration is int64 nanoseconds


def parse_promql_duration_ms(text: str, *, what: str = "duration") -> int:
    """Parse a Prometheus duration (``model.ParseDuration``) into milliseconds.

    Units ``y w d h m s ms`` in that order, each at most once, integer counts; a leading
    ``-`` gives a negative duration. ``"0"`` alone is zero.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"{what} must be a string like '5m', got {text!r}", field=what)
    sign, body = (-1, text[1:]) if text.startswith("-") else (1, text)
    if body == "0":
        return 0
    match = _PROMQL_DURATION.fullmatch(body) if body else None
    if match is None or not any(match.groups()):
        raise InvalidInput(
            f"invalid {what} {text!r}: expected a Prometheus duration such as 30s, 5m, 1h30m, "
            "500ms, 1d, 2w or 1y (units y w d h m s ms, largest first)",
            field=what,
        )
    total = sum(
        int(g) * ms for g, (_, ms) in zip(match.groups(), _PROMQL_UNIT_MS, strict=False) if g
    )
    if total > MAX_PROMQL_DURATION_MS:
        raise InvalidInput(f"{what} {text!r} is out of range (at most ~292y)", field=what)
    return sign * total


def format_promql_duration(ms: int) -> str:
    """Format milliseconds the way Prometheus prints durations (``90m`` -> ``1h30m``)."""
    if ms == 0:
        return "0s"
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    parts = []
    for unit, size in _PROMQL_UNIT_MS:
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


# the older names, kept for callers and documentation
parse_duration = parse_seconds
parse_time = parse_unix_seconds
to_datetime = datetime_from_seconds
