"""`--train` (and the API's/flow's `train`) as a duration, a fraction of the range or a number
of points, one rule for several detectors, through the one backfill resolver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aiops.backfill import CLI_FIELDS, TrainRule, resolve_backfill
from aiops.config import Settings
from aiops.errors import InvalidInput
from aiops.store import Store

START = datetime(2024, 1, 1, tzinfo=UTC)
END = START + timedelta(days=10)


@pytest.fixture
def db(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'a.db'}") as store:
        for det_id, step in (("fine", 60), ("coarse", 300)):
            store.create_detector(
                {"id": det_id, "kind": "zscore", "datasource": {"query": "up", "step": step}}
            )
        yield store


def resolve(db, train, detectors=("fine", "coarse"), **kw):
    return resolve_backfill(
        detector_ids=list(detectors),
        log_jobs=kw.pop("log_jobs", None),
        start=START,
        end=END,
        window="1d",
        train=train,
        settings=Settings(config_file=None),
        get_detector=db.get_detector,
        fields=CLI_FIELDS,
        **kw,
    )


@pytest.mark.parametrize(
    ("train", "until"),
    [
        ("2d", START + timedelta(days=2)),
        ("36h", START + timedelta(hours=36)),
        ("0.25", START + timedelta(days=2.5)),
        ("20%", START + timedelta(days=2)),
        ("500 points", START + timedelta(seconds=500 * 300)),  # the coarsest step: both get >= 500
        ("288p", START + timedelta(days=1)),
    ],
)
def test_one_training_rule_for_several_detectors(db, train, until):
    resolved = resolve(db, train)
    assert resolved.request.train_until == until
    assert until in [w[0] for w in resolved.windows]  # the cut starts a window
    assert resolved.train == train and resolved.backfill_id != resolve(db, None).backfill_id


def test_points_count_the_detectors_own_step_when_alone(db):
    assert resolve(db, "100 points", detectors=["fine"]).request.train_until == START + timedelta(
        minutes=100
    )


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (
            "fortnight",
            "is not a duration (3d), a fraction of the range (0.2 or 20%) or a number of points",
        ),
        ("150%", "between 0 and 1"),
        ("0 points", "at least 1 point"),
        ("100%", "between 0 and 1"),
        ("11d", "covers the whole range"),
        ("3000 points", "covers the whole range"),  # 3000 x 5 min > 10 days
    ],
)
def test_a_bad_training_rule_names_the_option(db, train, message):
    with pytest.raises(InvalidInput) as err:
        resolve(db, train)
    assert message in err.value.message and err.value.detail["field"] == "--train"


def test_parse_keeps_a_bare_number_as_seconds():
    assert TrainRule.parse("3600") == TrainRule("3600", seconds=3600.0)
    assert TrainRule.parse("0.5").fraction == 0.5
