"""Extractor tables: levels, error types, taxonomy, durations, sizes, HTTP statuses."""

from __future__ import annotations

import pytest

from aiops.logs import (
    categorize,
    detect_level,
    extract_durations,
    extract_error_types,
    extract_http_statuses,
    extract_sizes,
)


@pytest.mark.parametrize(
    ("line", "ms"),
    [
        ("took 250ms", [250.0]),
        ("duration=1.2s", [1200.0]),
        ("latency: 35 ms", [35.0]),
        ('{"duration_ms":12.5}', [12.5]),
        ('{"latency":"1m2.5s"}', [62500.0]),
        ("elapsed=2m0s", [120000.0]),
        ("done in 1h2m3s", [3723000.0]),
        ("retry in 5 seconds", [5000.0]),
        ("waited 1.5 minutes", [90000.0]),
        ("request_time=0.045", [45.0]),
        ("upstream_response_time=1.250", [1250.0]),
        ("took 250µs then 3ns then 4us", [0.25, 3e-6, 0.004]),
        ("elapsed_seconds=2", [2000.0]),
        ("processingTimeMs=17", [17.0]),
        ("took=42", [42.0]),
        ("took 0.0035s and 007ms", [3.5, 7.0]),
        ("duration_ns=123456789", [123.456789]),
        ("v2 k8s abc5ms 0x1B http2 404", []),
        ("ts=2024-01-15T10:00:00.123Z level=info", []),
    ],
)
def test_durations_table(line: str, ms: list[float]) -> None:
    assert extract_durations(line) == pytest.approx(ms)


@pytest.mark.parametrize(
    ("line", "size"),
    [
        ("size=1.5MB", [1.5e6]),
        ("bytes=1024", [1024.0]),
        ("mem=512Mi", [512 * 1024.0**2]),
        ("wrote 2 GB", [2e9]),
        ("heap=1.5GiB", [1.5 * 1024.0**3]),
        ("payload_kb=3", [3000.0]),
        ('"GET / HTTP/1.1" 200 5123 "-"', [5123.0]),
        ('{"bytes_sent": 77}', [77.0]),
        ("batch_size=100 pool_size=4", []),
    ],
)
def test_sizes_table(line: str, size: list[float]) -> None:
    assert extract_sizes(line) == pytest.approx(size)


@pytest.mark.parametrize(
    ("line", "statuses"),
    [
        ('10.0.0.1 - - [x] "GET / HTTP/1.1" 503 12 "-"', [503]),
        ('"GET / HTTP/1.1" 200 12', []),
        ("status=404", [404]),
        ('{"status":502}', [502]),
        ("HTTP/1.1 500 Internal Server Error", [500]),
        ("status_code=429 then statusCode: 504", [429, 504]),
        ("status=200 status=302", []),
        ("took 503ms", []),
    ],
)
def test_http_status_table(line: str, statuses: list[int]) -> None:
    assert extract_http_statuses(line) == statuses


@pytest.mark.parametrize(
    ("line", "level"),
    [
        ("2024-01-15 10:00:00 ERROR [main] boom", "error"),
        ("2024-01-15 10:00:00 WARN something", "warn"),
        ("2024-01-15 10:00:00 WARNING something", "warn"),
        ("INFO request error count=3", "info"),
        ('{"level":"warn","msg":"x"}', "warn"),
        ('{"severity":"CRITICAL","msg":"x"}', "fatal"),
        ('{"log.level":"error"}', "error"),
        ("level=error msg=boom", "error"),
        ("lvl=dbug msg=x", "debug"),
        ("E0115 10:00:00.123456 1 main.go:7] boom", "error"),
        ("W0115 10:00:00.123456 1 main.go:7] hmm", "warn"),
        ("2024/01/15 10:00:00 [error] 1#0: connect() failed", "error"),
        ("panic: runtime error: index out of range", "fatal"),
        ("Traceback (most recent call last):", "error"),
        ("FATAL: password authentication failed", "fatal"),
        ("SEVERE: Servlet threw exception", "error"),
        ("Error: ENOENT: no such file", "error"),
        ("\tat com.x.Y(Y.java:1)", "unknown"),
        ("KeyError: 'x'", "unknown"),
    ],
)
def test_levels_table(line: str, level: str) -> None:
    assert detect_level(line)[0] == level


def test_numeric_pino_levels_are_flagged() -> None:
    assert detect_level('{"level":50,"msg":"x"}') == ("error", True)
    assert detect_level('{"level":30,"msg":"x"}') == ("info", True)


@pytest.mark.parametrize(
    ("line", "types"),
    [
        (
            "java.net.ConnectException: Connection refused",
            ["java.net.ConnectException", "ECONNREFUSED"],
        ),
        (
            "Caused by: java.net.SocketTimeoutException: Read timed out",
            ["java.net.SocketTimeoutException"],
        ),
        ("ValueError: invalid literal", ["ValueError"]),
        ("KeyError: 'user'", ["KeyError"]),
        ("Traceback (most recent call last):", ["Traceback"]),
        ("Exception: boom", ["Exception"]),
        (
            "panic: runtime error: index out of range [5] with length 3",
            ["runtime error: index out of range"],
        ),
        ("panic: something bad", ["panic"]),
        ("fatal error: concurrent map writes", ["fatal error: concurrent map writes"]),
        ("query failed: context deadline exceeded", ["context.DeadlineExceeded"]),
        ("request aborted: context canceled", ["context.Canceled"]),
        ("System.TimeoutException: The operation has timed out.", ["System.TimeoutException"]),
        ("rpc error: code = Unavailable desc = x", ["grpc.UNAVAILABLE"]),
        ("rpc error: code = DeadlineExceeded desc = x", ["grpc.DEADLINE_EXCEEDED"]),
        (
            "io.grpc.StatusRuntimeException: PERMISSION_DENIED: nope",
            ["io.grpc.StatusRuntimeException", "grpc.PERMISSION_DENIED"],
        ),
        ("grpc_code=ResourceExhausted", ["grpc.RESOURCE_EXHAUSTED"]),
        ("grpc_code=OK", []),
        ("status: StatusCode.UNAUTHENTICATED", ["grpc.UNAUTHENTICATED"]),
        ("write /data: no space left on device", ["ENOSPC"]),
        ("error: EACCES opening file", ["EACCES"]),
        ("accept: too many open files", ["EMFILE"]),
        ("dial tcp: lookup db: no such host", ["ENOTFOUND"]),
        ("read tcp 1.2.3.4:5->6.7.8.9:10: i/o timeout", ["ETIMEDOUT"]),
        ("all good here", []),
        ("SERVICE UNAVAILABLE", []),
    ],
)
def test_error_types_table(line: str, types: list[str]) -> None:
    assert extract_error_types(line) == types


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("ECONNREFUSED", "network"),
        ("java.net.ConnectException", "network"),
        ("java.net.UnknownHostException", "network"),
        ("ETIMEDOUT", "timeout"),
        ("java.net.SocketTimeoutException", "timeout"),
        ("System.TimeoutException", "timeout"),
        ("context.DeadlineExceeded", "timeout"),
        ("grpc.DEADLINE_EXCEEDED", "timeout"),
        ("http_504", "timeout"),
        ("ENOSPC", "resource"),
        ("java.lang.OutOfMemoryError", "resource"),
        ("grpc.RESOURCE_EXHAUSTED", "resource"),
        ("http_429", "resource"),
        ("EACCES", "auth"),
        ("grpc.UNAUTHENTICATED", "auth"),
        ("org.springframework.security.access.AccessDeniedException", "auth"),
        ("http_401", "auth"),
        ("grpc.UNAVAILABLE", "dependency"),
        ("http_503", "dependency"),
        ("java.sql.SQLException", "dependency"),
        ("redis.clients.jedis.exceptions.JedisDataException", "dependency"),
        ("ValueError", "data"),
        ("com.fasterxml.jackson.core.JsonParseException", "data"),
        ("java.lang.IllegalArgumentException", "data"),
        ("http_404", "data"),
        ("java.lang.NullPointerException", "application"),
        ("runtime error: index out of range", "application"),
        ("http_500", "application"),
        ("SomethingWeirdError", "application"),
    ],
)
def test_taxonomy_table(name: str, category: str) -> None:
    assert categorize(name) == category
