"""Standard transformation of collected samples (pure).

Not result-cached: standardising a frame costs less than hashing it for a cache key and
writing the result to storage (measured with benchmarks/pipeline.py); the collection it
follows is cached instead.
"""

from __future__ import annotations

import pandas as pd
from prefect import task

from aiops.transform import standardize

__all__ = ["transform_metrics"]


@task(name="transform-metrics")
def transform_metrics(frame: pd.DataFrame, step: float, counter: bool = False) -> pd.DataFrame:
    """Sort, de-duplicate, align to ``step``, drop NaN, mark gaps (and undo counter resets)."""
    return standardize(frame, step=step, counter=counter)
