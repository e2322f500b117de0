"""Log line headers: learn where the header ends from the lines themselves, then split.

A log line is a *header* (timestamp, level, component/logger, thread, process id, host) and a
*message*. The template miner should see the message only: a header mined as if it were text
both merges different events (a varying component becomes ``<*>``) and splits equal ones (a
level or a thread name makes its own template). Users should not have to write a format per
system, so the header's shape is learned from a sample of the lines:

1. Each line is cut into its first tokens (whitespace separated; a ``[...]`` group is one token)
   and each token gets a *class*: a date, a time, a month name, a number, a glog prefix
   (``I0115``), a level word (``INFO``, ``[warn]``, ``error:``), a bracketed group (one holding
   a time is a timestamp), a component (``name:``, ``name[pid]:``, glog's ``file.go:42]``), a
   separator (``-``, ``|``), or a name (words, dotted names, hosts).
2. Among the sample lines that start like most lines do, the header is a prefix of token
   positions whose class is the same on most lines (the *consistent prefix*). It ends at the
   first level or component position (extended over a following component, bracketed thread or
   context, and separator), else after the leading timestamp (plus ``name -``, as in
   ``[time] program - message``). A prefix with neither a timestamp nor an early level or
   component is no header.
3. A line whose tokens fit the learned classes is split there; a line that fits the leading
   timestamp but not the rest is split where it stops fitting; a line that does not even start
   like that is kept whole (see :mod:`aiops.logs.events` for continuation lines).

JSON lines (``{"msg": ...}``) and logfmt lines (``level=info msg="..."``) are recognised on
their own, per line: the message is the ``msg``/``message``/``log``/... field and the other
fields (level, logger, thread, pid, host) are read by name.

An explicit format overrides learning (:func:`compile_format`): ``%{timestamp} %{level}
[%{thread}] %{component}: %{message}`` or a regular expression with named groups, one of
them ``message``.

Splitting is done once per line *shape* by the analyzer (lines that differ only in digits
split the same way), so its cost does not grow with the number of lines.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiops.errors import InvalidInput
from aiops.logs.levels import LEVEL_WORDS

__all__ = [
    "FIELDS",
    "HeaderModel",
    "Split",
    "compile_format",
    "learn_headers",
    "split_structured",
]

FIELDS = ("timestamp", "level", "component", "thread", "pid", "host")

# A header's level field takes the level words less those a message word could be: short
# abbreviations (single letters, inf, wrn, eror), and words common in free text (fail,
# failure, note, config, information, ...), so a header is never learned from a message.
_NOT_A_HEADER_LEVEL = frozenset(
    "t d i w e f dbug inf wrn wrng eror config information informational note fail failure "
    "emergency dpanic".split()
)
_LEVEL_WORDS = {w: lv for w, lv in LEVEL_WORDS.items() if w not in _NOT_A_HEADER_LEVEL}
_GLOG_LEVEL = {"I": "info", "W": "warn", "E": "error", "F": "fatal", "D": "debug"}
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"

_TOKEN = re.compile(r"\[(?:[^\[\]\n]|\[[^\[\]\n]*\]){0,200}\]:?|[^\s|]+|\|")
_MAX_TOKENS = 12
_SAMPLE = 1000

# token classes (one letter each)
DATE, TIME, MONTH, NUM, GLOG, LEVEL, BRACKET, BRACKET_TS, COMP, SEP, NAME, OTHER = (
    "D",
    "T",
    "M",
    "N",
    "G",
    "L",
    "B",
    "Z",
    "C",
    "S",
    "I",
    "O",
)
_TS_CLASSES = frozenset((DATE, TIME, MONTH, GLOG, BRACKET_TS))

_DATE = re.compile(
    r"\d{2,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[-T_.:,]\d{1,9})*(?:Z|[+-]\d{2}:?\d{2})?,?"
    r"|\d{8}[-T_ ]?\d{2}:?\d{2}:?\d{2}(?:[:.,]\d{1,9})?"  # 20171223-22:15:29:606
    r"|(?:0?[1-9]|1[0-2])-(?:0?[1-9]|[12]\d|3[01])"  # MM-DD (Android logcat)
    r"|1[0-9]{9}(?:\.\d{1,9})?"  # Unix seconds, 2001..2286
    r"|\d{1,2}/(?:" + _MONTHS + r")/\d{4}(?::\d{2}){0,3}"
    r"|\d{4}-\d{2}-\d{2}T\S*"
)
_TIME = re.compile(r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?,?")
_MONTH = re.compile(r"(?:" + _MONTHS + r")")
_IP = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?")
_NUM = re.compile(r"[+-]?\d+(?:\.\d+)?")
_GLOGP = re.compile(r"[IWEFD]\d{4}")
_LEVEL = re.compile(r"[\[<(]?([A-Za-z]{3,11})[\]>)]?:?")
_COMP_PID = re.compile(r"([^\s\[\]]{1,200}?)\[(\d+)\]:?")
_COMP_SRC = re.compile(r"([\w./-]+:\d+)\]")  # glog: file.go:42]
_COMP = re.compile(r"([^\s:\"'][^\s\"']{0,200}):")
_SEP = re.compile(r"-{1,3}|\||:|>|>>|::|\u2014")
_NAME = re.compile(r"[\w$@.:/-]{1,200}")
_DOTTED = re.compile(r"[A-Za-z_$][\w$-]*(?:[./][\w$<>\[\]-]+)+(?::\d+)?")
_BRACKET_TIME = re.compile(r"\d{1,2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}|\d{2}/\w{3}/\d{4}")


@functools.lru_cache(maxsize=65_536)
def _cls(tok: str) -> str:
    """The class of one header token (see the module docstring)."""
    c = tok[0]
    if c == "[":
        body = tok.rstrip(":")
        if _LEVEL.fullmatch(body) and body[1:-1].lower() in _LEVEL_WORDS:
            return LEVEL
        return BRACKET_TS if _BRACKET_TIME.search(body) else BRACKET
    if c.isdigit() or (c in "+-" and len(tok) > 1 and tok[1].isdigit()):
        if _IP.fullmatch(tok):
            return NAME
        if _TIME.fullmatch(tok):
            return TIME
        if _DATE.fullmatch(tok):
            return DATE
        if _NUM.fullmatch(tok):
            return NUM
    m = _LEVEL.fullmatch(tok)
    if (
        m
        and m.group(1).lower() in _LEVEL_WORDS
        and (tok.isupper() or tok[0] in "[<(" or tok[-1] == ":" or tok.islower() or tok.istitle())
    ):
        return LEVEL
    if _GLOGP.fullmatch(tok):
        return GLOG
    if _MONTH.fullmatch(tok):
        return MONTH
    if _COMP_PID.fullmatch(tok) or _COMP_SRC.fullmatch(tok):
        return COMP
    if tok[-1] == ":" and len(tok) > 1 and _COMP.fullmatch(tok) and not tok[:-1].isdigit():
        return COMP
    if _SEP.fullmatch(tok):
        return SEP
    if _NAME.fullmatch(tok):
        return NAME
    if tok[0] in "<(" and tok[-1] in ">)" and len(tok) > 2:
        return BRACKET
    return OTHER


def _tokens(line: str, limit: int = _MAX_TOKENS) -> list[re.Match[str]]:
    out = []
    for m in _TOKEN.finditer(line):
        out.append(m)
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True, slots=True)
class Split:
    """One line split: ``message`` and the header ``fields`` found (``level`` normalised to
    :data:`aiops.logs.levels.LEVELS` names)."""

    message: str
    fields: Mapping[str, str] = field(default_factory=dict)
    has_header: bool = False
    embedded: bool = False  # the message is a field inside the line (JSON, logfmt)


# --------------------------------------------------------------------------------------------
# Structured lines: JSON and logfmt
# --------------------------------------------------------------------------------------------
_PAYLOAD_START = frozenset("{abcdefghijklmnopqrstuvwxyz")
_MSG_KEYS = ("msg", "message", "log", "@message", "MESSAGE", "Message", "event", "text", "body")
_KEY_ROLES = {
    "level": "level",
    "lvl": "level",
    "severity": "level",
    "loglevel": "level",
    "log_level": "level",
    "log.level": "level",
    "levelname": "level",
    "severityText": "level",
    "logger": "component",
    "logger_name": "component",
    "loggerName": "component",
    "log.logger": "component",
    "component": "component",
    "name": "component",
    "module": "component",
    "caller": "component",
    "thread": "thread",
    "thread_name": "thread",
    "threadName": "thread",
    "pid": "pid",
    "process": "pid",
    "host": "host",
    "hostname": "host",
    "ts": "timestamp",
    "time": "timestamp",
    "timestamp": "timestamp",
    "@timestamp": "timestamp",
}
_PINO = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}
_LOGFMT_PAIR = re.compile(r'([\w.@-]+)=("(?:[^"\\]|\\.)*"|\S*)')


def _norm_level(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return _PINO.get(int(value))
    text = str(value).strip().strip("[]").lower()
    if text.isdigit():
        return _PINO.get(int(text))
    return _LEVEL_WORDS.get(text) or (_GLOG_LEVEL.get(text.upper()) if len(text) == 1 else None)


def _fields_from(pairs: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in pairs.items():
        role = _KEY_ROLES.get(key)
        if role is None or role in out or value is None or isinstance(value, (dict, list)):
            continue
        if role == "level":
            level = _norm_level(value)
            if level:
                out["level"] = level
        else:
            out[role] = str(value)
    return out


def split_structured(line: str) -> Split | None:
    """A JSON or logfmt line with a message field, split; None for anything else."""
    s = line.lstrip()
    if s[:1] == "{":
        try:
            obj = json.loads(s)
        except ValueError:
            return None
        if not isinstance(obj, dict):
            return None
        for key in _MSG_KEYS:
            value = obj.get(key)
            if isinstance(value, str):
                return Split(value, _fields_from(obj), True, True)
        return None
    if "=" not in s[:64]:
        return None
    pairs = _LOGFMT_PAIR.findall(s)
    if len(pairs) < 2 or not s.startswith(pairs[0][0] + "="):
        return None
    values = {}
    for key, raw in pairs:
        if key not in values:
            values[key] = raw[1:-1].replace('\\"', '"') if raw[:1] == '"' else raw
    for key in _MSG_KEYS:
        if key in values:
            return Split(values[key], _fields_from(values), True, True)
    return None


# --------------------------------------------------------------------------------------------
# Learned text headers
# --------------------------------------------------------------------------------------------
def _compatible(learned: str, got: str) -> bool:
    if learned == got:
        return True
    if learned == NAME:
        return got in (NUM, OTHER)
    if learned == NUM:
        return got == NAME
    if learned == SEP:  # "-" is the placeholder of an empty field (ident, user, label)
        return got == NAME
    return False


@dataclass(frozen=True)
class HeaderModel:
    """A header shape: the token classes of its positions (empty: no header).

    ``split(line)`` gives the message and the header fields; JSON and logfmt lines are split
    by their fields whatever the learned shape.
    """

    classes: tuple[str, ...] = ()
    lead: int = 0  # positions that must fit for a line to have the header at all
    sep_within: int = 0  # after the classes: "name [name] -" up to this many tokens, then "-"
    regex: re.Pattern[str] | None = None  # an explicit format

    @property
    def learned(self) -> bool:
        return bool(self.classes) or self.regex is not None

    def describe(self) -> str:
        if self.regex is not None:
            return f"explicit format {self.regex.pattern!r}"
        text = " ".join(self.classes) if self.classes else "none"
        return text + (" (name -)" if self.sep_within else "")

    def split(self, line: str) -> Split:
        structured = split_structured(line)
        if structured is not None:
            return structured
        got = self._split_regex(line) if self.regex is not None else self._split_text(line)
        if got.has_header:
            # a JSON or logfmt payload after a text prefix (container runtimes' "stdout F",
            # loggers that print a level and then JSON): its message field is the message
            msg = got.message
            starts = [0] + [m.start() for m in _tokens(msg, 3)[1:] if msg[m.start()] == "{"]
            for at in starts:
                inner = split_structured(msg[at:]) if msg[at : at + 1] in _PAYLOAD_START else None
                if inner is not None:
                    return Split(inner.message, {**inner.fields, **got.fields}, True, True)
        return got

    def _split_text(self, line: str) -> Split:
        if not self.classes:
            return Split(line)
        toks = _tokens(line, len(self.classes) + 2)
        n = len(self.classes)
        fit = 0
        for i in range(min(n, len(toks))):
            if not _compatible(self.classes[i], _cls(toks[i].group())):
                break
            fit = i + 1
        if fit < self.lead or fit == 0:
            return Split(line)
        if fit == n - 1 and self.classes[fit] == SEP and fit < len(toks):
            # the closing separator comes later: "program *64 - message" for "program - message"
            toks = _tokens(line, n + 3)
            j = _sep_after(toks, fit - 1, 3)
            if j is not None and j + 1 < len(toks):
                fields = _fields(toks[:fit])
                if "component" not in fields:  # "program [extra] -": the program
                    fields["component"] = toks[fit - 1].group()
                    if fields.get("host") == fields["component"]:
                        del fields["host"]
                return Split(line[toks[j + 1].start() :], fields, True)
        ends_early = fit < len(toks) and fit < n and self.classes[fit] != SEP
        if ends_early and _cls(toks[fit].group()) == SEP:
            fit += 1  # a separator that ends a shorter header
        elif fit == n and self.sep_within:
            toks = _tokens(line, n + self.sep_within + 1)
            j = _sep_after(toks, n, self.sep_within)
            if j is not None and j + 1 < len(toks):
                fields = _fields(toks[:n])
                fields.setdefault("component", toks[n].group())
                return Split(line[toks[j + 1].start() :], fields, True)
        if fit >= len(toks):  # nothing left: the header is all there is
            return Split(line[toks[-1].end() :].strip() if toks else line, _fields(toks), True)
        return Split(line[toks[fit].start() :], _fields(toks[:fit]), True)

    def _split_regex(self, line: str) -> Split:
        assert self.regex is not None
        m = self.regex.match(line)
        if m is None:
            return Split(line)
        groups = m.groupdict()
        out: dict[str, str] = {}
        for name in FIELDS:
            value = groups.get(name)
            if value:
                if name == "level":
                    level = _norm_level(value)
                    if level:
                        out["level"] = level
                else:
                    out[name] = value.strip()
        return Split(groups.get("message") or "", out, True)


def _fields(toks: Sequence[re.Match[str]]) -> dict[str, str]:
    """Header fields from the tokens of a header, by class."""
    out: dict[str, str] = {}
    ts: list[str] = []
    names: list[str] = []
    seen_level = False
    for m in toks:
        tok = m.group()
        c = _cls(tok)
        day = c == NUM and ts and len(ts) < 3 and "pid" not in out and _MONTH.fullmatch(ts[-1])
        if c in _TS_CLASSES or day:
            ts.append(tok.strip("[]"))
            if c == GLOG and "level" not in out:
                out["level"] = _GLOG_LEVEL[tok[0]]
        elif c == LEVEL and "level" not in out:
            level = _norm_level(tok.rstrip(":"))
            if level:
                out["level"] = level
            seen_level = True
        elif c == COMP and "component" not in out:
            m2 = _COMP_PID.fullmatch(tok)
            if m2:
                out["component"] = m2.group(1)
                out["pid"] = m2.group(2)
            else:
                m3 = _COMP_SRC.fullmatch(tok)
                out["component"] = m3.group(1).rsplit(":", 1)[0] if m3 else tok.rstrip(":")
        elif c == BRACKET and "thread" not in out:
            out["thread"] = tok.strip("[]:")
        elif c == NUM and "pid" not in out and ts:
            out["pid"] = tok
        elif c in (NAME, OTHER):
            if len(tok) == 1 and tok in "VDIWEF" and "level" not in out:  # logcat's level letter
                out["level"] = _GLOG_LEVEL.get(tok, "trace" if tok == "V" else "debug")
                seen_level = True
                continue
            names.append(tok)
            if seen_level and "component" not in out and ("." in tok or "/" in tok):
                out["component"] = re.sub(r":\d+$", "", tok)
    if ts:
        out["timestamp"] = " ".join(ts)
    if len(toks) >= 2 and names and names[-1] == toks[-2].group() and _cls(toks[-1].group()) == SEP:
        if "component" not in out:  # "[time] program - ": the name before the closing separator
            out["component"] = names.pop()
    if names:
        if "component" not in out and seen_level and re.search(r"[A-Za-z]{2}", names[-1]):
            out["component"] = names[-1]
            names = names[:-1]
        if names and "host" not in out:
            out["host"] = names[0]
    return out


def learn_headers(
    lines: Sequence[str], *, sample: int = _SAMPLE, min_share: float = 0.85
) -> HeaderModel:
    """Learn the header shape of ``lines`` (the first ``sample`` text lines are read).

    Returns a :class:`HeaderModel`; one with no classes when the lines have no consistent
    header (messages only, or too mixed), which keeps every text line whole.
    """
    seqs: list[list[str]] = []
    text: list[str] = []
    for line in lines[: 8 * sample]:
        if len(seqs) >= sample:
            break
        if not line or line[0] in " \t" or _looks_structured(line):
            continue
        text.append(line)
        seqs.append([_cls(m.group()) for m in _tokens(line)])
    if len(seqs) < 1:
        return HeaderModel()
    first = Counter(s[0] for s in seqs if s)
    if not first:
        return HeaderModel()
    c0, n0 = first.most_common(1)[0]
    if n0 < 0.5 * len(seqs):
        return HeaderModel()
    rows = [s for s in seqs if s and s[0] == c0]
    text = [t for t, s in zip(text, seqs) if s and s[0] == c0]  # lines that start like a header
    total = len(rows)
    classes: list[str] = []
    for i in range(_MAX_TOKENS):
        counts = Counter(s[i] for s in rows if len(s) > i)
        if not counts:
            break
        c, k = counts.most_common(1)[0]
        if c == NAME:  # a name position also takes numbers (host ids, short names)
            k += counts.get(NUM, 0) + counts.get(OTHER, 0)
        if k < min_share * total:
            break
        classes.append(c)
    p = len(classes)
    # where the leading timestamp ends (positions of timestamp classes, numbers and seps inside)
    ts_end = 0
    for i, c in enumerate(classes):
        if c in _TS_CLASSES:
            ts_end = i + 1
        elif c in (NUM, SEP, NAME, OTHER) and i < 4:  # epoch, "-", host, file name before a date
            continue
        else:
            break
    h = 0
    term = next((i for i, c in enumerate(classes) if c in (LEVEL, COMP)), None)
    if term is not None and (
        (ts_end > 0 and term >= ts_end)
        or term <= 1
        or all(c in (NUM, SEP, BRACKET, BRACKET_TS) for c in classes[:term])
    ):
        h = term + 1
        if classes[term] == LEVEL:
            # what follows a level in common layouts: "INFO [main] a.b.C:", "INFO a.b.c
            # [req-1 ...]", "INFO comp:", Spring's "INFO 4242 --- [main] a.b.C : "
            for _ in range(6):
                c = classes[h] if h < p else None
                if c in (BRACKET, COMP, NUM, SEP):
                    h += 1
                    if c == COMP:
                        break
                elif c == NAME and _dotted_share(text, h) >= min_share:
                    h += 1
                else:
                    break
        elif h < p and classes[h] == BRACKET:
            h += 1
        if h < p and classes[h] == SEP:
            h += 1
    elif ts_end > 0:
        h = ts_end
        # "ts|comp|pid|message": fields up to the last separator every line has in one place
        last_sep = None
        for i in range(ts_end, p):
            if classes[i] not in (SEP, NAME, NUM, BRACKET):
                break
            if classes[i] == SEP and _same_token_share(text, i) >= min_share:
                last_sep = i
        if last_sep is not None:
            h = last_sep + 1
    if h == 0:
        return HeaderModel()
    lead = ts_end if ts_end and ts_end <= h else min(h, 1)
    sep_within = 0
    if h == ts_end and (h >= p or classes[h] == NAME):  # "[time] program [*64] - message"
        hits = 0
        for line in text:
            toks = _tokens(line, h + 4)
            hits += _sep_after(toks, h, 3) is not None
        if hits >= min_share * len(seqs):
            sep_within = 3
    return HeaderModel(tuple(classes[:h]), lead, sep_within)


def _sep_after(toks: Sequence[re.Match[str]], start: int, within: int) -> int | None:
    """Index of a ``-``/``|`` separator after one to ``within`` name tokens from ``start``."""
    for j in range(start + 1, min(start + within + 1, len(toks))):
        c = _cls(toks[j].group())
        if c == SEP:
            return j if toks[j].group() in ("-", "--", "|") else None
        if c not in (NAME, OTHER):
            return None
    return None


def _same_token_share(lines: Sequence[str], pos: int) -> float:
    """Share of lines whose token at ``pos`` is the most common one there."""
    found = (_tokens(line, pos + 1) for line in lines[:400])
    toks = [t[pos].group() for t in found if len(t) > pos]
    if not toks:
        return 0.0
    return Counter(toks).most_common(1)[0][1] / len(toks)


def _looks_structured(line: str) -> bool:
    """Cheap test for a JSON or logfmt line (the learner skips them)."""
    c = line[0]
    if c == "{":
        return True
    head = line[:40]
    eq = head.find("=")
    return 0 < eq and " " not in head[:eq] and split_structured(line) is not None


def _dotted_share(lines: Sequence[str], pos: int) -> float:
    """Share of text sample lines whose token at ``pos`` is a dotted or path-like name."""
    seen = hit = 0
    for line in lines:
        if seen >= 400:
            break
        toks = _tokens(line, pos + 1)
        if len(toks) <= pos:
            continue
        seen += 1
        tok = toks[pos].group()
        if _DOTTED.fullmatch(tok):
            hit += 1
    return hit / seen if seen else 0.0


# --------------------------------------------------------------------------------------------
# Explicit formats
# --------------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"%\{([^}]*)\}")
_ALIASES = {
    "ts": "timestamp",
    "time": "timestamp",
    "logger": "component",
    "lvl": "level",
    "msg": "message",
}
_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def compile_format(fmt: str, *, field: str = "log_format") -> HeaderModel:
    """An explicit header format, validated (bad format: :class:`InvalidInput` naming why).

    Either placeholders, ``%{timestamp} %{level} [%{thread}] %{component}: %{message}``
    (``%{name}`` matches up to the literal text that follows it; fields ``timestamp``/``ts``,
    ``level``, ``component``/``logger``, ``thread``, ``pid``, ``host``, ``message``/``msg``, any
    other name is matched and ignored; runs of spaces match any whitespace), or a regular
    expression with named groups, one of them ``message``.
    """
    if not isinstance(fmt, str) or not fmt.strip():
        raise InvalidInput("the log format is empty", field=field)
    if len(fmt) > 2000:
        raise InvalidInput("the log format is longer than 2000 characters", field=field)
    if "%{" in fmt:
        parts: list[str] = []
        pos = 0
        names: list[str] = []
        for m in _PLACEHOLDER.finditer(fmt):
            parts.append(_literal(fmt[pos : m.start()]))
            raw = m.group(1).strip()
            if not _NAME_OK.fullmatch(raw):
                raise InvalidInput(
                    f"log format field %{{{raw}}} is not a name", field=field, value=raw
                )
            name = _ALIASES.get(raw, raw)
            if name in names:
                raise InvalidInput(
                    f"log format field %{{{raw}}} appears twice", field=field, value=raw
                )
            names.append(name)
            last = m.end() == len(fmt)
            if name == "message":
                parts.append(r"(?P<message>.*)" if last else r"(?P<message>.*?)")
            else:
                parts.append(f"(?P<{name}>.*?)" if not last else f"(?P<{name}>.*)")
            pos = m.end()
        parts.append(_literal(fmt[pos:]))
        if "message" not in names:
            raise InvalidInput("the log format has no %{message} field", field=field)
        pattern = "".join(parts) + ("" if names[-1] == "message" else r"\s*$")
    else:
        pattern = fmt
    try:
        rx = re.compile(pattern, re.DOTALL)
    except re.error as exc:
        raise InvalidInput(
            f"the log format is not a valid regular expression: {exc}", field=field
        ) from exc
    if "message" not in rx.groupindex:
        raise InvalidInput("the log format has no (?P<message>...) group", field=field)
    return HeaderModel(regex=rx)


def _literal(text: str) -> str:
    out = []
    for chunk in re.split(r"(\s+)", text):
        if not chunk:
            continue
        out.append(r"\s+" if chunk.isspace() else re.escape(chunk))
    return "".join(out)
