"""What PromQL and LogQL share: quoting, names, durations, numbers and label matchers.

Both query builders (:mod:`aiops.promql`, :mod:`aiops.logql`) put user text into a query
only through this module, so there is exactly one place that decides how a value is escaped:

- :func:`quote` turns any ``str`` into one Go double-quoted string literal, the form both
  Prometheus and Loki unquote with the same rules. Backslash, double quote, newline and
  every other non-printable character are escaped; the result never contains a raw newline
  or an unescaped ``"``, so no value can end the string early and change the query.
- :func:`unquote` is the inverse, used to parse selectors that callers hand us as text.
- Label and metric names are checked against the Prometheus grammar; durations against
  ``model.ParseDuration`` (``1h30m``, ``500ms``, ``1d``, ``2w``, ``1y``).
- :class:`Matcher` is one validated ``name op "value"`` matcher; regular expressions are
  compiled with RE2 (the engine Prometheus and Loki use) so a broken regex fails here.

Everything raises :class:`aiops.errors.InvalidInput` with a message naming the bad thing.
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import re2
from pydantic import BaseModel, ConfigDict

from aiops.errors import InvalidInput
from aiops.timeutil import MAX_PROMQL_DURATION_MS as _MAX_DURATION_MS
from aiops.timeutil import format_promql_duration as format_duration
from aiops.timeutil import parse_promql_duration_ms as parse_duration

__all__ = [
    "MATCH_OPS",
    "Matcher",
    "LabelMatcherSpec",
    "quote",
    "unquote",
    "regex_escape_literal",
    "validate_label_name",
    "validate_metric_name",
    "validate_regex",
    "parse_duration",
    "format_duration",
    "duration",
    "format_number",
    "parse_selector",
]

MatchOp = Literal["=", "!=", "=~", "!~"]
MATCH_OPS: tuple[str, ...] = ("=", "!=", "=~", "!~")

LABEL_NAME_PATTERN = "[a-zA-Z_][a-zA-Z0-9_]*"
METRIC_NAME_PATTERN = "[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME_RE = re.compile(LABEL_NAME_PATTERN)
_METRIC_NAME_RE = re.compile(METRIC_NAME_PATTERN)

# --------------------------------------------------------------------------- quoting

_SIMPLE_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}
# Fast path: a value made only of these characters is copied as is.
_PLAIN_RE = re.compile(r"[ !#-\[\]-~]*")


def quote(value: str) -> str:
    """Return ``value`` as one Go double-quoted string literal (PromQL and LogQL syntax).

    ``\\``, ``"`` and the C escapes (``\\n``, ``\\t``, ...) are escaped by name; any other
    character Python does not consider printable (controls, NUL, DEL, C1 controls, line and
    paragraph separators, format characters, unassigned code points) becomes ``\\uXXXX`` or
    ``\\UXXXXXXXX``. Printable Unicode is kept as is (Prometheus and Loki accept UTF-8).
    A lone surrogate cannot be encoded as UTF-8 and is rejected.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"expected a string value, got {type(value).__name__}: {value!r}")
    if _PLAIN_RE.fullmatch(value):
        return f'"{value}"'
    out = ['"']
    for ch in value:
        escaped = _SIMPLE_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch.isprintable():
            out.append(ch)
        else:
            cp = ord(ch)
            if 0xD800 <= cp <= 0xDFFF:
                raise InvalidInput(
                    f"string value contains a lone surrogate U+{cp:04X}, which is not valid "
                    f"UTF-8: {value!r}"
                )
            out.append(f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


_UNQUOTE_SIMPLE = {
    "a": b"\a",
    "b": b"\b",
    "f": b"\f",
    "n": b"\n",
    "r": b"\r",
    "t": b"\t",
    "v": b"\v",
    "\\": b"\\",
}
_HEX = frozenset("0123456789abcdefABCDEF")


def unquote(literal: str) -> str:
    """Inverse of :func:`quote`: decode one Go string literal (``"..."`` or raw ```...```).

    Follows Go's ``strconv.Unquote`` (which Prometheus and Loki use): the escapes
    ``\\a \\b \\f \\n \\r \\t \\v \\\\ \\"``, ``\\xHH`` and ``\\OOO`` (bytes), ``\\uXXXX`` and
    ``\\UXXXXXXXX`` (code points). The decoded bytes must be valid UTF-8.
    """
    if len(literal) < 2 or literal[0] != literal[-1] or literal[0] not in '"`':
        raise InvalidInput(f"not a quoted string: {literal!r}")
    body = literal[1:-1]
    if literal[0] == "`":
        if "`" in body:
            raise InvalidInput(f"raw string contains a backtick: {literal!r}")
        return body
    buf = bytearray()
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch == '"' or ch == "\n":
            raise InvalidInput(f"unescaped {ch!r} inside quoted string {literal!r}")
        if ch != "\\":
            try:
                buf += ch.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidInput(f"quoted string is not valid UTF-8: {literal!r}") from None
            i += 1
            continue
        if i + 1 >= n:
            raise InvalidInput(f"quoted string ends in a backslash: {literal!r}")
        esc = body[i + 1]
        i += 2
        if esc in _UNQUOTE_SIMPLE:
            buf += _UNQUOTE_SIMPLE[esc]
        elif esc == '"':
            buf += b'"'
        elif esc in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[esc]
            digits = body[i : i + width]
            if len(digits) != width or not set(digits) <= _HEX:
                raise InvalidInput(f"bad \\{esc} escape in quoted string {literal!r}")
            i += width
            code = int(digits, 16)
            if esc == "x":
                buf.append(code)
            elif code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise InvalidInput(
                    f"escape \\{esc}{digits} is not a valid code point in {literal!r}"
                )
            else:
                buf += chr(code).encode("utf-8")
        elif esc in "01234567":
            digits = body[i - 1 : i + 2]
            if len(digits) != 3 or not set(digits) <= set("01234567") or int(digits, 8) > 255:
                raise InvalidInput(f"bad octal escape in quoted string {literal!r}")
            buf.append(int(digits, 8))
            i += 2
        else:
            raise InvalidInput(f"unknown escape sequence \\{esc} in quoted string {literal!r}")
    try:
        return buf.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"quoted string is not valid UTF-8: {literal!r}") from None


_REGEX_META = frozenset("\\.+*?()|[]{}^$")


def regex_escape_literal(value: str) -> str:
    """Return an RE2 regex that matches exactly ``value`` (Go's ``regexp.QuoteMeta``).

    Use it to put a literal into a ``=~`` matcher, e.g. ``=~"prefix-" + escaped``; the result
    is still a normal string value and is quoted by :func:`quote` when rendered.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"expected a string value, got {type(value).__name__}: {value!r}")
    return "".join("\\" + ch if ch in _REGEX_META else ch for ch in value)


# --------------------------------------------------------------------------- names


def validate_label_name(name: object, *, what: str = "label name") -> str:
    """Return ``name`` if it matches ``[a-zA-Z_][a-zA-Z0-9_]*``; raise ``InvalidInput``."""
    if not isinstance(name, str) or not _LABEL_NAME_RE.fullmatch(name):
        raise InvalidInput(f"invalid {what} {name!r}: must match {LABEL_NAME_PATTERN}", field=what)
    return name


def validate_metric_name(name: object) -> str:
    """Return ``name`` if it matches ``[a-zA-Z_:][a-zA-Z0-9_:]*``; raise ``InvalidInput``."""
    if not isinstance(name, str) or not _METRIC_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid metric name {name!r}: must match {METRIC_NAME_PATTERN}", field="metric"
        )
    return name


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> re2._Regexp:
    return re2.compile(source, options=_RE2_OPTIONS)


def validate_regex(pattern: str, *, anchored: bool, what: str = "regex") -> re2._Regexp:
    """Compile ``pattern`` with RE2 (optionally anchored like label matchers) or raise.

    RE2 here is Google's C++ library; Prometheus and Loki use Go's ``regexp``, which is the
    same syntax apart from a few corners (``\\C``, ``(?<name>...)``), so a regex accepted
    here is, with those exceptions, accepted by the server.
    """
    if not isinstance(pattern, str):
        raise InvalidInput(f"{what} must be a string, got {type(pattern).__name__}")
    try:
        compiled = _compile(pattern)  # must parse on its own, as Prometheus checks, too
        return _compile(f"^(?:{pattern})$") if anchored else compiled
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise InvalidInput(f"invalid {what} {pattern!r}: {detail}", field=what) from None


# --------------------------------------------------------------------------- durations


def duration(
    value: str | timedelta,
    *,
    what: str = "duration",
    allow_negative: bool = False,
    allow_zero: bool = False,
) -> str:
    """Validate a duration given as text (``"5m"``) or ``timedelta``; return its text form.

    Text is returned as given (``"90m"`` stays ``"90m"``); a ``timedelta`` is formatted
    (``timedelta(minutes=90)`` -> ``"1h30m"``) and must be a whole number of milliseconds.
    """
    if isinstance(value, timedelta):
        micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
        if micros % 1000:
            raise InvalidInput(
                f"{what} {value!r} has sub-millisecond precision; durations have millisecond "
                "resolution",
                field=what,
            )
        ms = micros // 1000
        if abs(ms) > _MAX_DURATION_MS:
            raise InvalidInput(f"{what} {value!r} is out of range (at most ~292y)", field=what)
        text = format_duration(ms)
    elif isinstance(value, str):
        text = value
        ms = parse_duration(value, what=what)
    else:
        raise InvalidInput(
            f"{what} must be a string like '5m' or a timedelta, got {value!r}", field=what
        )
    if ms < 0 and not allow_negative:
        raise InvalidInput(f"{what} must not be negative, got {text!r}", field=what)
    if ms == 0 and not allow_zero:
        raise InvalidInput(f"{what} must be greater than zero, got {text!r}", field=what)
    return text


# --------------------------------------------------------------------------- numbers


def format_number(value: object, *, what: str = "number") -> str:
    """Render a finite int or float as a PromQL/LogQL number literal."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInput(f"{what} must be a number, got {value!r}", field=what)
    try:
        as_float = float(value)
    except OverflowError:
        as_float = math.inf
    if not math.isfinite(as_float):
        raise InvalidInput(f"{what} must be a finite number, got {value!r}", field=what)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return repr(as_float)


# --------------------------------------------------------------------------- matchers


@dataclass(frozen=True)
class Matcher:
    """One label matcher ``name op "value"``; renders with the value quoted by :func:`quote`.

    ``op`` is ``=``, ``!=``, ``=~`` or ``!~``. For the regex operators ``value`` is an RE2
    regex, anchored at both ends as Prometheus and Loki do; it is checked here.
    """

    name: str
    op: str
    value: str

    def __post_init__(self) -> None:
        validate_label_name(self.name)
        if self.op not in MATCH_OPS:
            raise InvalidInput(
                f"invalid matcher operator {self.op!r} for label {self.name!r}: "
                f"use one of {', '.join(MATCH_OPS)}",
                field="op",
            )
        quote(self.value)  # type and surrogate check
        if self.op in ("=~", "!~"):
            validate_regex(self.value, anchored=True, what=f"regex for label {self.name!r}")

    @property
    def is_regex(self) -> bool:
        return self.op in ("=~", "!~")

    def matches_empty(self) -> bool:
        """Whether a series *without* this label (value ``""``) passes the matcher."""
        if self.op == "=":
            return self.value == ""
        if self.op == "!=":
            return self.value != ""
        found = validate_regex(self.value, anchored=True).search("") is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


class LabelMatcherSpec(BaseModel):
    """``{"name": "status", "op": "=", "value": "200"}`` in a query-builder body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    op: MatchOp = "="
    value: str

    def to_matcher(self) -> Matcher:
        return Matcher(self.name, self.op, self.value)


# --------------------------------------------------------------------------- selectors

_WS = " \t\r\n"
_SELECTOR_OPS = ("=~", "!~", "!=", "=")


def parse_selector(text: str) -> tuple[Matcher, ...]:
    """Parse a stream/series selector ``{name op "value", ...}`` into matchers.

    Accepts exactly: ``{``, matchers separated by commas, ``}``, with optional whitespace;
    values are Go double-quoted or backtick strings. Anything else (a pipeline, a trailing
    comma, a bare word, text after ``}``) is rejected, so the result can be re-rendered
    safely from its parts.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"selector must be a string, got {text!r}", field="selector")

    def fail(reason: str, pos: int) -> InvalidInput:
        return InvalidInput(
            f"invalid stream selector {text!r}: {reason} at position {pos}", field="selector"
        )

    n = len(text)
    i = 0

    def skip_ws(j: int) -> int:
        while j < n and text[j] in _WS:
            j += 1
        return j

    i = skip_ws(i)
    if i >= n or text[i] != "{":
        raise fail("expected '{'", i)
    i = skip_ws(i + 1)
    matchers: list[Matcher] = []
    if i < n and text[i] == "}":
        raise fail("a selector needs at least one matcher", i)
    while True:
        m = _LABEL_NAME_RE.match(text, i)
        if m is None:
            raise fail("expected a label name", i)
        name = m.group()
        i = skip_ws(m.end())
        op = next((o for o in _SELECTOR_OPS if text.startswith(o, i)), None)
        if op is None:
            raise fail(f"expected one of = != =~ !~ after label {name!r}", i)
        i = skip_ws(i + len(op))
        if i >= n or text[i] not in '"`':
            raise fail(f"expected a quoted value for label {name!r}", i)
        end = _find_string_end(text, i)
        if end < 0:
            raise fail(f"unterminated string for label {name!r}", i)
        try:
            value = unquote(text[i : end + 1])
            matchers.append(Matcher(name, op, value))
        except InvalidInput as exc:
            raise InvalidInput(
                f"invalid stream selector {text!r}: {exc.message}", field="selector"
            ) from None
        i = skip_ws(end + 1)
        if i < n and text[i] == ",":
            i = skip_ws(i + 1)
            continue
        if i < n and text[i] == "}":
            i = skip_ws(i + 1)
            break
        raise fail("expected ',' or '}'", i)
    if i != n:
        raise fail("unexpected text after '}'", i)
    return tuple(matchers)


def _find_string_end(text: str, start: int) -> int:
    """Index of the closing quote of the string literal opening at ``start``, or -1."""
    q = text[start]
    i = start + 1
    while i < len(text):
        ch = text[i]
        if q == '"' and ch == "\\":
            i += 2
            continue
        if ch == q:
            return i
        if q == '"' and ch == "\n":
            return -1
        i += 1
    return -1
