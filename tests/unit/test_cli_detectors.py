"""`aiops detectors apply/list/show`, the hint on an unknown detector, and negative relative
times written as the README writes them (`--start -1h`)."""

from __future__ import annotations

import json

import pytest

from aiops.cli import main
from aiops.store import Store

DETECTORS = """\
version: 1
detectors:
  - id: api-latency
    kind: zscore
    params: {window: 30}
    datasource: {query: 'sum(rate(x[5m]))', step: 1m}
  - id: api-errors
    kind: mad
    datasource: {query: 'sum(rate(y[5m]))'}
"""


@pytest.fixture
def data(tmp_path, monkeypatch):
    url = Store.default_url(tmp_path / "data")
    monkeypatch.setenv("AIOPS_DATABASE_URL", url)
    monkeypatch.setenv("AIOPS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AIOPS_DETECTORS_FILE", raising=False)
    path = tmp_path / "detectors.yaml"
    path.write_text(DETECTORS)
    return url, path


def test_apply_loads_the_file_now_and_again_keeps_what_did_not_change(data, capsys):
    url, path = data
    assert main(["detectors", "apply", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert sorted(out["created"]) == ["api-errors", "api-latency"] and out["updated"] == []
    with Store.open(url) as db:
        assert [d.id for d in db.list_detectors()] == ["api-errors", "api-latency"]

    path.write_text(DETECTORS.replace("window: 30", "window: 60"))
    assert main(["detectors", "apply", str(path)]) == 0
    text = capsys.readouterr().out
    assert "api-latency" in text and "new model" in text and "1 updated, 1 unchanged" in text


def test_apply_without_a_file_uses_the_setting_or_says_what_is_missing(data, capsys, monkeypatch):
    _, path = data
    assert main(["detectors", "apply"]) == 2
    assert "AIOPS_DETECTORS_FILE" in capsys.readouterr().err
    monkeypatch.setenv("AIOPS_DETECTORS_FILE", str(path))
    assert main(["detectors", "apply", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["created"]) == 2


def test_a_bad_file_is_one_line_naming_detector_and_field(data, capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("detectors:\n  - id: x\n    kind: zscore\n    interval: soon\n")
    assert main(["detectors", "apply", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "'x'" in err and "interval" in err and "Traceback" not in err


def test_list_and_show(data, capsys):
    _, path = data
    main(["detectors", "apply", str(path)])
    capsys.readouterr()
    assert main(["detectors", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["detectors"]
    assert [d["id"] for d in listed] == ["api-errors", "api-latency"]
    assert main(["detectors", "list"]) == 0
    assert "sum(rate(x[5m]))" in capsys.readouterr().out
    assert main(["detectors", "show", "api-latency", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (
        shown["kind"] == "zscore"
        and shown["params"] == {"window": 30}
        and shown["collector"]["state"] == "never_run"
    )
    assert main(["detectors", "show", "api-latency"]) == 0
    assert "zscore" in capsys.readouterr().out


def test_an_unknown_detector_in_an_unapplied_file_says_how_to_load_it(data, capsys, monkeypatch):
    _, path = data
    monkeypatch.setenv("AIOPS_DETECTORS_FILE", str(path))
    assert main(["detectors", "show", "api-latency"]) == 2
    err = capsys.readouterr().err
    assert "not found" in err and f"aiops detectors apply {path}" in err
    assert main(["evaluate", "--detector", "nope", "--labels", str(path.with_suffix(".csv"))]) == 2
    path.with_suffix(".csv").write_text("start,end,job\n1767225600,1767225700,api\n")
    assert main(["evaluate", "--detector", "nope", "--labels", str(path.with_suffix(".csv"))]) == 2
    assert "detectors list" in capsys.readouterr().err


@pytest.mark.parametrize("start", ["-1h", "-90m", "-1h30m", "-1.5h"])
def test_negative_relative_times_parse_as_written(data, capsys, start):
    # no such datasource: the command gets as far as the datasource, so --start was accepted
    assert main(["query", "up", "--start", start, "--step", "1m", "--datasource", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "no Prometheus datasource named 'nowhere'" in err and "expected one argument" not in err


def test_a_negative_time_is_not_taken_for_an_option_anywhere(data, capsys):
    # evaluate's --start / --end, with the value as the README writes it
    _, path = data
    main(["detectors", "apply", str(path)])
    labels = path.with_suffix(".csv")
    labels.write_text("start,end,job\n1767225600,1767225700,api\n")
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "--detector",
                "api-latency",
                "--labels",
                str(labels),
                "--start",
                "-7d",
                "--end",
                "-1h",
                "--json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["overall"]["windows"] == 0


def test_apply_refuses_a_loki_log_query_naming_the_detector(data, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("AIOPS_LOKI_URL", "http://127.0.0.1:9")
    bad = tmp_path / "loki.yaml"
    bad.write_text(
        "detectors:\n  - id: app-errors\n    kind: zscore\n"
        '    datasource: {name: loki, query: \'{app="x"} |= "error"\'}\n'
    )
    assert main(["detectors", "apply", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "'app-errors'" in err and "Traceback" not in err
    good = tmp_path / "loki-metric.yaml"
    good.write_text(
        "detectors:\n  - id: app-errors\n    kind: zscore\n"
        '    datasource: {name: loki, query: \'sum(count_over_time({app="x"} |= "error" [1m]))\'}\n'
    )
    assert main(["detectors", "apply", str(good)]) == 0
