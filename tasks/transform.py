"""Standard transformation of collected samples (pure; cached over closed windows)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE

from aiops.transform import standardize

__all__ = ["transform_metrics"]


@task(name="transform-metrics", cache_policy=INPUTS + TASK_SOURCE, cache_expiration=timedelta(hours=1))
def transform_metrics(frame: pd.DataFrame, step: float, counter: bool = False) -> pd.DataFrame:
    """Sort, de-duplicate, align to ``step``, drop NaN, mark gaps (and undo counter resets)."""
    return standardize(frame, step=step, counter=counter)
