"""The log extractors in one import: levels, error types and values.

Each lives in its own module:

* :mod:`aiops.logs.levels`: :func:`detect_level` (words: structured fields, keywords, glog).
* :mod:`aiops.logs.errortypes`: :func:`extract_error_types`, :func:`http_error_types` and the
  category taxonomy (:func:`categorize`).
* :mod:`aiops.logs.values`: durations (ms), sizes (bytes), HTTP statuses and numeric levels,
  read per line from the digit runs found by the byte scanner (:mod:`aiops.logs.shapes`).

Levels and error types read words, which never change between lines of one *shape*, so the
analysis runs them once per shape; values read numbers and are gathered for every line.
"""

from __future__ import annotations

from aiops.logs.errortypes import CATEGORIES, categorize, extract_error_types, http_error_types
from aiops.logs.levels import ERROR_LEVELS, LEVEL_CODE, LEVELS, UNKNOWN, detect_level
from aiops.logs.shapes import line_starts_of
from aiops.logs.values import (
    ValueScan,
    extract_durations,
    extract_http_statuses,
    extract_sizes,
    parse_duration_ms,
    parse_size_bytes,
    slot_values,
    value_slots,
)

__all__ = [
    "LEVELS",
    "LEVEL_CODE",
    "ERROR_LEVELS",
    "UNKNOWN",
    "CATEGORIES",
    "detect_level",
    "extract_error_types",
    "categorize",
    "http_error_types",
    "line_starts_of",
    "value_slots",
    "slot_values",
    "ValueScan",
    "extract_durations",
    "extract_sizes",
    "extract_http_statuses",
    "parse_duration_ms",
    "parse_size_bytes",
]
