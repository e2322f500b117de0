"""threshold: static bounds, exact scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aiops import detectors
from tests.unit.detectors.detectors_support import index


def scores(det: detectors.Detector, values: list[float]) -> list[float]:
    return det.score(pd.Series(values, index=index(len(values)))).round(12)["score"].tolist()


def test_two_sided_scores_excess_over_the_band_width():
    det = detectors.create("threshold", lower=0.0, upper=10.0)
    assert scores(det, [5.0, 10.0, 0.0, 11.0, -1.0, 30.0]) == [0.0, 0.0, 0.0, 1.1, 1.1, 3.0]
    frame = detectors.create("threshold", lower=0.0, upper=10.0).score(
        pd.Series([1.0], index=index(1))
    )
    assert frame.iloc[0].tolist() == [0.0, 5.0, 0.0, 10.0]


def test_one_sided_bounds_are_open_on_the_other_side():
    frame = detectors.create("threshold", upper=100.0).score(
        pd.Series([-1e9, 150.0], index=index(2))
    )
    assert frame["score"].tolist() == [0.0, 1.5]
    assert frame["lower"].tolist() == [-np.inf, -np.inf] and frame["expected"].tolist() == [
        100.0,
        100.0,
    ]
    assert scores(detectors.create("threshold", lower=0.0), [-2.0, 1.0]) == [
        3.0,
        0.0,
    ]  # |bound| = 0: reference 1


def test_nothing_is_learned():
    det = detectors.create("threshold", lower=1.0)
    det.fit(pd.Series(np.arange(100.0), index=index(100)))
    assert det.state()["learned"] == {}
