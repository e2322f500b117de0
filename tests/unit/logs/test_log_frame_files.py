"""The log frame shape, timestamp parsing, and local log files."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiops.errors import InvalidInput
from aiops.logs import COLUMNS, from_lines
from aiops.logs.frame import _parse_per_line, _parse_vectorised, validate_frame
from aiops.sources.files import iter_log_file, read_log_file

DEFAULT = pd.Timestamp("2030-01-01T00:00:00Z")


def _check_shape(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == list(COLUMNS)
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(isinstance(x, dict) for x in frame["labels"])
    assert all(isinstance(x, str) for x in frame["line"])


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("2024-01-15T10:00:00Z boot", "2024-01-15T10:00:00Z"),
        ("2024-01-15T10:00:00.123456789+02:00 boot", "2024-01-15T08:00:00.123456789Z"),
        ("2024-01-15 10:00:00,250 INFO x", "2024-01-15T10:00:00.250Z"),
        ("2024-01-15 10:00:00 INFO x", "2024-01-15T10:00:00Z"),
        ("[2024-01-15 10:00:00] x", "2024-01-15T10:00:00Z"),
        ("2024/01/15 10:00:00 [error] 1#0: x", "2024-01-15T10:00:00Z"),
        ('1.2.3.4 - - [15/Jan/2024:10:00:00 +0100] "GET / HTTP/1.1" 200 1', "2024-01-15T09:00:00Z"),
        ('{"ts":"2024-01-15T10:00:00.5Z","msg":"x"}', "2024-01-15T10:00:00.5Z"),
        ('{"msg":"x","@timestamp":"2024-01-15T10:00:00Z"}', "2024-01-15T10:00:00Z"),
        ('{"time":1705312800.25,"msg":"x"}', "2024-01-15T10:00:00.25Z"),
        ('{"timestamp":1705312800123,"msg":"x"}', "2024-01-15T10:00:00.123Z"),
        ("ts=2024-01-15T10:00:00Z level=info", "2024-01-15T10:00:00Z"),
        ('level=info time="2024-01-15 10:00:00" msg=x', "2024-01-15T10:00:00Z"),
        ("level=info ts=1705312800 msg=x", "2024-01-15T10:00:00Z"),
        ("Jan 15 10:00:00 host sshd[1]: x", "2030-01-15T10:00:00Z"),
        ("E0115 10:00:00.500000 1 main.go:1] x", "2030-01-15T10:00:00.5Z"),
        ("no time here", "2030-01-01T00:00:00Z"),
        ("2024-99-99 10:00:00 broken", "2030-01-01T00:00:00Z"),
    ],
)
def test_from_lines_parses_timestamps(line: str, expected: str) -> None:
    frame = from_lines([line], default_time=DEFAULT)
    _check_shape(frame)
    assert frame["timestamp"].iloc[0] == pd.Timestamp(expected)


def test_from_lines_shares_labels_and_keeps_lines() -> None:
    frame = from_lines(["a", "b\r\n"], labels={"app": "api"}, default_time="2024-01-01")
    _check_shape(frame)
    assert frame["labels"].tolist() == [{"app": "api"}, {"app": "api"}]
    assert frame["line"].tolist() == ["a", "b"]


def test_from_lines_defaults_to_now() -> None:
    before = pd.Timestamp.now(tz="UTC")
    frame = from_lines(["x"])
    assert frame["timestamp"].iloc[0] >= before.floor("s")


@pytest.mark.parametrize(
    ("lines", "kwargs"),
    [
        ("a single string", {}),
        (["ok", 3], {}),
        (["ok"], {"labels": ["not", "a", "mapping"]}),
        (["ok"], {"default_time": "not a time"}),
        (["ok"], {"fmt": "xml"}),
    ],
)
def test_from_lines_rejects_bad_input(lines: object, kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        from_lines(lines, **kwargs)  # type: ignore[arg-type]


def test_fmt_narrows_where_timestamps_are_read() -> None:
    line = "2024-01-15T10:00:00Z ts=2023-05-05T00:00:00Z"
    assert from_lines([line], fmt="text")["timestamp"].iloc[0] == pd.Timestamp(
        "2024-01-15T10:00:00Z"
    )
    assert from_lines([line], fmt="logfmt")["timestamp"].iloc[0] == pd.Timestamp(
        "2023-05-05T00:00:00Z"
    )


def test_validate_frame_checks_columns_and_converts_time() -> None:
    with pytest.raises(InvalidInput, match="line"):
        validate_frame(pd.DataFrame({"timestamp": []}))
    naive = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01"]), "line": ["x"]})
    assert str(validate_frame(naive)["timestamp"].dtype) == "datetime64[ns, UTC]"


# -- files ------------------------------------------------------------------------------------
def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_read_plain_text_file(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "app.log",
        "2024-01-15 10:00:00 ERROR boom\r\n\tat a.B(B.java:1)\r\n\r\n"
        "2024-01-15 10:00:05 INFO ok\r\n",
    )
    frame = read_log_file(path, labels={"app": "shop"})
    _check_shape(frame)
    assert frame["line"].tolist() == [
        "2024-01-15 10:00:00 ERROR boom",
        "\tat a.B(B.java:1)",
        "2024-01-15 10:00:05 INFO ok",
    ]
    # the continuation line takes its entry's time
    assert frame["timestamp"].tolist() == [
        pd.Timestamp("2024-01-15T10:00:00Z"),
        pd.Timestamp("2024-01-15T10:00:00Z"),
        pd.Timestamp("2024-01-15T10:00:05Z"),
    ]
    assert frame["labels"].iloc[0] == {"filename": str(path), "app": "shop"}


def test_gzip_is_detected_by_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "no-extension"
    path.write_bytes(gzip.compress(b'{"ts":"2024-01-15T10:00:00Z","msg":"hi"}\n'))
    frame = read_log_file(path, fmt="json")
    assert frame["line"].tolist() == ['{"ts":"2024-01-15T10:00:00Z","msg":"hi"}']
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-01-15T10:00:00Z")


def test_undecodable_bytes_are_replaced(tmp_path: Path) -> None:
    path = _write(tmp_path / "bin.log", b"2024-01-15 10:00:00 bad \xff\xfe bytes\n")
    frame = read_log_file(path)
    assert frame["line"].iloc[0] == "2024-01-15 10:00:00 bad \ufffd\ufffd bytes"


def test_lines_before_any_timestamp_take_the_file_time(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.log", "starting\n2024-01-15 10:00:00 go\n")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    frame = read_log_file(path)
    assert frame["timestamp"].iloc[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")


def test_missing_file_directory_and_bad_fmt_are_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        read_log_file(tmp_path / "nope.log")
    with pytest.raises(InvalidInput, match="directory"):
        read_log_file(tmp_path)
    path = _write(tmp_path / "a.log", "hello\n")
    with pytest.raises(InvalidInput, match="fmt"):
        read_log_file(path, fmt="xml")
    with pytest.raises(InvalidInput, match="JSON"):
        read_log_file(path, fmt="json")
    with pytest.raises(InvalidInput, match="logfmt"):
        read_log_file(path, fmt="logfmt")


def test_truncated_gzip_is_invalid_input(tmp_path: Path) -> None:
    data = gzip.compress(b"2024-01-15 10:00:00 x\n" * 1000)
    path = _write(tmp_path / "cut.gz", data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="gzip"):
        read_log_file(path)


def test_empty_file_gives_an_empty_frame(tmp_path: Path) -> None:
    frame = read_log_file(_write(tmp_path / "empty.log", ""))
    assert len(frame) == 0 and list(frame.columns) == list(COLUMNS)


def test_streaming_chunks_add_up_to_the_whole_file(tmp_path: Path) -> None:
    lines = [f"2024-01-15 10:{i // 60:02d}:{i % 60:02d} INFO n={i}" for i in range(250)]
    path = _write(tmp_path / "big.log", "\n".join(lines))
    chunks = list(iter_log_file(path, chunk_lines=100))
    assert [len(c) for c in chunks] == [100, 100, 50]
    whole = read_log_file(path)
    assert pd.concat(chunks, ignore_index=True).equals(whole)


def test_multiline_joins_continuation_lines(tmp_path: Path) -> None:
    text = (
        "2024-01-15 10:00:00 ERROR failed\n"
        "java.lang.IllegalStateException: boom\n"
        "\tat a.B(B.java:1)\n"
        "2024-01-15 10:00:01 INFO next\n"
    )
    path = _write(tmp_path / "ml.log", text)
    for chunk_lines in (1, 2, 100):
        frames = list(iter_log_file(path, multiline=True, chunk_lines=chunk_lines))
        frame = pd.concat(frames, ignore_index=True)
        assert frame["line"].tolist() == [
            "2024-01-15 10:00:00 ERROR failed\n"
            "java.lang.IllegalStateException: boom\n\tat a.B(B.java:1)",
            "2024-01-15 10:00:01 INFO next",
        ]


# -- the vectorised timestamp parser equals the per-line reference -----------------------------
_WHEN = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 12, 31),
    timezones=st.just(UTC),
)


def _render(kind: int, when: datetime, offset: int, frac: int, digits: int) -> str:
    f = f"{frac:0{digits}d}"[:digits]
    sign = "+" if offset >= 0 else "-"
    oh, om = divmod(abs(offset), 60)
    local = when + timedelta(minutes=offset)
    return [
        f"{when:%Y-%m-%dT%H:%M:%S}.{f}Z level=info took 5ms",
        f"{local:%Y-%m-%dT%H:%M:%S}{sign}{oh:02d}:{om:02d} INFO job done",
        f"{local:%Y-%m-%d %H:%M:%S},{f} {sign}{oh:02d}{om:02d} WARN slow",
        f"{when:%Y/%m/%d %H:%M:%S} [error] 1#0: boom",
        f'1.2.3.4 - - [{local:%d/%b/%Y:%H:%M:%S} {sign}{oh:02d}{om:02d}] "GET / HTTP/1.1" 200 5',
        f'{{"ts":"{when:%Y-%m-%dT%H:%M:%S}.{f}Z","level":"info","n":{frac}}}',
        f'{{"time":{int(when.timestamp())}.{f},"msg":"x"}}',
        f'{{"timestamp":{int(when.timestamp() * 1000)},"msg":"x"}}',
        f"ts={when:%Y-%m-%dT%H:%M:%S}Z level=debug msg=tick n={frac}",
        f"level=info ts={int(when.timestamp())} msg=x",
        f"{when:%b} {when.day:2d} {when:%H:%M:%S} host app[{frac}]: hello",
        f"I{when:%m%d} {when:%H:%M:%S}.{f} 1 main.go:1] hi",
        f"no timestamp {frac}",
    ][kind]


@settings(max_examples=10, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 12),
            _WHEN,
            st.integers(-720, 840),
            st.integers(0, 999_999_999),
            st.integers(1, 9),
        ),
        min_size=300,
        max_size=400,
    )
)
def test_vectorised_timestamps_equal_the_per_line_parser(rows: list[tuple]) -> None:
    lines = [_render(*row) for row in rows]
    fast = _parse_vectorised(lines, "auto", 2024)
    slow = _parse_per_line(lines, "auto", 2024)
    assert fast.tolist() == slow.tolist()
