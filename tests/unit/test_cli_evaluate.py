"""`aiops evaluate` against a temporary SQLite store with events inserted directly."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import pytest

from aiops.cli import main
from aiops.store import Store

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def at(offset: float) -> datetime:
    return datetime.fromtimestamp(T0 + offset, UTC)


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = Store.default_url(tmp_path / "data")
    monkeypatch.setenv("AIOPS_DATABASE_URL", url)
    with Store.open(url) as store:
        store.create_detector(
            {
                "id": "lat",
                "kind": "zscore",
                "datasource": {"query": "latency", "step": 60, "lookback": 3600},
            }
        )
        store.create_detector({"id": "other", "kind": "zscore"})
        store.insert_events(
            [
                {"detector_id": "lat", "labels": {"job": "api"}, "ts": at(o), "score": 3.0}
                for o in (
                    600,
                    660,
                    720,
                    1300,
                    9000,
                )  # one event in window 1, one just after window 2, one false
            ]
            + [
                {"detector_id": "lat", "labels": {"job": "db"}, "ts": at(50_000), "score": 2.0},
                {
                    "detector_id": "other",
                    "labels": {"job": "api"},
                    "ts": at(1200),
                    "score": 5.0,
                },  # another detector
                {
                    "type": "log.new_template",
                    "detector_id": "lat",
                    "labels": {"job": "api"},
                    "ts": at(1210),
                },
            ]
        )
        yield store


@pytest.fixture
def labels(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(
        "start,end,job\n"
        "2026-01-01T00:10:00Z,2026-01-01T00:15:00Z,api\n"  # [600, 900)
        f"{T0 + 1000},{T0 + 1200},api\n"  # [1000, 1200): 1300 is 100 s late
        ",,db\n"
    )
    return str(path)


def test_json_gives_exact_numbers_and_tolerance_counts(db, labels, capsys):
    assert main(["evaluate", "--detector", "lat", "--labels", labels, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    o = out["overall"]
    assert out["detector"] == "lat" and out["gap_seconds"] == 300  # 5 steps of 60 s
    assert (
        o["windows"],
        o["detected_windows"],
        o["events"],
        o["true_events"],
        o["false_events"],
    ) == (2, 1, 4, 1, 3)
    assert o["recall"] == 0.5 and o["precision"] == 0.25 and o["mean_ttd_seconds"] == 0
    assert o["f1"] == pytest.approx(2 * 0.5 * 0.25 / 0.75)

    assert (
        main(["evaluate", "--detector", "lat", "--labels", labels, "--json", "--tolerance", "2m"])
        == 0
    )
    o = json.loads(capsys.readouterr().out)["overall"]
    # 1300 lies 100 s after window 2: found (TTD 300 s); with the default gap it is its own event
    assert (o["detected_windows"], o["true_events"], o["false_events"]) == (2, 2, 2)
    assert o["mean_ttd_seconds"] == 150


def test_the_range_restricts_detections_and_windows(db, labels, capsys):
    args = ["evaluate", "--detector", "lat", "--labels", labels, "--json"]
    assert main([*args, "--start", str(T0 + 950), "--end", "2026-01-01T03:00:00Z"]) == 0
    o = json.loads(capsys.readouterr().out)["overall"]
    assert (o["windows"], o["detected_windows"], o["events"], o["false_events"]) == (1, 0, 2, 2)


def test_live_and_backfilled_anomalies_can_be_scored_apart(db, labels, capsys):
    # a backfill found the window-2 anomaly again (a different timestamp: 1100 s)
    db.insert_events(
        [
            {
                "detector_id": "lat",
                "labels": {"job": "api"},
                "ts": at(1100),
                "score": 4.0,
                "backfill_id": "bf-1",
            }
        ]
    )
    args = ["evaluate", "--detector", "lat", "--labels", labels, "--json"]
    assert main([*args, "--backfill", "bf-1"]) == 0
    o = json.loads(capsys.readouterr().out)["overall"]
    assert (o["detected_windows"], o["events"], o["false_events"]) == (1, 1, 0)
    assert main([*args, "--source", "live"]) == 0
    o = json.loads(capsys.readouterr().out)["overall"]
    assert (o["detected_windows"], o["events"], o["false_events"]) == (
        1,
        4,
        3,
    )  # as before the backfill
    assert main([*args, "--source", "all"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["detected_windows"] == 2


def test_people_get_a_table(db, labels, capsys):
    assert main(["evaluate", "--detector", "lat", "--labels", labels, "--tolerance", "5m"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == [
        "series",
        "windows",
        "found",
        "recall",
        "events",
        "FP",
        "events",
        "precision",
        "F1",
        "mean",
        "TTD",
    ]
    api = next(line for line in lines if line.startswith('{job="api"}'))
    assert api.split()[1:] == ["2", "2", "1.000", "3", "1", "0.667", "0.800", "150s"]
    overall = next(line for line in lines if line.startswith("overall"))
    assert overall.split()[1:4] == ["2", "2", "1.000"]
    assert "detector lat (zscore), 6 detections" in out


def test_errors_are_one_line_and_exit_2(db, labels, tmp_path, capsys):
    assert main(["evaluate", "--detector", "nope", "--labels", labels]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end,job\n2026-01-01T00:10:00Z,soon,api\n")
    assert main(["evaluate", "--detector", "lat", "--labels", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.csv, row 1, field 'end'" in err
    assert main(["evaluate", "--detector", "lat", "--labels", labels, "--tolerance", "soon"]) == 2
    assert "--tolerance" in capsys.readouterr().err
    assert main(["evaluate", "--detector", "lat", "--labels", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


def test_the_nab_score_counts_incident_onsets(db, labels, capsys):
    # grid: 60 s steps from T0+600 (first window) to T0+50060 (last anomaly + a step): 825 rows.
    # api windows: rows 0..4 and 7..9. api onsets: 600 (window 1's left edge: +1), 1300 (row 11:
    # 2 rows after window 2, which it misses: -1, d = 2/2 -> 0.11 * tanh(2.5)), 9000 (-0.11);
    # db (no windows): 50000 (-0.11). null -2, perfect 2.
    args = ["evaluate", "--detector", "lat", "--labels", labels]
    assert main([*args, "--json", "--resolve-after", "5"]) == 0
    nab = json.loads(capsys.readouterr().out)["nab"]
    assert (nab["rows"], nab["resolve_after"], nab["step_seconds"], nab["incidents"]) == (
        825,
        5,
        60,
        4,
    )
    raw = 1 - 1 - 0.11 * math.tanh(2.5) - 0.11 - 0.11
    std = nab["profiles"]["standard"]
    assert std["raw"] == pytest.approx(raw)
    assert std["score"] == pytest.approx(100 * (raw + 2) / 4)  # 41.79
    assert (std["detected_windows"], std["windows"], std["false_detections"]) == (1, 2, 3)
    assert nab["profiles"]["reward_low_FN_rate"]["raw"] == pytest.approx(
        1 - 2 - 0.11 * math.tanh(2.5) - 0.22
    )

    # a longer resolve_after folds 1300 into the first incident (8 normal steps in between)
    assert main([*args, "--json", "--resolve-after", "8"]) == 0
    nab = json.loads(capsys.readouterr().out)["nab"]
    assert nab["incidents"] == 3 and nab["profiles"]["standard"]["raw"] == pytest.approx(
        1 - 1 - 0.22
    )

    assert main([*args, "--resolve-after", "5"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("standard"))
    assert line.split() == ["standard", "41.8", f"{raw:.3f}", "1/2", "4", "3"]
    assert "incident onsets as detections (resolve_after 5), on 825 steps of 60s" in out


def test_bad_nab_options_exit_2(db, labels, capsys):
    assert main(["evaluate", "--detector", "lat", "--labels", labels, "--probation", "1.5"]) == 2
    assert "probation" in capsys.readouterr().err
    assert main(["evaluate", "--detector", "lat", "--labels", labels, "--resolve-after", "-1"]) == 2
    assert "resolve_after" in capsys.readouterr().err


def test_several_detectors_each_scored_on_the_labelled_series_it_watches(
    tmp_path, monkeypatch, capsys
):
    url = Store.default_url(tmp_path / "multi")
    monkeypatch.setenv("AIOPS_DATABASE_URL", url)
    with Store.open(url) as store:
        for det_id in ("lat", "err"):
            store.create_detector(
                {"id": det_id, "kind": "zscore", "datasource": {"query": det_id, "step": 60}}
            )
        # lat watches job=api (a model, no anomaly in its window: a real miss) and job=web (found);
        # err watches job=db only, and found its window
        store.save_states("lat", {'job="api"': ({"job": "api"}, {"kind": "zscore"})})
        store.insert_events(
            [
                {
                    "detector_id": "lat",
                    "labels": {"__name__": "latency", "job": "web"},
                    "ts": at(3700),
                    "score": 3.0,
                },
                {"detector_id": "err", "labels": {"job": "db"}, "ts": at(7300), "score": 3.0},
            ]
        )
    labels = tmp_path / "labels.json"
    labels.write_text(
        json.dumps(
            [
                {"labels": {"job": "api"}, "start": T0 + 600, "end": T0 + 900},
                {"labels": {"job": "web"}, "start": T0 + 3600, "end": T0 + 3900},
                {"labels": {"job": "db"}, "start": T0 + 7200, "end": T0 + 7500},
            ]
        )
    )
    assert (
        main(
            [
                "evaluate",
                "--detector",
                "lat",
                "--detector",
                "err",
                "--labels",
                str(labels),
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    by_det = {d["detector"]: d for d in out["detectors"]}
    lat, err = by_det["lat"], by_det["err"]
    # db's window is not a miss of lat, nor api's and web's of err
    assert (lat["overall"]["windows"], lat["overall"]["detected_windows"]) == (2, 1)
    assert lat["other_series"] == [{"job": "db"}]
    assert (
        err["overall"]["windows"],
        err["overall"]["detected_windows"],
        err["overall"]["false_events"],
    ) == (1, 1, 0)
    assert sorted(s["job"] for s in err["other_series"]) == ["api", "web"]
    o = out["overall"]
    assert (o["windows"], o["detected_windows"], o["events"], o["false_events"]) == (3, 2, 2, 0)

    assert (
        main(["evaluate", "--detector", "lat", "--detector", "err", "--labels", str(labels)]) == 0
    )
    text = capsys.readouterr().out
    assert (
        "NAB profile (lat)" in text and "NAB profile (err)" in text and "not watched by err" in text
    )
