from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.errors import Conflict, InvalidInput, NotFound
from aiops.store import Store, default_kind_validator

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_create_and_get_detector_returns_a_pydantic_snapshot(store, make_spec):
    created = store.create_detector(make_spec(interval="5m", threshold=2.0))
    fetched = store.get_detector("api-errors")
    assert fetched == created
    assert (fetched.name, fetched.status, fetched.interval_seconds) == (
        "api-errors",
        "training",
        300,
    )
    assert fetched.datasource is not None and fetched.datasource.name == "prometheus"
    assert fetched.created_at.tzinfo is not None


def test_creating_an_existing_detector_is_a_conflict(store, make_spec):
    store.create_detector(make_spec())
    with pytest.raises(Conflict):
        store.create_detector(make_spec())


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": "Bad Id"}, "id"),
        ({"id": "-x"}, "id"),
        ({"id": "a" * 64}, "id"),
        ({"kind": "Z-Score"}, "kind"),
        ({"threshold": 0}, "threshold"),
        ({"interval": "soon"}, "interval"),
        ({"params": {"x": float("nan")}}, "params"),
        ({"status": "dead"}, "status"),
        ({"colour": "red"}, "colour"),
        ({"datasource": {"query": ""}}, "datasource.query"),
    ],
)
def test_invalid_specs_raise_invalid_input_naming_the_field(store, make_spec, overrides, field):
    with pytest.raises(InvalidInput) as info:
        store.create_detector(make_spec(**overrides))
    assert info.value.field == field


def test_missing_detectors_raise_not_found(store):
    for call in (
        lambda: store.get_detector("nope"),
        lambda: store.update_detector("nope", threshold=2),
        lambda: store.delete_detector("nope"),
        lambda: store.set_datasource("nope", {"query": "up"}),
        lambda: store.load_states("nope"),
        lambda: store.get_checkpoint("nope"),
        lambda: store.record_collection("nope", True),
    ):
        with pytest.raises(NotFound):
            call()


def test_list_detectors_filters_by_status(store, make_spec):
    store.create_detector(make_spec("a"))
    store.create_detector(make_spec("b", status="paused"))
    assert [d.id for d in store.list_detectors()] == ["a", "b"]
    assert [d.id for d in store.list_detectors(status="paused")] == ["b"]
    with pytest.raises(InvalidInput):
        store.list_detectors(status="sleeping")


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        ("training", "running", True),
        ("training", "paused", True),
        ("running", "paused", True),
        ("paused", "training", True),
        ("paused", "running", True),
        ("running", "running", True),
        ("running", "training", False),
    ],
)
def test_status_transitions(store, make_spec, start, target, allowed):
    store.create_detector(make_spec(status=start))
    if allowed:
        assert store.update_detector("api-errors", status=target).status == target
    else:
        with pytest.raises(Conflict):
            store.update_detector("api-errors", status=target)
        assert store.get_detector("api-errors").status == start


def test_update_rejects_unknown_fields_and_accepts_duration_aliases(store, make_spec):
    store.create_detector(make_spec())
    with pytest.raises(InvalidInput) as info:
        store.update_detector("api-errors", datasource={"query": "up"})
    assert info.value.field == "datasource"
    assert store.update_detector("api-errors", interval="2m").interval_seconds == 120


def test_changing_params_drops_model_state_but_other_changes_keep_it(store, make_spec):
    store.create_detector(make_spec())
    store.save_states("api-errors", {'a="1"': ({"a": "1"}, {"mean": 1.0})}, T0)
    store.update_detector("api-errors", threshold=2.5, name="API errors")
    assert list(store.load_states("api-errors")) == ['a="1"']
    updated = store.update_detector("api-errors", params={"window": 120})
    assert store.load_states("api-errors") == {}
    assert updated.spec_hash != store.create_detector(make_spec("other")).spec_hash


def test_delete_cascades_to_detector_data_but_keeps_events(store, make_spec):
    store.create_detector(make_spec())
    store.save_states("api-errors", {"": ({}, {"m": 1})})
    store.advance_checkpoint("api-errors", T0)
    store.record_collection("api-errors", True, samples=3)
    store.plan_backfill("bf", ["api-errors"], [(T0, T0 + timedelta(hours=1))])
    store.insert_events([{"detector_id": "api-errors", "ts": T0, "score": 2}])
    store.delete_detector("api-errors")
    with pytest.raises(NotFound):
        store.get_detector("api-errors")
    store.create_detector(make_spec())  # same id again: nothing left behind
    assert store.load_states("api-errors") == {}
    assert store.get_checkpoint("api-errors") is None
    assert store.collector_status("api-errors").state == "never_run"
    assert [e.detector_id for e in store.events_after(0)] == ["api-errors"]


def test_set_datasource_replaces_by_default_and_remove_datasource(store, make_spec):
    store.create_detector(make_spec(datasource=None))
    ds = store.set_datasource("api-errors", {"name": "loki", "query": 'sum(rate({app="x"}[1m]))'})
    assert (ds.name, ds.step_seconds) == ("loki", 60)
    store.set_datasource("api-errors", {"name": "prometheus", "query": "up", "step": "30s"})
    assert [d.name for d in store.get_detector("api-errors").datasources] == ["prometheus"]
    store.set_datasource("api-errors", {"name": "thanos", "query": "up"}, replace=False)
    assert len(store.get_detector("api-errors").datasources) == 2
    assert store.remove_datasource("api-errors", "thanos") == 1
    with pytest.raises(NotFound):
        store.remove_datasource("api-errors", "thanos")
    assert store.remove_datasource("api-errors") == 1
    with pytest.raises(InvalidInput) as info:
        store.set_datasource("api-errors", {"query": "up", "step": "-1s"})
    assert info.value.field == "datasource.step"


def test_due_detectors_explains_why_the_others_wait(store, make_spec):
    store.create_detector(make_spec("due-never-run"))
    store.create_detector(make_spec("paused", status="paused"))
    store.create_detector(make_spec("no-source", datasource=None))
    store.create_detector(make_spec("recent", interval="5m"))
    store.create_detector(make_spec("elapsed", interval="1m", status="running"))
    store.record_collection("recent", True, at=T0)
    store.record_collection("elapsed", False, error="timeout", at=T0)

    due, not_due = store.due_detectors(T0 + timedelta(minutes=1))

    assert [d.id for d in due] == ["due-never-run", "elapsed"]
    assert not_due["paused"] == "paused"
    assert not_due["no-source"] == "no datasource configured"
    assert "next run at 2024-01-01T00:05:00" in not_due["recent"]
    assert [d.id for d in store.due_detectors(T0 + timedelta(minutes=5)).due] == [
        "due-never-run",
        "elapsed",
        "recent",
    ]


def test_promote_trained_moves_training_detectors_after_their_window(store, make_spec):
    store.create_detector(make_spec("a", training_window="1h"))
    store.create_detector(make_spec("b"))  # no window: promoted only explicitly
    created = store.get_detector("a").status_changed_at
    assert store.promote_trained(created + timedelta(minutes=59)) == []
    promoted = store.promote_trained(created + timedelta(hours=1))
    assert [d.id for d in promoted] == ["a"]
    assert store.get_detector("a").status == "running"
    assert store.get_detector("b").status == "training"


def test_upsert_keeps_state_when_model_unchanged_and_resets_when_changed(store, make_spec):
    first = store.upsert_detectors([make_spec("a"), make_spec("b")])
    assert first["created"] == ["a", "b"]
    for d in ("a", "b"):
        store.save_states(d, {"": ({}, {"m": 1})})

    again = store.upsert_detectors([make_spec("a"), make_spec("b", params={"window": 10})])

    assert (again["unchanged"], again["updated"], again["reset"]) == (["a"], ["b"], ["b"])
    assert store.load_states("a") != {} and store.load_states("b") == {}


def test_upsert_never_demotes_a_promoted_detector_and_applies_valid_status_moves(store, make_spec):
    store.upsert_detectors([make_spec("a", status="training"), make_spec("b")])
    store.update_detector("a", status="running")
    result = store.upsert_detectors(
        [make_spec("a", status="training"), make_spec("b", status="paused")]
    )
    assert store.get_detector("a").status == "running"
    assert store.get_detector("b").status == "paused"
    assert result["unchanged"] == ["a"] and result["updated"] == ["b"]


def test_upsert_is_all_or_nothing(store, make_spec):
    with pytest.raises(InvalidInput):
        store.upsert_detectors([make_spec("a"), make_spec("a")])
    with pytest.raises(InvalidInput):
        store.upsert_detectors([make_spec("a"), make_spec("b", threshold=-1)])
    assert store.list_detectors() == []


def test_upsert_datasource_changes_count_as_updates_without_model_reset(store, make_spec):
    store.upsert_detectors([make_spec()])
    store.save_states("api-errors", {"": ({}, {"m": 1})})
    result = store.upsert_detectors([make_spec(datasource={"query": "up", "lookback": "2h"})])
    assert (result["updated"], result["reset"]) == (["api-errors"], [])
    ds = store.get_detector("api-errors").datasource
    assert ds is not None and (ds.query, ds.lookback_seconds) == ("up", 7200)
    assert store.load_states("api-errors") != {}


def test_kind_validator_is_pluggable(db_url, make_spec):
    def only_zscore(kind, params):
        if kind != "zscore":
            raise InvalidInput(f"unknown kind {kind}", field="kind")

    with Store.open(db_url, kind_validator=only_zscore) as s:
        s.create_detector(make_spec("ok"))
        with pytest.raises(InvalidInput) as info:
            s.create_detector(make_spec("bad", kind="prophet"))
        assert info.value.field == "kind"


def test_default_kind_validator_builds_the_model_so_bad_kinds_and_params_are_refused():
    default_kind_validator("zscore", {"window": 60})
    with pytest.raises(InvalidInput) as info:
        default_kind_validator("prophet", {})
    assert info.value.field == "kind"
    with pytest.raises(InvalidInput) as info:
        default_kind_validator("seasonal", {"period": "1d"})
    assert info.value.field == "params.period"


def test_the_example_detectors_file_is_valid_for_the_real_models():
    from tests.unit.store.test_store_detectors_file import EXAMPLE

    from aiops.store import load_detectors_file

    assert len(load_detectors_file(EXAMPLE, kind_validator=default_kind_validator)) == 3
