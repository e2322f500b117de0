"""Drain-style log template miner, masking, and LogQL for templates.

How a line becomes a template
-----------------------------
1. **Masking** (:func:`mask_line`) replaces variable parts with typed placeholders:
   ``<URL> <EMAIL> <HOST> <PATH> <UUID> <TS> <IP> <SIZE> <DUR> <VER> <HEX> <5xx>
   <NUM>``. Every run of digits ends up inside a
   placeholder (``log4j`` becomes ``log<NUM>j``), which is what makes step 2 exact.
2. **Shapes** (batch path only). The byte scanner (:mod:`aiops.logs.shapes`) computes, with a
   handful of vectorised numpy passes over the whole batch, a *shape key* per line: runs of
   8+ hex-ish characters (``[0-9a-fA-F-]``) collapse to one marker byte and every digit run
   collapses to ``0``.
   Lines with the same key differ only in numbers and ids, so they mask to the same text; each
   shape is masked and classified once (from its first line) and every other line of the shape
   costs a dictionary lookup. This is what makes ``add_many`` fast.
3. **Drain**: the masked text is split on whitespace and routed through a fixed-depth prefix
   tree (token count, then the first ``depth - 2`` tokens) to a leaf holding candidate
   clusters. The most similar template (share of equal tokens, ``<*>`` positions excluded)
   wins if its similarity is at least ``sim_threshold``; differing tokens become ``<*>``.
   Otherwise a new cluster is created.

Template ids
------------
A cluster's id is ``"t" + blake2b(masked text of its first line, 6 bytes).hex()``, fixed at
creation and kept when the template later generalises (tokens turning into ``<*>``). The id is
therefore identical across runs and processes for the same first line, and identical across
miners fed the same lines in any order whenever the lines of a template differ only in masked
values (numbers, ids, IPs, timestamps, paths...). When a template generalises over words, the
id depends on which line came first; persist the miner (:meth:`TemplateMiner.state` /
:meth:`TemplateMiner.from_state`) to keep ids across windows. If a new cluster's id is already
taken by a live cluster, ``-2``, ``-3``, ... is appended.

Memory is bounded: at most ``max_clusters`` clusters (least recently used evicted after each
``add``/``add_many`` call), ``max_examples`` examples per cluster, and shape/masked-text caches
that are cleared when they exceed ``cache_size`` entries.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from aiops.errors import InvalidInput
from aiops.logs.shapes import ShapeScan, shape_keys, shape_scan

__all__ = [
    "AddResult",
    "Batch",
    "Cluster",
    "Shape",
    "ShapeScan",
    "shape_scan",
    "TemplateMiner",
    "mask_line",
    "shape_keys",
    "template_logql",
    "template_to_pattern",
    "MASKS",
    "MAX_LINE_CHARS",
    "WILDCARD",
]

logger = logging.getLogger(__name__)

WILDCARD = "<*>"
MASKS = (
    "<URL>",
    "<EMAIL>",
    "<PATH>",
    "<UUID>",
    "<TS>",
    "<HOST>",
    "<IP>",
    "<SIZE>",
    "<DUR>",
    "<VER>",
    "<HEX>",
    "<NUM>",
)

_STATE_VERSION = 2

# --------------------------------------------------------------------------------------------
# Masking (slow path: once per shape, or per line in ``add``)
# --------------------------------------------------------------------------------------------
_MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
_TLDS = (
    "com|net|org|edu|gov|mil|int|io|co|ai|app|dev|cloud|info|biz|me|tv|xyz|online|site|"
    "local|localdomain|internal|lan|home|corp|svc|"
    "uk|de|fr|jp|cn|hk|ru|br|in|au|ca|nl|se|ch|it|es|kr|tw|pl|eu|us|sg|za|mx|be|at|dk|no|fi|"
    "ie|nz|il|cz|pt|gr|tr|ar|cl|id|my|th|vn|ua|ro|hu"
)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SOURCE_FILES = (
    "java|kt|scala|groovy|py|go|rs|c|cc|cpp|cxx|h|hpp|m|mm|js|mjs|ts|rb|php|cs|swift|erl|ex|exs"
)
_HOST_PORT = re.compile(  # not file:line of a stack frame (Main.java:42, main.go:7)
    r"(?<![\w.-])(?:" + _LABEL + r"\.)+(?!(?:" + _SOURCE_FILES + r"):)"
    r"[A-Za-z][A-Za-z0-9-]{0,62}:\d{1,5}(?![\w.:])"
)
_HOST_NAME = re.compile(r"(?<![\w.-])(?:" + _LABEL + r"\.)+(?:" + _TLDS + r")\.?(?![\w.-])")
_HTTP_5XX = re.compile(  # server errors stay apart: status=<5xx>, "GET / HTTP/1.1" <5xx>
    r"(?P<ctx>(?i:\b(?:status|status_?code|http_?status|code|response))\"?\s?[=:]\s?\"?"
    r"|HTTP/\d(?:\.\d)?\"? )5\d\d(?![\w.])"
)
_UNIT_SIZE = r"(?:bytes?|[KMGTPE]i?B|kB|B)"
_SIZE = re.compile(
    r"(?<![\w.])\d+(?:\.\d+)?\s?" + _UNIT_SIZE + r"(?![\w])"
    r"(?:\s\(\d+(?:\.\d+)?\s?" + _UNIT_SIZE + r"\))?"
)
_UNIT_TIME = r"(?:ns|us|µs|ms|s|m|h|d)"
_DURATION = re.compile(
    r"(?<![\w.])<?\d+(?:\.\d+)?(?:"
    r"\s?(?:msecs?|millis(?:econds?)?|secs?|seconds?|mins?|minutes?|hours?|hrs?|days?)\b"
    r"|(?:" + _UNIT_TIME + r")(?:\d+(?:\.\d+)?" + _UNIT_TIME + r")*(?![\w.])"
    r"|\s(?:ms|s)\b)"
)
_HEXRUN_UUID = re.compile(
    r"-*[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}-*"
)

# (trigger, regex, replacement): a rule runs only when its trigger substring is present
_MASK_RULES: list[tuple[str, re.Pattern[str], Any]] = [
    ("://", re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^\s\"'<>]+"), "<URL>"),
    (
        "@",
        re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+\b"),
        "<EMAIL>",
    ),
    # host:port and DNS names under a common top-level domain (not dotted code names)
    (":", _HOST_PORT, "<HOST>"),
    (".", _HOST_NAME, "<HOST>"),
    ("/", re.compile(r"(?<![\w.:/\\])(?:~|\.{1,2})?(?:/[\w.@%+~,=-]+){2,}/?"), "<PATH>"),
    ("/", re.compile(r"(?<![\w./\\])\.{1,2}/[\w.@%+~,=-]+/?"), "<PATH>"),
    (":\\", re.compile(r"\b[A-Za-z]:\\(?:[^\\\s\"']+\\)*[^\\\s\"']*"), "<PATH>"),
    # glog header keeps its level letter: E0115 10:00:00.123456 -> E<TS>
    (":", re.compile(r"\b([IWEF])\d{4} \d{1,2}:\d{2}:\d{2}(?:\.\d+)?"), r"\1<TS>"),
    (
        "-",
        re.compile(
            r"\d{4}-\d{1,2}-\d{1,2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?"
            r"(?:\s?(?:Z|UTC|[+-]\d{2}:?\d{2})\b|Z)?)?"
        ),
        "<TS>",
    ),
    ("/", re.compile(r"\d{4}/\d{1,2}/\d{1,2}(?: \d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?)?"), "<TS>"),
    (
        "/",
        re.compile(r"\d{1,2}/(?:" + _MONTHS + r")/\d{4}(?::\d{2}:\d{2}:\d{2}(?: [+-]\d{4})?)?"),
        "<TS>",
    ),
    (
        ":",
        re.compile(
            r"\b(?:" + _DAYS + r") (?:" + _MONTHS + r") {1,2}\d{1,2} \d{1,2}:\d{2}:\d{2}"
            r"(?: [A-Z]{3,4})? \d{4}\b"
        ),
        "<TS>",
    ),
    (":", re.compile(r"\b(?:" + _MONTHS + r") {1,2}\d{1,2} \d{1,2}:\d{2}:\d{2}\b"), "<TS>"),
    (":", re.compile(r"(?<![\w:])\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z\b)?"), "<TS>"),
    (
        ":",
        re.compile(
            r"(?<![\w:.])(?:[0-9a-fA-F]{0,4}:){2,7}(?:\d+\.\d+\.\d+\.\d+|[0-9a-fA-F]{0,4})(?![\w:.])"
        ),
        "ipv6",
    ),
    (".", re.compile(r"(?<![\w.])\d+\.\d+\.\d+\.\d+(?::\d+)?(?![\w.])"), "<IP>"),
    ("5", _HTTP_5XX, r"\g<ctx><5xx>"),
    ("", _SIZE, "<SIZE>"),
    ("", _DURATION, "<DUR>"),
    (":", re.compile(r"(?<![\w:.])\d{2}:\d{2}(?![\w:.])"), "<DUR>"),
    (
        ".",
        re.compile(r"(?<![\w.])v?\d+\.\d+\.\d+(?:[-+][0-9A-Za-z][0-9A-Za-z.-]*)?(?![\w.])"),
        "<VER>",
    ),
    ("0", re.compile(r"\b0[xX][0-9a-fA-F]+\b"), "<HEX>"),
    # hex-ish runs, the same definition the shape keys use (8+ chars of [0-9a-fA-F-])
    ("", re.compile(r"(?<![0-9a-fA-F-])[0-9a-fA-F-]{8,}(?![0-9a-fA-F-])"), None),
    ("", re.compile(r"(?<!<)\d+(?:\.\d+)?(?!xx>)"), "<NUM>"),
]

MAX_LINE_CHARS = 4096
"""Lines are masked and classified on their first ``MAX_LINE_CHARS`` characters."""


def _ipv6(m: re.Match[str]) -> str:
    text = m.group(0)
    colons = text.count(":")
    if text.count("::") > 1 or not (("::" in text and colons >= 2) or colons == 7):
        return text
    if not any(c.isdigit() for c in text) and "::" not in text:
        return text
    return "<IP>"


def _hexrun(m: re.Match[str]) -> str:
    run = m.group(0)
    if not any(c.isdigit() for c in run):
        return run
    core = run.strip("-")
    lead = run[: len(run) - len(run.lstrip("-"))]
    tail = run[len(run.rstrip("-")) :]
    if _HEXRUN_UUID.fullmatch(run):
        return lead + "<UUID>" + tail
    if any(c.isalpha() for c in core):
        return lead + "<HEX>" + tail
    return lead + re.sub(r"\d+", "<NUM>", core) + tail


_WS = re.compile(r"\s+")
_MAY_MASK = re.compile(r"[0-9/@\\.]")  # no rule can match a line without one of these


def mask_line(line: str) -> str:
    """Replace the variable parts of ``line`` by placeholders; whitespace becomes one space.

    Lines longer than :data:`MAX_LINE_CHARS` are masked on that prefix followed by ``<*>``.

    >>> mask_line("2024-01-15T10:00:00Z took 250ms from 10.0.0.1:8080 id=3f2a9c8d7e6b5a41")
    '<TS> took <DUR> from <IP> id=<HEX>'
    """
    text = line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS]
    if _MAY_MASK.search(text):
        for trigger, rx, repl in _MASK_RULES:
            if trigger and trigger not in text:
                continue
            if repl is None:
                text = rx.sub(_hexrun, text)
            elif repl == "ipv6":
                text = rx.sub(_ipv6, text)
            else:
                text = rx.sub(repl, text)
    masked = " ".join(text.split())
    return masked + " <*>" if len(line) > MAX_LINE_CHARS else masked


# --------------------------------------------------------------------------------------------
# The miner
# --------------------------------------------------------------------------------------------
_VARIABLE_TOKEN = re.compile(r"<(?:\*|URL|EMAIL|PATH|UUID|TS|IP|HEX|NUM|HOST|SIZE|DUR|VER)>")
_ERROR_SIGNATURE = re.compile(
    r"[A-Za-z](?:Exception|Error|Failure|Fault)\b|\b(?:Exception|Error)\b|^E[A-Z]{3,}[,.:;]?$"
)
_LETTER = re.compile(r"[A-Za-z]")
_SIBLING_POSITIONS = 64
"""Positions (from the start of a template) whose values are counted for generalisation."""
_MAX_ALIASES = 10_000
_LEGACY_CONFIG = ("sim_threshold", "depth", "max_children")


def _is_error_signature(token: str) -> bool:
    """Exception/error class names and errno names: never turned into a variable."""
    return bool(_ERROR_SIGNATURE.search(token))


def _template_key(masked: str) -> tuple[tuple[str, ...], list[str]]:
    """``(key, display tokens)`` of a masked line.

    Every token holding a placeholder is a variable (``<*>`` in the key) and a run of them
    counts as one, so that parameter lists of any length share a key; the display tokens keep
    the masked text (a run joined by spaces) for the template text.
    """
    key: list[str] = []
    shown: list[str] = []
    for tok in masked.split(" ") if masked else ():
        if "<" in tok and _VARIABLE_TOKEN.search(tok):
            if key and key[-1] == WILDCARD:
                shown[-1] = shown[-1] + " " + tok if shown[-1] != WILDCARD else WILDCARD
                continue
            key.append(WILDCARD)
            shown.append(tok)
        else:
            key.append(tok)
            shown.append(tok)
    return tuple(key), shown


@dataclass(frozen=True, slots=True)
class AddResult:
    """What :meth:`TemplateMiner.add` tells about one line."""

    template_id: str
    template: str
    is_new: bool
    count: int


class Cluster:
    """One template: its id, tokens, counts, time span and examples (the miner owns it)."""

    __slots__ = (
        "id",
        "key",
        "tokens",
        "general",
        "count",
        "first_seen",
        "last_seen",
        "examples",
        "last_used",
        "evicted",
        "slot",
        "seq",
        "merged_into",
    )

    def __init__(self, cid: str, key: tuple[str, ...], tokens: list[str], slot: int, seq: int):
        self.id = cid
        self.key = key
        self.tokens = tokens
        self.general: tuple[int, ...] = ()  # positions turned into <*> by generalisation
        self.count = 0
        self.first_seen: int | None = None
        self.last_seen: int | None = None
        self.examples: list[str] = []
        self.last_used = 0
        self.evicted = False
        self.slot = slot
        self.seq = seq
        self.merged_into: Cluster | None = None

    @property
    def template(self) -> str:
        return " ".join(self.tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "template_id": self.id,
            "template": self.template,
            "count": self.count,
            "first_seen_ns": self.first_seen,
            "last_seen_ns": self.last_seen,
            "examples": list(self.examples),
        }


class _Siblings:
    """Templates equal but at one position, and the distinct values seen there (bounded)."""

    __slots__ = ("values", "members")

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.members: list[Cluster] = []


class Shape:
    """All lines with one shape key: the masked text of its first line and its template."""

    __slots__ = ("masked", "cluster", "line")

    def __init__(self, masked: str, cluster: Cluster, line: str) -> None:
        self.masked = masked
        self.cluster = cluster
        self.line = line


@dataclass(slots=True)
class Batch:
    """What :meth:`TemplateMiner.add_batch` returns: the lines grouped by shape, with templates.

    Shape ``u``'s lines are ``order[bounds[u]:bounds[u + 1]]`` (in line order); its template is
    ``slots[shape_slot[u]]``. The slots are those of the miner after the batch (a template that
    merged during the batch points at the survivor).
    """

    line_shape: np.ndarray  # int32, per line: index into shapes
    shapes: list[Shape]
    line_slot: np.ndarray  # int32, per line: cluster slot
    slots: list[Cluster | None]  # slot -> cluster, as of this batch
    order: np.ndarray  # int, line indices grouped by shape
    bounds: np.ndarray  # int64, nshapes + 1 offsets into order
    shape_slot: np.ndarray  # int32, per shape: cluster slot
    shape_lo: np.ndarray | None = None  # int64, per shape: first timestamp (when given)
    shape_hi: np.ndarray | None = None  # int64, per shape: last timestamp (when given)

    def shape_templates(self) -> list[Cluster]:
        """The template of each shape, as of this batch."""
        out = []
        for slot in self.shape_slot.tolist():
            cluster = self.slots[slot]
            assert cluster is not None  # a shape's slot always holds its live template
            out.append(cluster)
        return out


class TemplateMiner:
    """Streaming template miner with stable ids, bounded memory and JSON state.

    ``merge_threshold``: distinct words seen at one position, among templates otherwise equal,
    before that position becomes a variable (``<*>``) and the templates merge.
    ``max_clusters``: live templates kept; least recently used are evicted beyond it.
    ``max_examples``: example lines kept per template.
    ``cache_size``: entries in the shape and masked-text caches before they are cleared.
    """

    def __init__(
        self,
        *,
        merge_threshold: int = 5,
        max_clusters: int = 10_000,
        max_examples: int = 3,
        cache_size: int = 200_000,
    ) -> None:
        if isinstance(merge_threshold, bool) or not isinstance(merge_threshold, int):
            raise InvalidInput("merge_threshold must be an integer", field="merge_threshold")
        if merge_threshold < 2:
            raise InvalidInput("merge_threshold must be at least 2", field="merge_threshold")
        if max_clusters < 1:
            raise InvalidInput("max_clusters must be at least 1", field="max_clusters")
        if max_examples < 0:
            raise InvalidInput("max_examples must not be negative", field="max_examples")
        self.merge_threshold = int(merge_threshold)
        self.max_clusters = int(max_clusters)
        self.max_examples = int(max_examples)
        self.cache_size = int(cache_size)
        self._templates: dict[tuple[str, ...], Cluster] = {}
        self._patterns: dict[int, dict[tuple[int, ...], int]] = {}
        self._siblings: dict[int, Cluster | _Siblings] = {}
        self._by_len: dict[int, dict[str, Cluster]] = {}
        self._by_id: dict[str, Cluster] = {}
        self._aliases: dict[str, str] = {}
        self._slots: list[Cluster | None] = []
        self._free: list[int] = []
        self._tick = 0
        self._seq = 0
        self._shapes: dict[bytes, Shape] = {}
        self._masked: dict[str, Cluster] = {}

    # -- config / state ----------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "merge_threshold": self.merge_threshold,
            "max_clusters": self.max_clusters,
            "max_examples": self.max_examples,
            "cache_size": self.cache_size,
        }

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state: config, templates and the ids merged into others."""
        clusters = sorted(self._by_id.values(), key=lambda c: c.seq)
        return {
            "version": _STATE_VERSION,
            "config": self.config(),
            "tick": self._tick,
            "clusters": [
                {
                    "id": c.id,
                    "key": list(c.key),
                    "tokens": list(c.tokens),
                    "general": list(c.general),
                    "count": c.count,
                    "first_seen": c.first_seen,
                    "last_seen": c.last_seen,
                    "examples": list(c.examples),
                    "last_used": c.last_used,
                }
                for c in clusters
            ],
            "aliases": dict(self._aliases),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], **overrides: Any) -> TemplateMiner:
        """Rebuild a miner from :meth:`state` (this version's or the previous one's).

        ``overrides`` replace config values. Templates from a version 1 state (the Drain
        miner) keep their ids and text.
        """
        if not isinstance(state, Mapping) or "clusters" not in state:
            raise InvalidInput("not a template miner state", field="state")
        version = state.get("version")
        if version not in (1, _STATE_VERSION):
            raise InvalidInput(
                f"unsupported template miner state version {version!r}", field="state"
            )
        raw_config = dict(state.get("config") or {})
        for legacy in _LEGACY_CONFIG:
            raw_config.pop(legacy, None)
        try:
            miner = cls(**{**raw_config, **overrides})
        except TypeError as exc:
            raise InvalidInput(f"corrupt template miner state: {exc}", field="state") from exc
        miner._tick = int(state.get("tick") or 0)
        try:
            for raw in state["clusters"]:
                tokens = [str(t) for t in raw["tokens"]]
                if version == 1:
                    key, tokens = _template_key(" ".join(tokens))
                    general: tuple[int, ...] = tuple(
                        i for i, t in enumerate(tokens) if t == WILDCARD
                    )
                else:
                    key = tuple(str(t) for t in raw["key"])
                    general = tuple(int(i) for i in raw.get("general") or ())
                    if len(key) != len(tokens):
                        raise ValueError("key and tokens differ in length")
                if key in miner._templates:
                    continue
                cluster = miner._new_cluster_obj(str(raw["id"]), key, tokens)
                cluster.general = general
                cluster.count = int(raw.get("count") or 0)
                cluster.first_seen = raw.get("first_seen")
                cluster.last_seen = raw.get("last_seen")
                cluster.examples = [str(e) for e in raw.get("examples") or []][: miner.max_examples]
                cluster.last_used = int(raw.get("last_used") or 0)
                miner._index(cluster, merge=False)
            for old, new in dict(state.get("aliases") or {}).items():
                miner._aliases[str(old)] = str(new)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"corrupt template miner state: {exc}", field="state") from exc
        return miner

    # -- inspection ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._by_id)

    def resolve(self, template_id: str) -> str:
        """The live id for ``template_id``: itself, or the template it was merged into."""
        seen = 0
        while template_id in self._aliases and seen < 64:
            template_id = self._aliases[template_id]
            seen += 1
        return template_id

    def get(self, template_id: str) -> dict[str, Any] | None:
        cluster = self._by_id.get(self.resolve(template_id))
        return None if cluster is None else cluster.to_dict()

    def current_template(self, template_id: str) -> str | None:
        """The text of live template ``template_id`` now (None when merged away or evicted)."""
        cluster = self._by_id.get(template_id)
        return None if cluster is None else cluster.template

    def templates(self) -> list[dict[str, Any]]:
        """All live templates, most frequent first."""
        return [c.to_dict() for c in sorted(self._by_id.values(), key=lambda c: (-c.count, c.id))]

    # -- adding ----------------------------------------------------------------------------------
    def add(self, line: str, timestamp: int | None = None) -> AddResult:
        """Add one line (``timestamp`` in Unix nanoseconds, optional)."""
        self._tick += 1
        masked = mask_line(line)
        cluster, created = self._resolve(masked, line)
        cluster.count += 1
        cluster.last_used = self._tick
        if timestamp is not None:
            ts = int(timestamp)
            cluster.first_seen = ts if cluster.first_seen is None else min(cluster.first_seen, ts)
            cluster.last_seen = ts if cluster.last_seen is None else max(cluster.last_seen, ts)
        result = AddResult(cluster.id, cluster.template, created, cluster.count)
        self._evict()
        return result

    def add_many(self, lines: Sequence[str], timestamps: Any = None) -> list[str]:
        """Add many lines at once; returns the template id of each line.

        ``timestamps``: optional Unix nanoseconds per line (sequence or int64 array).
        Lines differing only in numbers and ids cost one dictionary lookup each. Ids are
        those of the templates as they stand after the whole batch (a template that merged
        into another during the batch reports the survivor's id).
        """
        lines = list(lines) if not isinstance(lines, list) else lines
        batch = self.add_batch(lines, timestamps)
        ids = np.array([c.id if c is not None else "" for c in batch.slots], dtype=object)
        return ids[batch.line_slot].tolist() if len(lines) else []

    def match(self, line: str) -> str | None:
        """The id of the template ``line`` would join, without adding it."""
        masked = mask_line(line)
        cluster = self._masked.get(masked)
        if cluster is not None:
            cluster = self._live(cluster)
            if not cluster.evicted:
                return cluster.id
        key, _shown = _template_key(masked)
        found = self._templates.get(key) or self._fit(key)
        return None if found is None else found.id

    # -- the batch interface -------------------------------------------------------------------
    def add_batch(
        self,
        lines: Sequence[str],
        timestamps: Sequence[int] | np.ndarray | None = None,
        keys: list[bytes] | None = None,
    ) -> Batch:
        """Add a batch; the lines grouped by shape with their templates (the analyzer's input).

        ``timestamps``: optional Unix nanoseconds per line. ``keys``: the lines' shape keys
        (:func:`aiops.logs.shapes.shape_keys`) when the caller already scanned them.
        """
        n = len(lines)
        self._tick += 1
        if n == 0:
            empty = np.zeros(0, np.int32)
            return Batch(empty, [], empty, list(self._slots), empty, np.zeros(1, np.int64), empty)
        if len(self._shapes) > self.cache_size:
            self._shapes.clear()
        if len(self._masked) > self.cache_size:
            self._masked.clear()
        if keys is None:
            keys = shape_keys(lines)
        codes, uniques = pd.factorize(np.array(keys, dtype=object))
        codes = codes.astype(np.int32, copy=False)
        nshapes = len(uniques)
        # lines grouped by shape (stable: line order within a shape)
        order = np.argsort(codes, kind="stable")
        shape_counts = np.bincount(codes, minlength=nshapes)
        bounds = np.zeros(nshapes + 1, np.int64)
        np.cumsum(shape_counts, out=bounds[1:])
        first = order[bounds[:-1]]
        shapes: list[Shape] = []
        get_shape = self._shapes.get
        for u, key in enumerate(uniques):
            shape = get_shape(key)
            if shape is not None and shape.cluster.merged_into is not None:
                shape.cluster = self._live(shape.cluster)
            if shape is None or shape.cluster.evicted:
                line = lines[int(first[u])]
                masked = mask_line(line)
                cluster, _ = self._resolve(masked, line)
                shape = Shape(masked, cluster, line)
                self._shapes[key] = shape
            shapes.append(shape)
        for shape in shapes:  # templates may have merged while this batch was resolved
            if shape.cluster.merged_into is not None:
                shape.cluster = self._live(shape.cluster)
        shape_lo = shape_hi = None
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.int64)
            if ts.shape != (n,):
                raise InvalidInput("timestamps must have one value per line", field="timestamps")
            ts_sorted = ts[order]
            shape_lo = np.minimum.reduceat(ts_sorted, bounds[:-1])
            shape_hi = np.maximum.reduceat(ts_sorted, bounds[:-1])
        need: dict[int, list[int]] = {}
        for u, shape in enumerate(shapes):
            cluster = shape.cluster
            cluster.count += int(shape_counts[u])
            cluster.last_used = self._tick
            if shape_lo is not None and shape_hi is not None:
                a, b = int(shape_lo[u]), int(shape_hi[u])
                cluster.first_seen = a if cluster.first_seen is None else min(cluster.first_seen, a)
                cluster.last_seen = b if cluster.last_seen is None else max(cluster.last_seen, b)
            if len(cluster.examples) < self.max_examples:
                need.setdefault(cluster.slot, []).append(u)
        for slot, us in need.items():
            cluster = self._slots[slot]
            assert cluster is not None
            for u in us:
                lo = int(bounds[u])
                for i in order[lo : min(lo + 4 * self.max_examples, int(bounds[u + 1]))].tolist():
                    if len(cluster.examples) >= self.max_examples:
                        break
                    if lines[i] not in cluster.examples:
                        cluster.examples.append(lines[i])
        shape_slot = np.fromiter((s.cluster.slot for s in shapes), np.int32, nshapes)
        batch = Batch(
            codes,
            shapes,
            shape_slot[codes],
            list(self._slots),
            order,
            bounds,
            shape_slot,
            shape_lo,
            shape_hi,
        )
        self._evict()
        return batch

    _add_batch = add_batch  # the name the analyzer used before the interface was public

    # -- internals -------------------------------------------------------------------------------
    @staticmethod
    def _live(cluster: Cluster) -> Cluster:
        while cluster.merged_into is not None:
            cluster = cluster.merged_into
        return cluster

    def _resolve(self, masked: str, line: str) -> tuple[Cluster, bool]:
        cached = self._masked.get(masked)
        if cached is not None:
            cached = self._live(cached)
            if not cached.evicted:
                return cached, False
        key, shown = _template_key(masked)
        cluster = self._templates.get(key) or self._fit(key)
        created = False
        if cluster is None:
            cluster = self._create(key, shown, masked)
            if len(cluster.examples) < self.max_examples:
                cluster.examples.append(line)
            self._index(cluster, merge=True)
            live = self._live(cluster)
            created = live is cluster
            cluster = live
        else:
            self._widen(cluster, shown)
            if len(cluster.examples) < self.max_examples and line not in cluster.examples:
                cluster.examples.append(line)
        self._masked[masked] = cluster
        return cluster, created

    @staticmethod
    def _widen(cluster: Cluster, shown: Sequence[str]) -> None:
        """Display tokens that differ from the joining line's become ``<*>``."""
        tokens = cluster.tokens
        for i, tok in enumerate(shown):
            if tokens[i] != tok and tokens[i] != WILDCARD:
                tokens[i] = WILDCARD

    def _fit(self, key: tuple[str, ...]) -> Cluster | None:
        """The most specific generalised template that ``key`` fits, if any."""
        patterns = self._patterns.get(len(key))
        if not patterns:
            return None
        best: Cluster | None = None
        for general in patterns:
            if any(key[p] != WILDCARD and _is_error_signature(key[p]) for p in general):
                continue
            probe = list(key)
            for p in general:
                probe[p] = WILDCARD
            found = self._templates.get(tuple(probe))
            if found is not None and (best is None or len(found.general) < len(best.general)):
                best = found
        return best

    def _create(self, key: tuple[str, ...], shown: list[str], masked: str) -> Cluster:
        base = "t" + hashlib.blake2b(masked.encode("utf-8"), digest_size=6).hexdigest()
        cid, n = base, 1
        while cid in self._by_id or cid in self._aliases:
            n += 1
            cid = f"{base}-{n}"
        return self._new_cluster_obj(cid, key, list(shown))

    def _new_cluster_obj(self, cid: str, key: tuple[str, ...], tokens: list[str]) -> Cluster:
        if self._free:
            slot = self._free.pop()
        else:
            slot = len(self._slots)
            self._slots.append(None)
        self._seq += 1
        cluster = Cluster(cid, key, tokens, slot, self._seq)
        cluster.last_used = self._tick
        self._slots[slot] = cluster
        self._by_id[cid] = cluster
        return cluster

    # indexes: template key, generalisation patterns, length, siblings --------------------------
    @staticmethod
    def _sibling_keys(cluster: Cluster) -> list[tuple[int, int, str]]:
        """``(hash, position, word)`` per countable position: the hash is that of the key
        without the position (prefix and suffix hashes, so O(length) in all)."""
        key, n = cluster.key, len(cluster.key)
        upto = min(n, _SIBLING_POSITIONS)
        pre = [0] * (upto + 1)
        for i in range(upto):
            pre[i + 1] = hash((pre[i], key[i]))
        suf = [0] * (n + 1)
        for i in range(n - 1, 0, -1):
            suf[i] = hash((key[i], suf[i + 1]))
        out = []
        for p in range(upto):
            tok = key[p]
            if tok == WILDCARD or _is_error_signature(tok):
                continue
            out.append((hash((n, p, pre[p], suf[p + 1])), p, tok))
        return out

    def _index(self, cluster: Cluster, merge: bool) -> None:
        """Register ``cluster`` everywhere; with ``merge``, generalise when a position has
        shown ``merge_threshold`` distinct words among otherwise equal templates."""
        self._templates[cluster.key] = cluster
        n = len(cluster.key)
        self._by_len.setdefault(n, {})[cluster.id] = cluster
        if cluster.general:
            pats = self._patterns.setdefault(n, {})
            pats[cluster.general] = pats.get(cluster.general, 0) + 1
        trigger: tuple[int, _Siblings] | None = None
        siblings = self._siblings
        for h, p, tok in self._sibling_keys(cluster):
            entry = siblings.get(h)
            if entry is None:  # the common case: no sibling yet, the template itself is kept
                siblings[h] = cluster
                continue
            if isinstance(entry, Cluster):
                sib = siblings[h] = _Siblings()
                sib.members.append(entry)
                sib.values.add(entry.key[p])
            else:
                sib = entry
            sib.members.append(cluster)
            if len(sib.values) < self.merge_threshold:
                sib.values.add(tok)
            if trigger is None and merge and len(sib.values) >= self.merge_threshold:
                trigger = (p, sib)
        if trigger is not None:
            self._generalise(cluster, *trigger)

    def _unindex(self, cluster: Cluster) -> None:
        if self._templates.get(cluster.key) is cluster:
            del self._templates[cluster.key]
        n = len(cluster.key)
        same_len = self._by_len.get(n)
        if same_len is not None:
            same_len.pop(cluster.id, None)
        if cluster.general:
            pats = self._patterns.get(n, {})
            left = pats.get(cluster.general, 0) - 1
            if left > 0:
                pats[cluster.general] = left
            else:
                pats.pop(cluster.general, None)
        siblings = self._siblings
        for h, _p, _tok in self._sibling_keys(cluster):
            entry = siblings.get(h)
            if entry is None:
                continue
            if entry is cluster:
                del siblings[h]
            elif isinstance(entry, _Siblings):
                if cluster in entry.members:
                    entry.members.remove(cluster)
                if not entry.members:
                    del siblings[h]

    def _generalise(self, cluster: Cluster, p: int, sib: _Siblings) -> None:
        """Turn position ``p`` of ``cluster`` and its siblings into ``<*>`` and merge them."""
        rest = cluster.key[:p] + cluster.key[p + 1 :]
        if not any(t != WILDCARD and _LETTER.search(t) for t in rest):
            return  # nothing constant would be left to say what the template is
        members = [
            m
            for m in sib.members
            if not m.evicted and m.merged_into is None and m.key[:p] + m.key[p + 1 :] == rest
        ]
        if not members:
            return
        new_key = rest[:p] + (WILDCARD,) + rest[p:]
        existing = self._templates.get(new_key)
        if existing is not None and existing not in members:
            members.append(existing)
        survivor = min(members, key=lambda c: c.seq)
        for m in members:
            self._unindex(m)
        same_len = self._by_len.get(len(new_key), {})
        for other in list(same_len.values()):  # templates the wider one now covers
            if other not in members and self._covers(new_key, other.key, p):
                self._unindex(other)
                members.append(other)
        survivor.key = new_key
        survivor.general = tuple(sorted(set(survivor.general) | {p}))
        survivor.tokens[p] = WILDCARD
        for m in members:
            if m is not survivor:
                self._absorb(survivor, m)
        self._index(survivor, merge=True)

    @staticmethod
    def _covers(template: tuple[str, ...], key: tuple[str, ...], p: int) -> bool:
        if _is_error_signature(key[p]):
            return False
        return all(t == WILDCARD or t == k for t, k in zip(template, key))

    def _absorb(self, survivor: Cluster, other: Cluster) -> None:
        survivor.count += other.count
        survivor.last_used = max(survivor.last_used, other.last_used)
        if other.first_seen is not None:
            survivor.first_seen = (
                other.first_seen
                if survivor.first_seen is None
                else min(survivor.first_seen, other.first_seen)
            )
        if other.last_seen is not None:
            survivor.last_seen = (
                other.last_seen
                if survivor.last_seen is None
                else max(survivor.last_seen, other.last_seen)
            )
        for ex in other.examples:
            if len(survivor.examples) >= self.max_examples:
                break
            if ex not in survivor.examples:
                survivor.examples.append(ex)
        self._widen(survivor, other.tokens)
        other.merged_into = survivor
        del self._by_id[other.id]
        self._slots[other.slot] = None
        self._free.append(other.slot)
        self._aliases[other.id] = survivor.id
        if len(self._aliases) > _MAX_ALIASES:
            for old in list(self._aliases)[: len(self._aliases) - _MAX_ALIASES]:
                del self._aliases[old]
        logger.debug("template %s merged into %s", other.id, survivor.id)

    def _evict(self) -> None:
        extra = len(self._by_id) - self.max_clusters
        if extra <= 0:
            return
        # make room for a few more at once, so that the sort below is not paid per line
        extra = min(len(self._by_id) - 1, extra + self.max_clusters // 20)
        victims = sorted(self._by_id.values(), key=lambda c: (c.last_used, c.count, c.id))[:extra]
        for cluster in victims:
            cluster.evicted = True
            self._unindex(cluster)
            del self._by_id[cluster.id]
            self._slots[cluster.slot] = None
            self._free.append(cluster.slot)
        logger.debug("evicted %d template clusters (max_clusters=%d)", extra, self.max_clusters)


# --------------------------------------------------------------------------------------------
# LogQL
# --------------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"<\*>|<(?:URL|EMAIL|PATH|UUID|TS|HOST|IP|SIZE|DUR|VER|HEX|NUM|5xx)>")
_LOKI_CAPTURE = re.compile(r"<[A-Za-z_][A-Za-z0-9_]*>")


def template_to_pattern(template: str) -> str:
    """A Loki ``|>`` pattern for a template: every placeholder becomes ``<_>``.

    Loki's pattern lexer reads any ``<identifier>`` as a capture, and line filters allow only
    ``<_>``, so literal text of that form is matched by ``<_>`` too; consecutive captures (not
    allowed by Loki) are merged.
    """
    pieces: list[str] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        pieces.append(_LOKI_CAPTURE.sub("<_>", template[pos : m.start()]))
        pieces.append("<_>")
        pos = m.end()
    pieces.append(_LOKI_CAPTURE.sub("<_>", template[pos:]))
    pattern = "".join(pieces)
    while "<_><_>" in pattern:
        pattern = pattern.replace("<_><_>", "<_>")
    return pattern


def template_logql(template: str, selector: str, range: str = "5m") -> dict[str, str]:
    """Ready-to-run LogQL for one template.

    >>> q = template_logql("<TS> ERROR failed after <NUM>ms", '{app="api"}')
    >>> q["pattern_filter"]
    '{app="api"} |> "<_> ERROR failed after <_>ms"'
    >>> q["metric_query"]
    'sum(count_over_time({app="api"} |> "<_> ERROR failed after <_>ms" [5m]))'
    """
    from aiops.logql import LogQLBuilder

    base = LogQLBuilder((selector or "").strip()).pattern_filter(template_to_pattern(template))
    pattern_filter = str(base)
    return {
        "pattern_filter": pattern_filter,
        "metric_query": str(base.count_over_time(range).aggregate("sum")),
    }
