"""Log levels: the level of a line from its words (structured fields, keywords, glog letters).

:func:`detect_level` reads words only, so the analysis runs it once per *shape* (lines that
differ only in numbers and ids, see :mod:`aiops.logs.shapes`). Numeric levels (pino/bunyan
``"level":30``) are values and are read per line by :mod:`aiops.logs.values`.
"""

from __future__ import annotations

import re

__all__ = [
    "ERROR_LEVELS",
    "LEVELS",
    "LEVEL_CODE",
    "LEVEL_WORDS",
    "NUMERIC_LEVELS",
    "UNKNOWN",
    "detect_level",
]

LEVELS = ("trace", "debug", "info", "warn", "error", "fatal", "unknown")
LEVEL_CODE = {name: i for i, name in enumerate(LEVELS)}
ERROR_LEVELS = ("error", "fatal")
UNKNOWN = LEVEL_CODE["unknown"]

LEVEL_WORDS = {
    "trace": "trace",
    "finest": "trace",
    "finer": "trace",
    "verbose": "trace",
    "debug": "debug",
    "dbug": "debug",
    "dbg": "debug",
    "fine": "debug",
    "config": "debug",
    "info": "info",
    "inf": "info",
    "information": "info",
    "informational": "info",
    "notice": "info",
    "note": "info",
    "warn": "warn",
    "warning": "warn",
    "wrn": "warn",
    "wrng": "warn",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "fail": "error",
    "failure": "error",
    "fatal": "fatal",
    "crit": "fatal",
    "critical": "fatal",
    "panic": "fatal",
    "emerg": "fatal",
    "emergency": "fatal",
    "alert": "fatal",
    "dpanic": "fatal",
    "t": "trace",
    "d": "debug",
    "i": "info",
    "w": "warn",
    "e": "error",
    "f": "fatal",
}
NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}

_STRUCT_LEVEL = re.compile(
    r"""(?:^|[\s{,;\[("'])["']?(?:level|lvl|severity|loglevel|log_level|log\.level|levelname|"""
    r"""level_name|severityText|severity_text)["']?\s*[=:]\s*["']?([A-Za-z]+|\d+)\b""",
    re.IGNORECASE,
)
_KEYWORD_LEVEL = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRIT|CRITICAL|PANIC"
    r"|ALERT|EMERG|EMERGENCY)\b"
    r"|\[(trace|debug|info|notice|warn|warning|error|crit|critical|alert|emerg|fatal)\]"
    r"|\b(Trace|Debug|Info|Warn|Warning|Error|Fatal|Critical)(?=[:\]|])"
)
_GLOG = re.compile(r"^\s*([IWEF])\d{4} \d{1,2}:\d{2}:\d{2}")
_PREFIX_LEVEL = re.compile(r"^\s*(?:panic: |fatal error: |Traceback \(most recent call last\))")


def detect_level(line: str) -> tuple[str, bool]:
    """``(level, numeric)``: the line's level and whether it came from a numeric field
    (pino/bunyan ``"level":50``; the value scan re-reads those per line).

    Order: a structured field (``level``/``lvl``/``severity``/``log.level``... in JSON or
    logfmt), then a glog prefix (``E0115 10:00:00``), then the first level keyword
    (``ERROR``, ``[warn]``, ``Error:``), then a Go ``panic:``/Python ``Traceback`` start.
    """
    m = _STRUCT_LEVEL.search(line)
    if m:
        value = m.group(1)
        if value.isdigit():
            level = NUMERIC_LEVELS.get(int(value))
            if level:
                return level, True
        else:
            level = LEVEL_WORDS.get(value.lower())
            if level:
                return level, False
    m = _GLOG.match(line)
    if m:
        return LEVEL_WORDS[m.group(1).lower()], False
    m = _KEYWORD_LEVEL.search(line)
    if m:
        word = m.group(m.lastindex or 0)
        return LEVEL_WORDS[word.lower()], False
    m = _PREFIX_LEVEL.match(line)
    if m:
        return ("fatal" if m.group(0).lstrip().startswith(("panic", "fatal")) else "error"), False
    return "unknown", False
