"""Error types of a log line, and the category taxonomy they fall into.

:func:`extract_error_types` finds exception class names, errno names, gRPC codes, Go runtime
errors, Python tracebacks...; :func:`http_error_types` names a 4xx/5xx status. They read words
only, so the analysis runs them once per *shape* (see :mod:`aiops.logs.shapes`).

Taxonomy (:func:`categorize`): ``network``, ``timeout``, ``resource``, ``auth``,
``dependency``, ``data``, ``application`` (the default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import re2

from aiops.logs.patterns import re2_options

__all__ = ["CATEGORIES", "categorize", "extract_error_types", "http_error_types", "unique_types"]

# exception names run on RE2: linear time even on hostile lines like "a.a.a.a...Exception"
_QUALIFIED_EXC: Any = re2.compile(
    r"\b((?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error|Fault|Throwable))\b", re2_options()
)
_SIMPLE_EXC: Any = re2.compile(r"\b([A-Z][A-Za-z0-9]*(?:Exception|Error))\b", re2_options())
_BARE_EXC: Any = re2.compile(
    r"(?:^|\s)(Exception|Error|KeyboardInterrupt|SystemExit|StopIteration):", re2_options()
)
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
_GO_RUNTIME = re.compile(r"runtime error: ([a-z][a-z /-]*[a-z])")
_GO_PANIC = re.compile(r"(?:^|\s)panic: ")
_GO_FATAL = re.compile(
    r"fatal error: (concurrent map (?:writes|read and map write|iteration and map write)"
    r"|all goroutines are asleep|out of memory|stack overflow|unexpected signal)"
)
_GO_CONTEXT = re.compile(r"\bcontext (deadline exceeded|canceled)\b")
_ERRNO = re.compile(
    r"\b(E(?:CONNREFUSED|CONNRESET|CONNABORTED|TIMEDOUT|HOSTUNREACH|NETUNREACH|NOSPC|NOMEM"
    r"|MFILE|NFILE|ACCES|PERM|NOENT|PIPE|ADDRINUSE|ADDRNOTAVAIL|AI_AGAIN|NOTFOUND|BUSY|EXIST"
    r"|ISDIR|NOTDIR|ROFS|DQUOT|IO|INVAL|NOTCONN|SHUTDOWN|PROTO|DEADLK|AGAIN|HOSTDOWN))\b"
)
_ERRNO_PHRASES = [
    (re.compile(r"connection refused", re.I), "ECONNREFUSED"),
    (re.compile(r"connection reset by peer|connection reset", re.I), "ECONNRESET"),
    (re.compile(r"broken pipe", re.I), "EPIPE"),
    (re.compile(r"no space left on device", re.I), "ENOSPC"),
    (re.compile(r"too many open files", re.I), "EMFILE"),
    (re.compile(r"permission denied", re.I), "EACCES"),
    (re.compile(r"operation not permitted", re.I), "EPERM"),
    (re.compile(r"no such file or directory", re.I), "ENOENT"),
    (re.compile(r"cannot allocate memory", re.I), "ENOMEM"),
    (re.compile(r"network is unreachable", re.I), "ENETUNREACH"),
    (re.compile(r"no route to host", re.I), "EHOSTUNREACH"),
    (re.compile(r"address already in use", re.I), "EADDRINUSE"),
    (re.compile(r"\bi/o timeout\b|connection timed out|operation timed out", re.I), "ETIMEDOUT"),
    (
        re.compile(
            r"\bno such host\b|name or service not known|temporary failure in name resolution", re.I
        ),
        "ENOTFOUND",
    ),
    (re.compile(r"disk quota exceeded", re.I), "EDQUOT"),
    (re.compile(r"read-only file system", re.I), "EROFS"),
]
_GRPC_CODES = (
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
_GRPC_SET = frozenset(_GRPC_CODES)
_GRPC_CONTEXT = re.compile(
    r"\bcode\s*=\s*([A-Z][A-Za-z]+)\b"  # grpc-go: rpc error: code = Unavailable desc = ...
    r"|\bgrpc[._-]?(?:status[._-]?)?code[\"']?\s*[=:]\s*[\"']?([A-Za-z_]+)\b"
    r"|\bStatusCode\.([A-Z_]+)\b"  # grpc-python
    r"|\bStatus\{code=([A-Z_]+)\b"  # grpc-java
    r"|\b([A-Z_]{7,}):"  # grpc-java: UNAVAILABLE: io exception
    r"|\b(DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|PERMISSION_DENIED|UNAUTHENTICATED|FAILED_PRECONDITION)\b"
)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def _grpc_name(raw: str) -> str | None:
    name = raw if raw.isupper() else _CAMEL.sub("_", raw).upper()
    if name == "CANCELED":
        name = "CANCELLED"
    return name if name in _GRPC_SET else None


def extract_error_types(line: str) -> list[str]:
    """Error type names found in a line, each once, in order of appearance.

    Exception classes as written (``java.net.ConnectException``, ``ValueError``,
    ``System.TimeoutException``), ``Traceback``, Go ``runtime error: ...``/``panic``/
    ``context.DeadlineExceeded``, errno names (also from their messages: "connection refused"
    -> ``ECONNREFUSED``) and gRPC codes (``grpc.UNAVAILABLE``). HTTP statuses are values; see
    :func:`http_error_types`.
    """
    found: dict[str, None] = {}
    covered: list[tuple[int, int]] = []
    for m in _QUALIFIED_EXC.finditer(line):
        found.setdefault(m.group(1))
        covered.append(m.span(1))
    for m in _SIMPLE_EXC.finditer(line):
        s, e = m.span(1)
        if not any(a <= s and e <= b for a, b in covered):
            found.setdefault(m.group(1))
    for m in _BARE_EXC.finditer(line):
        found.setdefault(m.group(1))
    if _TRACEBACK.search(line):
        found.setdefault("Traceback")
    m = _GO_RUNTIME.search(line)
    if m:
        found.setdefault("runtime error: " + m.group(1))
    elif _GO_PANIC.search(line):
        found.setdefault("panic")
    m = _GO_FATAL.search(line)
    if m:
        found.setdefault("fatal error: " + m.group(1))
    for m in _GO_CONTEXT.finditer(line):
        found.setdefault(
            "context.DeadlineExceeded" if m.group(1).startswith("deadline") else "context.Canceled"
        )
    for m in _ERRNO.finditer(line):
        found.setdefault(m.group(1))
    for rx, name in _ERRNO_PHRASES:
        if rx.search(line):
            found.setdefault(name)
    for m in _GRPC_CONTEXT.finditer(line):
        raw = next(g for g in m.groups() if g)
        name = _grpc_name(raw)
        if name:
            found.setdefault("grpc." + name)
    return list(found)


def http_error_types(status: int) -> list[str]:
    """``["http_5xx", "http_503"]`` for a 5xx status, likewise 4xx; ``[]`` otherwise."""
    if 400 <= status <= 599:
        return [f"http_{status // 100}xx", f"http_{status}"]
    return []


# ---------------------------------------------------------------------------------------------
# Taxonomy
# ---------------------------------------------------------------------------------------------
CATEGORIES = ("network", "timeout", "resource", "auth", "dependency", "data", "application")

_EXACT_CATEGORY = {
    # errno
    "ECONNREFUSED": "network",
    "ECONNRESET": "network",
    "ECONNABORTED": "network",
    "EHOSTUNREACH": "network",
    "ENETUNREACH": "network",
    "EPIPE": "network",
    "ENOTFOUND": "network",
    "EAI_AGAIN": "network",
    "EADDRINUSE": "network",
    "EADDRNOTAVAIL": "network",
    "ENOTCONN": "network",
    "ESHUTDOWN": "network",
    "EPROTO": "network",
    "EHOSTDOWN": "network",
    "ETIMEDOUT": "timeout",
    "ENOSPC": "resource",
    "ENOMEM": "resource",
    "EMFILE": "resource",
    "ENFILE": "resource",
    "EDQUOT": "resource",
    "EAGAIN": "resource",
    "EBUSY": "resource",
    "EIO": "resource",
    "EROFS": "resource",
    "EACCES": "auth",
    "EPERM": "auth",
    "ENOENT": "data",
    "EEXIST": "data",
    "EISDIR": "data",
    "ENOTDIR": "data",
    "EINVAL": "data",
    "EDEADLK": "application",
    # gRPC
    "grpc.UNAVAILABLE": "dependency",
    "grpc.DEADLINE_EXCEEDED": "timeout",
    "grpc.RESOURCE_EXHAUSTED": "resource",
    "grpc.PERMISSION_DENIED": "auth",
    "grpc.UNAUTHENTICATED": "auth",
    "grpc.INVALID_ARGUMENT": "data",
    "grpc.FAILED_PRECONDITION": "data",
    "grpc.OUT_OF_RANGE": "data",
    "grpc.NOT_FOUND": "data",
    "grpc.ALREADY_EXISTS": "data",
    "grpc.DATA_LOSS": "data",
    "grpc.INTERNAL": "application",
    "grpc.UNKNOWN": "application",
    "grpc.UNIMPLEMENTED": "application",
    "grpc.ABORTED": "application",
    "grpc.CANCELLED": "application",
    # Go / Python specials
    "context.DeadlineExceeded": "timeout",
    "context.Canceled": "application",
    "Traceback": "application",
    "panic": "application",
    "fatal error: out of memory": "resource",
    "fatal error: stack overflow": "resource",
    "MemoryError": "resource",
    "RecursionError": "resource",
    "KeyError": "data",
    "ValueError": "data",
    "IndexError": "application",
    "TypeError": "application",
    "AttributeError": "application",
    "ZeroDivisionError": "application",
    "PermissionError": "auth",
    "ConnectionError": "network",
    "BrokenPipeError": "network",
    "ConnectionRefusedError": "network",
    "ConnectionResetError": "network",
    "ConnectionAbortedError": "network",
    "TimeoutError": "timeout",
    "FileNotFoundError": "data",
    "OSError": "resource",
}
_HTTP_CATEGORY = {
    401: "auth",
    403: "auth",
    407: "auth",
    408: "timeout",
    429: "resource",
    502: "dependency",
    503: "dependency",
    504: "timeout",
}
# checked on the simple class name first, then (for dependency) on the package
_KEYWORD_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("timeout", ("timeout", "timedout", "deadline")),
    (
        "auth",
        (
            "auth",
            "permission",
            "accessdenied",
            "forbidden",
            "unauthori",
            "security",
            "credential",
            "login",
            "token",
            "certificate",
            "signature",
        ),
    ),
    (
        "resource",
        (
            "outofmemory",
            "memory",
            "resource",
            "quota",
            "ratelimit",
            "throttl",
            "exhausted",
            "toomany",
            "nospace",
            "diskfull",
            "stackoverflow",
            "rejectedexecution",
            "capacity",
            "overload",
        ),
    ),
    (
        "network",
        (
            "connect",
            "socket",
            "network",
            "unknownhost",
            "noroute",
            "dns",
            "ssl",
            "tls",
            "handshake",
            "brokenpipe",
            "unreachable",
            "closedchannel",
            "eof",
        ),
    ),
    (
        "dependency",
        (
            "sql",
            "jdbc",
            "database",
            "redis",
            "kafka",
            "mongo",
            "elastic",
            "cassandra",
            "rabbit",
            "amqp",
            "grpc",
            "rpc",
            "http",
            "upstream",
            "unavailable",
            "circuit",
            "remote",
            "feign",
            "retryable",
            "transient",
        ),
    ),
    (
        "data",
        (
            "parse",
            "format",
            "json",
            "xml",
            "yaml",
            "decode",
            "encode",
            "serializ",
            "validation",
            "invalid",
            "illegalargument",
            "notfound",
            "nosuch",
            "missing",
            "schema",
            "constraint",
            "integrity",
            "unicode",
            "mismatch",
            "duplicate",
            "conversion",
            "datatype",
            "value",
        ),
    ),
]


_DEPENDENCY_PACKAGES = (
    "grpc",
    "sql",
    "jdbc",
    "redis",
    "kafka",
    "mongo",
    "elasticsearch",
    "http",
    "psycopg",
    "boto",
    "amqp",
    "cassandra",
)


def categorize(error_type: str) -> str:
    """The taxonomy category of an error type name (``application`` when nothing fits)."""
    exact = _EXACT_CATEGORY.get(error_type)
    if exact:
        return exact
    if error_type.startswith("http_") and error_type[5:].isdigit():
        code = int(error_type[5:])
        return _HTTP_CATEGORY.get(code, "data" if code < 500 else "application")
    if error_type.startswith("http_") and error_type.endswith("xx"):
        return "data" if error_type[5] == "4" else "application"
    if error_type.startswith("runtime error: "):
        return "application"
    simple = error_type.rsplit(".", 1)[-1].lower()
    for category, words in _KEYWORD_RULES:
        if any(w in simple for w in words):
            return category
    package = error_type.rsplit(".", 1)[0].lower() if "." in error_type else ""
    if package and any(w in package for w in _DEPENDENCY_PACKAGES):
        return "dependency"
    return "application"


def unique_types(types: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(types))
