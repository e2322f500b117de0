"""Named anomaly patterns, evaluated with RE2 so that no pattern can hang the service.

A pattern config is a mapping of name to regular expression (RE2 syntax, which is Python's
``re`` syntax minus backreferences, lookaround and possessive/atomic groups)::

    {"oom": r"(?i)out of memory|OOMKilled", "payment_declined": r"payment .* declined"}

A value may also be a mapping ``{"regex": "...", "case_insensitive": true}``. ``None`` means
:data:`DEFAULT_PATTERNS`; to extend the defaults pass ``{**DEFAULT_PATTERNS, "mine": "..."}``.

Matching is linear in the input (RE2 automata, no backtracking), patterns are compiled with a
memory cap, and a pattern RE2 cannot run raises :class:`~aiops.errors.UnsupportedPattern`
naming the pattern and the reason; a pattern that is not a regular expression at all raises
:class:`~aiops.errors.InvalidInput`.

Batch evaluation: all patterns are joined into one alternation and run once over the whole
batch (lines joined by ``\\n``); only the few lines that match anything are then tested against
each pattern (an ``re2.Set``) to count matches per pattern.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import re2

from aiops.errors import InvalidInput, UnsupportedPattern

__all__ = [
    "DEFAULT_PATTERNS",
    "Pattern",
    "PatternSet",
    "compile_patterns",
    "MAX_PATTERNS",
    "MAX_PATTERN_LENGTH",
]

logger = logging.getLogger(__name__)

MAX_PATTERNS = 256
MAX_PATTERN_LENGTH = 4096
_MAX_MEM = 32 << 20  # per compiled pattern / set
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

DEFAULT_PATTERNS: dict[str, str] = {
    "oom": (
        r"(?i)\bout of memory\b|\boom[- ]?kill(?:ed|er)?\b|OutOfMemoryError|\bMemoryError\b"
        r"|cannot allocate memory|\bENOMEM\b|memory limit exceeded|exit code 137\b"
    ),
    "panic": r"\bpanic(?:\(|:| at\b)|\bpanicked at\b|(?i:\bkernel panic\b)",
    "timeout": (
        r"(?i)\btimed out\b|\btime ?out ?(?:error|exception|exceeded|expired)|TimeoutError"
        r"|TimeoutException|deadline[ _]exceeded|\bi/o timeout\b|\bETIMEDOUT\b"
        r"|\bread ?timeout\b|\bconnect(?:ion)? ?timeout\b|\bgateway time-?out\b"
    ),
    "connection_refused": r"(?i)connection refused|\bECONNREFUSED\b",
    "connection_reset": r"(?i)connection reset|\bECONNRESET\b|\bbroken pipe\b|\bEPIPE\b",
    "deadlock": r"(?i)\bdeadlock",
    "http_5xx": (
        r"HTTP/\d(?:\.\d)?\"?\s+5\d\d\b"
        r"|(?i:\b(?:status|status_?code|http_?status|response_?code))[\"']?\s*[=:]\s*[\"']?5\d\d\b"
    ),
    "segfault": r"(?i)segmentation fault|\bsegfault\b|\bSIGSEGV\b|\bsignal 11\b|core dumped",
    "disk_full": (
        r"(?i)no space left on device|\bENOSPC\b|\bdisk (?:is )?full\b|disk quota exceeded"
    ),
    "too_many_open_files": r"(?i)too many open files|\bEMFILE\b|\bENFILE\b",
    "crash_loop": r"CrashLoopBackOff|Back-off restarting failed container",
    "stack_overflow": r"StackOverflowError|(?i:\bstack overflow\b)|RecursionError",
}


def re2_options(*, never_capture: bool = False, case_insensitive: bool = False) -> re2.Options:
    """RE2 options every log regex compiles with: bounded memory, errors raised, not logged."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _MAX_MEM
    options.never_capture = never_capture
    if case_insensitive:
        options.case_sensitive = False
    return options


_UNANCHORED = re2._Anchor.UNANCHORED  # the pybind enum; public API has no alias


def re2_spans(
    regexp: Any, blob: bytes, pos: int = 0, end: int | None = None
) -> list[list[tuple[int, int]]]:
    """All non-overlapping matches of a compiled RE2 ``regexp`` in ``blob`` (bytes).

    Returns, per match, the list of ``(start, end)`` byte spans (group 0 first; ``(-1, -1)``
    for groups that did not take part). Calls RE2 directly: one C++ call per match.
    """
    match = regexp._regexp.Match
    end = len(blob) if end is None else end
    out: list[list[tuple[int, int]]] = []
    append = out.append
    while pos <= end:
        spans = match(_UNANCHORED, blob, pos, end)
        s, e = spans[0]
        if s < 0:
            break
        append(spans)
        pos = e if e > s else e + 1
    return out


def re2_first_per_line(regexp: Any, blob: bytes) -> list[int]:
    """Byte offsets of the first match of ``regexp`` in each ``\\n``-separated line that has
    one (at most one offset per line)."""
    match = regexp._regexp.Match
    end = len(blob)
    pos = 0
    out: list[int] = []
    find = blob.find
    while pos <= end:
        s = match(_UNANCHORED, blob, pos, end)[0][0]
        if s < 0:
            break
        out.append(s)
        nl = find(b"\n", s)
        if nl < 0:
            break
        pos = nl + 1
    return out


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str
    regex: str
    case_insensitive: bool = False


def _reason(pattern: str, error: str) -> str:
    if re.search(r"(?<!\\)(?:\\\\)*\\[1-9]", pattern) or "(?P=" in pattern:
        return "backreferences are not supported by the RE2 engine"
    if re.search(r"\(\?<?[=!]", pattern):
        return "lookahead/lookbehind assertions are not supported by the RE2 engine"
    if "(?>" in pattern or re.search(r"[*+?}]\+", pattern):
        return "atomic groups and possessive quantifiers are not supported by the RE2 engine"
    if "\\Z" in pattern:
        return "\\Z is not supported by the RE2 engine (use \\z)"
    if "pattern too large" in error:
        return "pattern is too large for the safe engine's memory budget"
    return f"RE2 cannot compile it: {error}"


def _compile_one(p: Pattern) -> Any:
    if not isinstance(p.regex, str) or not p.regex:
        raise InvalidInput(
            f"pattern {p.name!r} must be a non-empty string", field="patterns", pattern=p.name
        )
    if len(p.regex) > MAX_PATTERN_LENGTH:
        raise InvalidInput(
            f"pattern {p.name!r} is longer than {MAX_PATTERN_LENGTH} characters",
            field="patterns",
            pattern=p.name,
        )
    try:
        return re2.compile(p.regex, re2_options(case_insensitive=p.case_insensitive))
    except re2.error as exc:
        error = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        try:
            re.compile(p.regex)
        except re.error as py_exc:
            raise InvalidInput(
                f"pattern {p.name!r} is not a valid regular expression: {py_exc}",
                field="patterns",
                pattern=p.name,
            ) from None
        except (RecursionError, OverflowError):  # pragma: no cover - too deep or too big
            pass
        reason = _reason(p.regex, error)
        raise UnsupportedPattern(
            f"pattern {p.name!r} is not supported: {reason}",
            field="patterns",
            pattern=p.name,
            reason=reason,
        ) from None


def _blob_form(regex: str) -> str:
    # per line, \A and \z are the line's ends; over the joined batch that is (?m)^ and $
    return re.sub(r"(?<!\\)((?:\\\\)*)\\A", r"\1^", re.sub(r"(?<!\\)((?:\\\\)*)\\z", r"\1$", regex))


class PatternSet:
    """A validated, compiled set of named patterns. Reusable and thread-safe for reading."""

    def __init__(self, patterns: Iterable[Pattern]) -> None:
        self.patterns: tuple[Pattern, ...] = tuple(patterns)
        self.names: tuple[str, ...] = tuple(p.name for p in self.patterns)
        self._compiled = [_compile_one(p) for p in self.patterns]
        self._any: Any = None
        self._set: Any = None
        if not self.patterns:
            return
        parts = []
        for p in self.patterns:
            body = _blob_form(p.regex)
            parts.append(f"(?i:{body})" if p.case_insensitive else f"(?:{body})")
        combined = "(?m)" + "|".join(parts)
        options = re2_options(never_capture=True)
        options.never_nl = True
        try:
            self._any = re2.compile(combined, options)
        except re2.error as exc:  # each compiled alone: only the memory budget can fail here
            raise UnsupportedPattern(
                "the patterns together are too large for the safe engine's memory budget",
                field="patterns",
                reason=str(exc),
            ) from None
        pset = re2.Set.SearchSet(re2_options(never_capture=True))
        for p in self.patterns:
            pset.Add(f"(?i:{p.regex})" if p.case_insensitive else p.regex)
        try:
            pset.Compile()
            self._set = pset
        except re2.error:  # pragma: no cover - fall back to one search per pattern
            self._set = None

    def __len__(self) -> int:
        return len(self.patterns)

    def to_dict(self) -> dict[str, str]:
        return {p.name: p.regex for p in self.patterns}

    def match_line(self, line: str) -> list[str]:
        """Names of the patterns that match ``line``."""
        data = line.encode("utf-8", "replace")
        return [self.names[i] for i in self._indices(data)]

    def _indices(self, data: bytes) -> list[int]:
        hits = self._set.Match(data) if self._set is not None else None
        if hits:
            return sorted(hits)
        # no hit (or no set): confirm with each pattern, so a DFA budget miss never hides one
        return [i for i, rx in enumerate(self._compiled) if rx.search(data) is not None]

    def scan(self, blob: bytes, line_starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate every pattern on every line of ``blob`` (lines joined by ``\\n``).

        Returns ``(lines, pattern_ids)``: parallel int arrays, one entry per (line, pattern)
        match, lines ascending. Cost: one RE2 pass over the batch plus one set test per
        candidate line.
        """
        if self._any is None or len(blob) == 0:
            empty = np.zeros(0, np.int64)
            return empty, empty
        offsets = re2_first_per_line(self._any, blob)
        if not offsets:
            empty = np.zeros(0, np.int64)
            return empty, empty
        cand = np.searchsorted(line_starts, np.asarray(offsets, np.int64), side="right") - 1
        cand = np.unique(cand)
        n = len(line_starts)
        out_lines: list[int] = []
        out_ids: list[int] = []
        size = len(blob)
        for li in cand.tolist():
            start = int(line_starts[li])
            stop = int(line_starts[li + 1]) - 1 if li + 1 < n else size
            for idx in self._indices(blob[start:stop]):
                out_lines.append(li)
                out_ids.append(idx)
        return np.asarray(out_lines, np.int64), np.asarray(out_ids, np.int64)


def _normalise(patterns: Mapping[str, Any] | Sequence[Any]) -> list[Pattern]:
    items: list[tuple[Any, Any]]
    if isinstance(patterns, Mapping):
        items = list(patterns.items())
    elif isinstance(patterns, (list, tuple)):
        items = []
        for entry in patterns:
            if isinstance(entry, Pattern):
                items.append((entry.name, entry))
            elif isinstance(entry, Mapping) and "name" in entry:
                items.append((entry["name"], entry))
            else:
                raise InvalidInput(
                    "each pattern must be a mapping with 'name' and 'regex'", field="patterns"
                )
    else:
        raise InvalidInput("patterns must be a mapping of name to regex", field="patterns")
    if len(items) > MAX_PATTERNS:
        raise InvalidInput(f"at most {MAX_PATTERNS} patterns are allowed", field="patterns")
    out: list[Pattern] = []
    seen: set[str] = set()
    for name, value in items:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(
                f"pattern name {name!r} must be 1-64 characters of letters, digits, _ . : -",
                field="patterns",
            )
        if name in seen:
            raise InvalidInput(f"pattern {name!r} is given twice", field="patterns", pattern=name)
        seen.add(name)
        if isinstance(value, Pattern):
            out.append(Pattern(name, value.regex, value.case_insensitive))
        elif isinstance(value, str):
            out.append(Pattern(name, value))
        elif isinstance(value, Mapping):
            regex = value.get("regex", value.get("pattern"))
            if not isinstance(regex, str):
                raise InvalidInput(
                    f"pattern {name!r} needs a 'regex' string", field="patterns", pattern=name
                )
            out.append(Pattern(name, regex, bool(value.get("case_insensitive", False))))
        else:
            raise InvalidInput(
                f"pattern {name!r} must be a regex string", field="patterns", pattern=name
            )
    return out


_DEFAULT_SET: PatternSet | None = None


def compile_patterns(
    patterns: Mapping[str, Any] | Sequence[Any] | PatternSet | None = None,
) -> PatternSet:
    """Validate and compile a pattern config (``None``: the defaults)."""
    global _DEFAULT_SET
    if isinstance(patterns, PatternSet):
        return patterns
    if patterns is None:
        if _DEFAULT_SET is None:
            _DEFAULT_SET = PatternSet(_normalise(DEFAULT_PATTERNS))
        return _DEFAULT_SET
    return PatternSet(_normalise(patterns))
