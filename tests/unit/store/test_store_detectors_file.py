from __future__ import annotations

from pathlib import Path

import pytest

from aiops.errors import ConfigError, InvalidInput
from aiops.store import Store, accept_any_kind, apply_detectors_file, load_detectors_file

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "detectors.yaml"

GOOD = """
detectors:
  - id: api-errors
    kind: zscore
    params: {window: 60}
    interval: 1m
    datasource:
      query: sum(rate(http_requests_total{code=~"5.."}[5m]))
      step: 30s
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "detectors.yaml"
    path.write_text(text)
    return path


def test_the_example_file_is_valid(store):
    specs = load_detectors_file(EXAMPLE, kind_validator=accept_any_kind)
    assert len(specs) == 3
    result = store.upsert_detectors(specs)
    assert len(result["created"]) == 3
    p99 = store.get_detector("api-p99-latency")
    assert p99.datasource is not None and p99.datasource.lookback_seconds == 14 * 86400


def test_a_good_file_is_parsed_with_durations(tmp_path):
    (spec,) = load_detectors_file(write(tmp_path, GOOD), kind_validator=accept_any_kind)
    assert (spec.id, spec.interval_seconds, spec.status) == ("api-errors", 60, None)
    assert spec.datasource is not None and spec.datasource.step_seconds == 30


def test_resolve_after_is_read_from_the_file_with_the_default_when_absent(tmp_path):
    from aiops.incidents import DEFAULT_RESOLVE_AFTER

    (default,) = load_detectors_file(write(tmp_path, GOOD), kind_validator=accept_any_kind)
    assert default.resolve_after == DEFAULT_RESOLVE_AFTER
    (spec,) = load_detectors_file(
        write(tmp_path, GOOD.replace("interval: 1m", "interval: 1m\n    resolve_after: 3")),
        kind_validator=accept_any_kind,
    )
    assert spec.resolve_after == 3


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("interval: 1m", "interval: often", "interval"),
        ("interval: 1m", "interval: 1m\n    threshold: -2", "threshold"),
        ("interval: 1m", "interval: 1m\n    resolve_after: -1", "resolve_after"),
        ("interval: 1m", "interval: 1m\n    resolve_after: soon", "resolve_after"),
        ("step: 30s", "step: 30 seconds", "datasource.step"),
        ("kind: zscore", "kind: Z", "kind"),
        ("interval: 1m", "interval: 1m\n    colour: red", "colour"),
        ("      step: 30s", "      step: 30s\n      url: http://x", "datasource.url"),
    ],
)
def test_errors_name_the_file_the_detector_and_the_field(tmp_path, old, new, field):
    path = write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ConfigError) as info:
        load_detectors_file(path, kind_validator=accept_any_kind)
    message = str(info.value)
    assert str(path) in message and "'api-errors'" in message and field in message
    assert info.value.detail["field"] == field and info.value.detail["detector"] == "api-errors"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("detectors: [", "not valid YAML"),
        ("- a\n- b\n", "'detectors' list"),
        ("detectors: []\nextra: 1\n", "unknown top-level key 'extra'"),
        ("detectors: []\nversion: 2\n", "unsupported version"),
        ("detectors:\n  - 42\n", "detectors[0]: expected a mapping"),
        ("detectors:\n  - {id: a, kind: x}\n  - {id: a, kind: x}\n", "declared twice"),
        ("detectors:\n  - {id: a, kind: x, kind: y}\n", "duplicate key 'kind'"),
        ("detectors:\n  - {kind: x}\n", "detectors[0]"),
    ],
)
def test_malformed_files_raise_config_error(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        load_detectors_file(write(tmp_path, text), kind_validator=accept_any_kind)


def test_a_missing_file_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_detectors_file(tmp_path / "nope.yaml")


def test_unknown_kinds_are_reported_as_the_kind_field(tmp_path):
    def refuse(kind, params):
        raise InvalidInput(f"unknown detector kind {kind!r}", field="kind")

    with pytest.raises(ConfigError, match="'api-errors': kind: unknown detector kind") as info:
        load_detectors_file(write(tmp_path, GOOD), kind_validator=refuse)
    assert info.value.detail["field"] == "kind"


def test_reapplying_an_edited_file_keeps_state_only_where_the_model_is_unchanged(tmp_path, db_url):
    two = GOOD + GOOD.split("detectors:\n", 1)[1].replace("api-errors", "db-errors")
    path = write(tmp_path, two)
    with Store.open(db_url, kind_validator=accept_any_kind) as store:
        assert apply_detectors_file(store, path)["created"] == ["api-errors", "db-errors"]
        for d in ("api-errors", "db-errors"):
            store.save_states(d, {"": ({}, {"mean": 1})})

    # edit: db-errors gets a new window (new model); api-errors only a new interval
    edited = two.replace("interval: 1m", "interval: 2m", 1).replace("{window: 60}", "{window: 30}")
    edited = edited.replace("{window: 30}", "{window: 60}", 1)
    path.write_text(edited)
    with Store.open(db_url, kind_validator=accept_any_kind) as store:  # "restart"
        result = apply_detectors_file(store, path)
        assert (result["updated"], result["reset"]) == (["api-errors", "db-errors"], ["db-errors"])
        assert store.load_states("api-errors") != {}
        assert store.load_states("db-errors") == {}
        assert store.get_detector("api-errors").interval_seconds == 120
        assert apply_detectors_file(store, path)["unchanged"] == ["api-errors", "db-errors"]
