"""Log analysis: frames, template mining, extraction, safe patterns and the report.

Pure: no I/O, no Prefect. Sources (files, Loki) produce the frame described in
:mod:`aiops.logs.frame`; :func:`analyze` turns a frame into a :class:`LogReport`.
"""

from aiops.logs.analysis import (
    EVENT_TYPES,
    LogAnalyzer,
    LogReport,
    analyze,
    change_events,
    compare,
)
from aiops.logs.errortypes import CATEGORIES, categorize, extract_error_types
from aiops.logs.frame import COLUMNS, from_lines, validate_frame
from aiops.logs.levels import LEVELS, detect_level
from aiops.logs.patterns import DEFAULT_PATTERNS, PatternSet, compile_patterns
from aiops.logs.templates import AddResult, TemplateMiner, mask_line, template_logql
from aiops.logs.values import extract_durations, extract_http_statuses, extract_sizes

__all__ = [
    "AddResult",
    "CATEGORIES",
    "COLUMNS",
    "DEFAULT_PATTERNS",
    "EVENT_TYPES",
    "LEVELS",
    "LogAnalyzer",
    "LogReport",
    "PatternSet",
    "TemplateMiner",
    "analyze",
    "categorize",
    "change_events",
    "compare",
    "compile_patterns",
    "detect_level",
    "extract_durations",
    "extract_error_types",
    "extract_http_statuses",
    "extract_sizes",
    "from_lines",
    "mask_line",
    "template_logql",
    "validate_frame",
]
