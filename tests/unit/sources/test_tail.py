"""Live log sources: Loki's tail WebSocket (against the stand-in served on 127.0.0.1, held to
docs/loki-contract.md) and a growing file (rotation, truncation, partial and long lines)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest

from aiops.errors import BadQuery, DatasourceUnavailable
from aiops.sources.http import RetryPolicy
from aiops.sources.tail import FileTail, LokiTail
from tests.support.fakeloki import FakeLoki, serving
from tests.support.prometheus import free_port

NS = 10**9
FAST = RetryPolicy(attempts=3, initial_seconds=0, max_wait_seconds=0, jitter_seconds=0)


@pytest.fixture
def served_loki() -> Iterator[tuple[FakeLoki, str]]:
    fake = FakeLoki()
    with serving(fake) as url:
        yield fake, url


async def _next(it, timeout: float = 10.0):
    return await asyncio.wait_for(anext(it), timeout)


# --------------------------------------------------------------------------- Loki tail


async def test_tail_sends_recent_entries_then_new_ones_as_they_arrive(served_loki):
    fake, url = served_loki
    now = time.time_ns()
    fake.add({"app": "api"}, now - 5 * NS, "old line")
    fake.add({"app": "db"}, now - 4 * NS, "other stream")
    tail = LokiTail([url], '{app="api"}', start_ns=now - 60 * NS, retry=FAST)
    it = tail.batches()
    first = await _next(it)
    assert first.lines == ["old line"] and first.labels == [{"app": "api"}]
    assert first.timestamps_ns == [now - 5 * NS]
    fake.add({"app": "api"}, now + 1, "new line")
    second = await _next(it)
    assert second.lines == ["new line"]
    await it.aclose()
    assert fake.requests[-1][1]["start"] == str(now - 60 * NS)


async def test_a_closed_tail_reconnects_and_resumes_without_duplicates(served_loki):
    fake, url = served_loki
    now = time.time_ns()
    fake.tail_close_after = [1]  # the first tail closes with 1011 after one message
    fake.add({"app": "api"}, now, "a")
    fake.add({"app": "api"}, now, "b")  # same nanosecond: the resume point
    tail = LokiTail([url], '{app="api"}', start_ns=now - NS, retry=FAST)
    it = tail.batches()
    assert (await _next(it)).lines == ["a", "b"]
    fake.add({"app": "api"}, now + 1, "c")
    resumed = await _next(it)
    # the new tail starts at the last nanosecond seen: a and b again from Loki, dropped here
    assert resumed.lines == ["c"] and any("reconnected" in n for n in resumed.notes)
    assert tail.reconnects == 1
    assert [r[1]["start"] for r in fake.requests if r[0].endswith("/tail")][-1] == str(now)
    await it.aclose()


async def test_dropped_entries_are_counted_and_said(served_loki):
    fake, url = served_loki
    fake.add({"app": "api"}, time.time_ns(), "x")
    fake.tail_drop_next = 3
    tail = LokiTail([url], '{app="api"}', start_ns=time.time_ns() - NS, retry=FAST)
    it = tail.batches()
    batch = await _next(it)
    assert batch.dropped == 3 and tail.dropped == 3 and "dropped 3" in batch.notes[0]
    await it.aclose()


@pytest.mark.parametrize(
    ("query", "params", "message"),
    [
        ("app=api", {}, "parse error"),
        ('sum(count_over_time({app="api"}[5m]))', {}, "tail not supported for metric queries"),
        ('{app="api"}', {"delay_for": 6}, None),
    ],
)
async def test_a_bad_tail_is_a_bad_query_with_lokis_words(served_loki, query, params, message):
    _, url = served_loki
    if message is None:  # refused here, before any request
        with pytest.raises(ValueError, match="delay_for"):
            LokiTail([url], query, retry=FAST, **params)
        return
    with pytest.raises(BadQuery) as err:
        await _next(LokiTail([url], query, retry=FAST).batches())
    assert message in err.value.message and err.value.upstream_status == 400


async def test_failover_to_the_next_url_and_unavailable_when_all_fail(served_loki):
    fake, url = served_loki
    dead = f"http://127.0.0.1:{free_port()}"
    fake.add({"app": "api"}, time.time_ns(), "via the second URL")
    tail = LokiTail([dead, url], '{app="api"}', start_ns=time.time_ns() - 10 * NS, retry=FAST)
    it = tail.batches()
    assert (await _next(it)).lines == ["via the second URL"]
    await it.aclose()
    with pytest.raises(DatasourceUnavailable) as err:
        await _next(LokiTail([dead], '{app="api"}', retry=FAST).batches())
    assert "3 times in a row" in err.value.message


async def test_the_tenant_header_is_sent(served_loki):
    fake, url = served_loki
    fake.require_tenant = "team-a"
    fake.add({"app": "api"}, time.time_ns(), "tenant line")
    it = LokiTail(
        [url], '{app="api"}', tenant="team-a", start_ns=time.time_ns() - NS, retry=FAST
    ).batches()
    assert (await _next(it)).lines == ["tenant line"]
    await it.aclose()


# --------------------------------------------------------------------------- files


def test_a_file_is_followed_from_its_end_with_partial_lines_kept(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("before\n")
    tail = FileTail(path)
    assert tail.read_new() == ([], [])
    with path.open("a") as f:
        f.write("one\ntw")
        f.flush()
        assert tail.read_new() == (["one"], [])
        f.write("o\n")
    assert tail.read_new() == (["two"], [])


def test_rotation_reads_the_old_file_to_its_end_then_follows_the_new_one(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("")
    tail = FileTail(path)
    with path.open("a") as f:
        f.write("last of old\n")
    os.rename(path, tmp_path / "app.log.1")
    assert tail.read_new() == (["last of old"], [])  # still the old file
    assert tail.read_new() == ([], [])  # the new one is not there yet
    path.write_text("first of new\n")
    lines, notes = tail.read_new()
    assert lines == ["first of new"] and "rotated" in notes[0]


def test_truncation_reads_again_from_the_start(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("a long first line\n")
    tail = FileTail(path, from_start=True)
    assert tail.read_new()[0] == ["a long first line"]
    path.write_text("")  # copytruncate
    with path.open("a") as f:
        f.write("x\n")
    lines, notes = tail.read_new()
    assert lines == ["x"] and "truncated" in notes[0]


def test_reads_are_bounded_and_long_lines_cut(tmp_path):
    path = tmp_path / "app.log"
    path.write_text("a" * 100 + "\n" + "b\n" * 50)
    tail = FileTail(path, from_start=True, read_bytes=40, max_line_bytes=30)
    first = tail.read_new()[0]
    assert first == ["a" * 30]  # 40 bytes read: the start of the long line, cut at 30
    got = list(first)
    for _ in range(20):
        got += tail.read_new()[0]
    assert got.count("b") == 50 and all(len(line) <= 30 for line in got)
