"""Masking, the Drain-style miner (ids, state, bounds) and LogQL for templates."""

from __future__ import annotations

import json
import random

import pytest

from aiops.errors import InvalidInput
from aiops.logs import TemplateMiner, mask_line, template_logql
from aiops.logs.templates import MAX_LINE_CHARS, shape_keys, template_to_pattern


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("took 250ms", "took <DUR>"),
        ("took 1.5 seconds and 2 s", "took <DUR> and <DUR>"),
        ("lifetime <1 sec, up 00:07, elapsed 1h2m3.5s", "lifetime <DUR>, up <DUR>, elapsed <DUR>"),
        ("sent 5248 bytes (5.12 KB) and 12 MB", "sent <SIZE> and <SIZE>"),
        ("connect to proxy.example.co.uk:5070 and db-1.svc:5432", "connect to <HOST> and <HOST>"),
        ("resolve www.example.com failed", "resolve <HOST> failed"),
        ("at com.acme.Main.run(Main.java:42)", "at com.acme.Main.run(Main.java:<NUM>)"),
        ("running v1.2.3-rc1 and 2.10.0", "running <VER> and <VER>"),
        ("load ./runtime_malloc failed", "load <PATH> failed"),
        ("status: 200 then status=503", "status: <NUM> then status=<5xx>"),
        ('"GET /a HTTP/1.1" 502 17', '"GET /a HTTP/<NUM>" <5xx> <NUM>'),
        ("Thu Jun  9 06:23:40 PDT 2005 status", "<TS> status"),
        ("user 42 logged in", "user <NUM> logged in"),
        ("from 10.0.0.1:8080 to 192.168.1.20", "from <IP> to <IP>"),
        ("peer fe80::1 and 2001:db8::8a2e:370:7334", "peer <IP> and <IP>"),
        ("id=123e4567-e89b-12d3-a456-426614174000", "id=<UUID>"),
        ("trace=4bf92f3577b34da6a3ce929d0e0e4736", "trace=<HEX>"),
        ("ptr 0xDEADbeef", "ptr <HEX>"),
        ("req-8f3a2b1c done", "req-<HEX> done"),
        ("open /var/log/app/server.log", "open <PATH>"),
        ("open C:\\Users\\bob\\app.log", "open <PATH>"),
        ("GET https://api.example.com/v1/items?id=3", "GET <URL>"),
        ("mail bob.smith@example.com", "mail <EMAIL>"),
        ("2024-01-15T10:00:00.123Z started", "<TS> started"),
        ("2024-01-15 10:00:00,123 started", "<TS> started"),
        ("[15/Jan/2024:10:00:00 +0000] hit", "[<TS>] hit"),
        ("Jan 15 10:00:00 host sshd", "<TS> host sshd"),
        ("E0115 10:00:00.123456 42 main.go:7] boom", "E<TS> <NUM> main.go:<NUM>] boom"),
        ("log4j  and\tS3Exception", "log<NUM>j and S<NUM>Exception"),
        ("no variables here", "no variables here"),
        ("", ""),
    ],
)
def test_masking_table(line: str, masked: str) -> None:
    assert mask_line(line) == masked


def test_long_lines_are_masked_on_a_prefix() -> None:
    line = "x " * MAX_LINE_CHARS
    assert mask_line(line).endswith(" <*>")


def test_lines_differing_in_numbers_and_ids_share_a_shape() -> None:
    a, b, c = shape_keys(
        [
            "2024-01-15T10:00:00Z took 5ms id=4bf92f3577b34da6 n=1",
            "2024-01-16T11:30:59Z took 12345ms id=a3ce929d0e0e4736 n=77",
            "2024-01-16T11:30:59Z took 12345ms id=a3ce929d0e0e4736 user=bob",
        ]
    )
    assert a == b
    assert a != c


def test_add_reports_new_then_existing_template() -> None:
    miner = TemplateMiner()
    first = miner.add("user 1 logged in from 10.0.0.1")
    second = miner.add("user 2 logged in from 10.0.0.2")
    assert first.is_new and not second.is_new
    assert first.template_id == second.template_id
    assert second.template == "user <NUM> logged in from <IP>"
    assert second.count == 2


def test_a_position_with_many_distinct_words_becomes_a_variable() -> None:
    miner = TemplateMiner()
    words = ["alpha", "beta", "gamma", "delta", "epsilon"]
    results = [miner.add(f"cache miss for key {w} in region eu") for w in words]
    first = results[0]
    assert all(r.is_new for r in results[:4])  # four words: still four templates
    assert not results[-1].is_new  # the fifth makes the position a variable
    assert results[-1].template_id == first.template_id  # the oldest template's id survives
    assert results[-1].template == "cache miss for key <*> in region eu"
    assert {miner.resolve(r.template_id) for r in results} == {first.template_id}
    assert miner.get(results[2].template_id)["count"] == 5
    assert len(miner) == 1
    # later lines join the wider template
    later = miner.add("cache miss for key zeta in region eu")
    assert later.template_id == first.template_id and later.count == 6


def test_a_few_distinct_words_stay_separate_templates() -> None:
    miner = TemplateMiner()
    ids = {
        miner.add(f"[instance: {i:04x}aa-bb] VM {state} (Lifecycle Event)").template_id
        for i, state in enumerate(["Started", "Paused", "Resumed", "Stopped"] * 3)
    }
    assert len(ids) == 4


def test_varying_first_words_meet_their_template() -> None:
    miner = TemplateMiner()
    apps = ["chrome", "firefox", "dropbox", "slack", "zoom", "teams"]
    ids = miner.add_many([f"{app} open through proxy HTTPS" for app in apps])
    assert len(set(ids)) == 1
    assert miner.templates()[0]["template"] == "<*> open through proxy HTTPS"


def test_error_signatures_are_never_wildcarded() -> None:
    miner = TemplateMiner()
    errors = [
        "ConnectException",
        "SQLTimeoutException",
        "IOException",
        "IllegalStateException",
        "NullPointerException",
        "OutOfMemoryError",
        "ECONNREFUSED",
    ]
    ids = miner.add_many([f"request failed: {e} user={i}" for i, e in enumerate(errors)])
    assert len(set(ids)) == len(errors)
    assert {t["template"] for t in miner.templates()} >= {
        "request failed: ConnectException user=<NUM>",
        "request failed: SQLTimeoutException user=<NUM>",
    }


def test_server_errors_get_their_own_template() -> None:
    miner = TemplateMiner()
    lines = [f"GET /api/items status={code} in 3ms" for code in (200, 201, 404, 503, 504)]
    ids = miner.add_many(lines + ["GET /api/items status=500 in 9ms"])
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4] == ids[5] != ids[0]
    assert miner.get(ids[3])["template"] == "GET <PATH> status=<5xx> in <DUR>"
    # one line at a time agrees with the batch path, at the very end of a batch too
    one = TemplateMiner()
    assert [one.add(line).template_id for line in lines[-2:]] == ids[3:5]


def test_parameter_lists_of_any_length_share_a_template() -> None:
    miner = TemplateMiner()
    ids = miner.add_many(
        [
            "PCI link (IRQs 3 4 5) enabled",
            "PCI link (IRQs 3 4 5 6 7 9 10 11 12) enabled",
            "PCI link (IRQs 10) enabled",
        ]
    )
    assert len(set(ids)) == 1


def test_a_merge_leaves_a_constant_word() -> None:
    miner = TemplateMiner()
    ids = miner.add_many(
        [f"{w} job_{i}" for i, w in enumerate(["Launch", "Kill", "Start", "Stop", "Pause", "Wait"])]
    )
    assert len(set(ids)) == 6  # "<*> <*>" would say nothing


def test_dissimilar_lines_get_separate_templates() -> None:
    miner = TemplateMiner()
    a = miner.add("connection established to db")
    b = miner.add("shutting down worker pool now")
    assert a.template_id != b.template_id
    assert len(miner) == 2


LINES = (
    [
        f"2024-01-15T10:{i % 60:02d}:00Z INFO order {1000 + i} created in {i * 7 % 500}ms "
        f"trace=ab{i * 7919:014x}"
        for i in range(200)
    ]
    + [
        f"2024-01-15T10:{i % 60:02d}:30Z ERROR payment {i} failed: status=503 "
        f"from 10.0.{i % 7}.{i % 250}"
        for i in range(50)
    ]
    + [
        f'{i}.{i}.{i}.{i} - - [15/Jan/2024:10:00:{i % 60:02d} +0000] "GET /a/{i} HTTP/1.1" 200 {i}'
        for i in range(50)
    ]
)


def test_ids_are_stable_across_miners_and_line_order() -> None:
    shuffled = LINES[:]
    random.Random(7).shuffle(shuffled)
    one, two = TemplateMiner(), TemplateMiner()
    one.add_many(LINES)
    two.add_many(shuffled)
    assert {t["template_id"]: t["count"] for t in one.templates()} == {
        t["template_id"]: t["count"] for t in two.templates()
    }
    # one line at a time gives the same ids as the batch path
    three = TemplateMiner()
    for line in shuffled:
        three.add(line)
    assert {t["template_id"] for t in three.templates()} == {
        t["template_id"] for t in one.templates()
    }


def test_ids_are_a_hash_of_the_first_masked_line() -> None:
    miner = TemplateMiner()
    tid = miner.add("worker 7 started").template_id
    assert tid == TemplateMiner().add("worker 12 started").template_id
    assert tid.startswith("t") and len(tid) == 13


def test_add_many_returns_one_id_per_line() -> None:
    miner = TemplateMiner()
    ids = miner.add_many(LINES)
    assert len(ids) == len(LINES)
    assert ids[0] == ids[1] and ids[0] != ids[-1]
    assert sum(t["count"] for t in miner.templates()) == len(LINES)


def test_add_many_tracks_first_and_last_seen() -> None:
    miner = TemplateMiner()
    miner.add_many(["job 1 done", "job 2 done", "job 3 done"], timestamps=[30, 10, 20])
    (template,) = miner.templates()
    assert (template["first_seen_ns"], template["last_seen_ns"]) == (10, 30)
    assert template["examples"] == ["job 1 done", "job 2 done", "job 3 done"]


def test_examples_are_bounded() -> None:
    miner = TemplateMiner(max_examples=2)
    miner.add_many([f"job {i} done" for i in range(10)])
    assert len(miner.templates()[0]["examples"]) == 2


def test_state_round_trips_through_json() -> None:
    miner = TemplateMiner(merge_threshold=4)
    miner.add_many(LINES, timestamps=list(range(len(LINES))))
    state = json.loads(json.dumps(miner.state()))
    restored = TemplateMiner.from_state(state)
    assert restored.templates() == miner.templates()
    assert restored.config() == miner.config()
    # the restored miner routes new lines to the same templates
    assert restored.add(LINES[3].replace("order", "order")).template_id == miner.match(LINES[3])
    assert (
        restored.add("2024-01-15T11:00:00Z INFO order 99999 created in 1ms trace=00ab").is_new
        is False
    )


def test_from_state_rejects_garbage() -> None:
    with pytest.raises(InvalidInput):
        TemplateMiner.from_state({"clusters": []})
    with pytest.raises(InvalidInput):
        TemplateMiner.from_state({"version": 1, "clusters": [{"nope": 1}]})


def test_least_recently_used_clusters_are_evicted() -> None:
    miner = TemplateMiner(max_clusters=2)
    a = miner.add("alpha happened").template_id
    miner.add("beta happened here now")
    miner.add("alpha happened")  # a is used again
    miner.add("gamma one two three four five")
    ids = {t["template_id"] for t in miner.templates()}
    assert len(ids) == 2 and a in ids


def test_bad_config_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="merge_threshold"):
        TemplateMiner(merge_threshold=1)
    with pytest.raises(InvalidInput, match="max_clusters"):
        TemplateMiner(max_clusters=0)


def test_a_state_of_the_previous_miner_still_loads() -> None:
    legacy = {
        "version": 1,
        "config": {"sim_threshold": 0.5, "depth": 4, "max_children": 100, "max_clusters": 50},
        "tick": 3,
        "clusters": [
            {
                "id": "tabc",
                "tokens": ["user", "<NUM>", "logged", "in", "from", "<IP>"],
                "path": [6, "user", "<*>"],
                "count": 7,
                "examples": ["user 1 logged in from 10.0.0.1"],
            }
        ],
    }
    miner = TemplateMiner.from_state(legacy)
    assert miner.max_clusters == 50
    assert miner.add("user 9 logged in from 10.0.0.9").template_id == "tabc"
    assert miner.get("tabc")["count"] == 8


@pytest.mark.parametrize(
    ("template", "pattern"),
    [
        ("<TS> ERROR failed after <NUM>ms", "<_> ERROR failed after <_>ms"),
        ("user <*> logged in", "user <_> logged in"),
        ("<NUM><NUM> x", "<_> x"),
        ("render <html> page <*>", "render <_> page <_>"),
        ("a < b > c", "a < b > c"),
    ],
)
def test_template_to_loki_pattern(template: str, pattern: str) -> None:
    assert template_to_pattern(template) == pattern


def test_template_logql_escapes_the_go_string() -> None:
    q = template_logql('<TS> said "hi" \\ <NUM>\ttab', '{app="api"}', "10m")
    assert q["pattern_filter"] == '{app="api"} |> "<_> said \\"hi\\" \\\\ <_>\\ttab"'
    assert (
        q["metric_query"]
        == 'sum(count_over_time({app="api"} |> "<_> said \\"hi\\" \\\\ <_>\\ttab" [10m]))'
    )


def test_template_logql_rejects_bad_selector_and_range() -> None:
    with pytest.raises(InvalidInput, match="selector"):
        template_logql("x <NUM>", "app=x")
    with pytest.raises(InvalidInput, match="range"):
        template_logql("x <NUM>", '{app="x"}', "5 minutes")
