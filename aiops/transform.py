"""Transformers: pure functions from sample frames to sample frames.

A *sample frame* has one row per sample: ``timestamp`` (UTC), ``value`` (float) and one
column per series label (what :meth:`aiops.sources.prometheus.QueryResult.to_frame` gives).
Nothing here does I/O or keeps state; every function returns a new frame.

Standard transformers (:func:`standardize`): sort, drop duplicate samples, align to the step,
drop NaN, undo counter resets when asked, mark gaps. Aggregation transformers: group by
labels (:func:`aggregate`), resample to a coarser step (:func:`resample`), rolling windows
(:func:`rolling`). :func:`split_series` hands detectors one float series per label set.

A detector declares its own *transform steps* (``transforms``: :func:`validate_steps` checks
them when it is saved), applied after standardisation by the tick, the backfill and the series
replay alike (:func:`apply_steps`)::

    [{"op": "resample", "step": "5m", "how": "avg"},
     {"op": "rolling", "window": "10m", "how": "avg"},
     {"op": "aggregate", "how": "sum", "by": ["job"]}]

Their result does not depend on where a window is cut: the caller collects
:func:`history_seconds` more before the window (what rolling windows and resample buckets
reach back to) and keeps the points from the window's start; a resample bucket is stamped with
its *last* step (``bucket start + resample step - step``), so it is emitted by the window that
holds all of its samples, never half-filled at the window's edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from aiops.errors import InvalidInput
from aiops.labels import series_key
from aiops.timeutil import parse_seconds

__all__ = [
    "label_columns",
    "series_key",
    "standardize",
    "aggregate",
    "resample",
    "rolling",
    "split_series",
    "AGGREGATIONS",
    "TRANSFORM_OPS",
    "validate_steps",
    "history_seconds",
    "output_step",
    "apply_steps",
]

AGGREGATIONS = ("sum", "avg", "min", "max", "count", "median")
Aggregation = Literal["sum", "avg", "min", "max", "count", "median"]
_PANDAS_AGG = {"avg": "mean"}


def label_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("timestamp", "value", "gap_before")]


def _labels_of(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and not _isna(v)}


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _check(frame: pd.DataFrame) -> None:
    missing = {"timestamp", "value"} - set(frame.columns)
    if missing:
        raise InvalidInput(f"sample frame lacks column(s) {sorted(missing)}", field="frame")


def _group_order(item: tuple[Any, Any]) -> tuple[str, ...]:
    key = item[0] if isinstance(item[0], tuple) else (item[0],)
    return tuple("" if _isna(v) else str(v) for v in key)


def _group_keys(frame: pd.DataFrame) -> list[str]:
    return label_columns(frame)


def standardize(
    frame: pd.DataFrame,
    *,
    step: Any = None,
    drop_nan: bool = True,
    counter: bool = False,
    gap: Any = None,
) -> pd.DataFrame:
    """Sort by series and time, drop duplicate samples (the last wins), align to ``step``,
    drop NaN/stale samples, undo counter resets (``counter=True``), and add ``gap_before``:
    True where the distance to the previous sample of the series exceeds ``gap``
    (default 2 x step when a step is given)."""
    _check(frame)
    labels = _group_keys(frame)
    if isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype) and not counter:
        return _standardize_fast(frame, labels, step=step, drop_nan=drop_nan, gap=gap)
    return _standardize_pandas(
        frame, labels, step=step, drop_nan=drop_nan, counter=counter, gap=gap
    )


def _standardize_pandas(
    frame: pd.DataFrame, labels: list[str], *, step: Any, drop_nan: bool, counter: bool, gap: Any
) -> pd.DataFrame:
    out = frame.copy()
    if step is not None:
        step_ns = int(parse_seconds(step, field="step") * 1e9)
        ns = out["timestamp"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
        out["timestamp"] = pd.DatetimeIndex(
            ((ns // step_ns) * step_ns).view("datetime64[ns]"), tz="UTC"
        )
    if drop_nan:
        out = out[np.isfinite(out["value"].to_numpy(dtype=np.float64, na_value=np.nan))]
    sort_cols = [*labels, "timestamp"]
    out = out.sort_values(sort_cols, kind="stable")
    out = out.drop_duplicates(subset=sort_cols, keep="last")
    if counter and len(out):
        out = out.assign(value=_undo_counter_resets(out, labels))
    gap_seconds = (
        parse_seconds(gap, field="gap")
        if gap is not None
        else (2 * parse_seconds(step, field="step") if step is not None else None)
    )
    if gap_seconds is not None:
        delta = _per_series_diff(out["timestamp"], out, labels)
        out = out.assign(gap_before=(delta.dt.total_seconds() > gap_seconds).to_numpy())
    return out.reset_index(drop=True)


def _standardize_fast(
    frame: pd.DataFrame, labels: list[str], *, step: Any, drop_nan: bool, gap: Any
) -> pd.DataFrame:
    """:func:`standardize` for UTC timestamps, on arrays: the label sets are factorised
    once and one stable sort orders everything (the pandas path factorises them for the
    sort, the de-duplication and the gaps again; this is what a backfill does per window)."""
    ns = (
        frame["timestamp"]
        .dt.tz_convert("UTC")
        .dt.tz_localize(None)
        .to_numpy(dtype="datetime64[ns]")
        .view(np.int64)
    )
    if step is not None:
        step_ns = int(parse_seconds(step, field="step") * 1e9)
        ns = (ns // step_ns) * step_ns
    rows = np.arange(len(frame))
    if drop_nan:
        rows = rows[np.isfinite(frame["value"].to_numpy(dtype=np.float64, na_value=np.nan))]
    if labels and not _one_label_set(frame, labels):
        codes = frame.groupby(labels, observed=True, dropna=False, sort=True).ngroup().to_numpy()
    else:
        codes = np.zeros(len(frame), dtype=np.int64)
    rows = rows[np.lexsort((ns[rows], codes[rows]))]  # stable: equal samples keep their order
    c, t = codes[rows], ns[rows]
    last = np.ones(len(rows), dtype=bool)  # of equal (series, time) samples the last wins
    last[:-1] = (c[1:] != c[:-1]) | (t[1:] != t[:-1])
    rows, c, t = rows[last], c[last], t[last]
    out = frame.take(rows)
    if step is not None:
        out["timestamp"] = pd.DatetimeIndex(t.view("datetime64[ns]"), tz="UTC")
    gap_seconds = (
        parse_seconds(gap, field="gap")
        if gap is not None
        else (2 * parse_seconds(step, field="step") if step is not None else None)
    )
    if gap_seconds is not None:
        gaps = np.zeros(len(rows), dtype=bool)
        gaps[1:] = (c[1:] == c[:-1]) & ((t[1:] - t[:-1]) > gap_seconds * 1e9)
        out["gap_before"] = gaps
    return out.reset_index(drop=True)


def _one_label_set(frame: pd.DataFrame, labels: list[str]) -> bool:
    """True when every row has the same label values (none missing): one series."""
    if not len(frame):
        return False
    for c in labels:
        column = frame[c]
        if isinstance(column.dtype, pd.CategoricalDtype):
            codes = column.cat.codes.to_numpy()
            if codes[0] < 0 or (codes != codes[0]).any():
                return False
        else:
            values = column.to_numpy()
            first = values[0]
            if not isinstance(first, str) or (values != first).any():
                return False
    return True


def _per_series_diff(column: pd.Series, frame: pd.DataFrame, labels: list[str]) -> pd.Series:
    if not labels:
        return column.diff()
    return column.groupby(
        [frame[c] for c in labels], observed=True, dropna=False, sort=False
    ).diff()


def _undo_counter_resets(frame: pd.DataFrame, labels: list[str]) -> np.ndarray:
    """Add back what a counter lost at each reset (a drop in value), per series."""
    values = frame["value"]
    prev = (
        values.shift(1)
        if not labels
        else values.groupby(
            [frame[c] for c in labels], observed=True, dropna=False, sort=False
        ).shift(1)
    )
    dropped = np.where(values.to_numpy() < prev.to_numpy(), prev.to_numpy(), 0.0)
    dropped = np.nan_to_num(dropped, nan=0.0)
    offsets = pd.Series(dropped, index=frame.index)
    if labels:
        offsets = offsets.groupby(
            [frame[c] for c in labels], observed=True, dropna=False, sort=False
        ).cumsum()
    else:
        offsets = offsets.cumsum()
    return values.to_numpy() + offsets.to_numpy()


def aggregate(
    frame: pd.DataFrame, how: Aggregation = "sum", by: Sequence[str] = ()
) -> pd.DataFrame:
    """Combine series sample-by-sample (same timestamp), keeping only the ``by`` labels."""
    _check(frame)
    if how not in AGGREGATIONS:
        raise InvalidInput(
            f"aggregation {how!r} is not one of {', '.join(AGGREGATIONS)}", field="how"
        )
    missing = [b for b in by if b not in frame.columns]
    if missing:
        raise InvalidInput(
            f"cannot group by {missing}: the frame has labels {label_columns(frame)}", field="by"
        )
    keys = [*by, "timestamp"]
    grouped = frame.groupby(keys, observed=True, dropna=False, sort=True)["value"]
    out = grouped.agg(_PANDAS_AGG.get(how, how)).reset_index()
    return out[["timestamp", "value", *by]]


def resample(frame: pd.DataFrame, step: Any, how: Aggregation = "avg") -> pd.DataFrame:
    """Per series, bucket samples into ``step`` (floor) and combine each bucket with ``how``."""
    _check(frame)
    if how not in AGGREGATIONS:
        raise InvalidInput(
            f"aggregation {how!r} is not one of {', '.join(AGGREGATIONS)}", field="how"
        )
    labels = label_columns(frame)
    step_ns = int(parse_seconds(step, field="step") * 1e9)
    ns = frame["timestamp"].dt.tz_convert(None).to_numpy(dtype="datetime64[ns]").view(np.int64)
    bucket = pd.DatetimeIndex(((ns // step_ns) * step_ns).view("datetime64[ns]"), tz="UTC")
    work = frame[["value", *labels]].assign(timestamp=bucket)
    out = (
        work.groupby([*labels, "timestamp"], observed=True, dropna=False, sort=True)["value"]
        .agg(_PANDAS_AGG.get(how, how))
        .reset_index()
    )
    return out[["timestamp", "value", *labels]]


def rolling(frame: pd.DataFrame, window: Any, how: Aggregation = "avg") -> pd.DataFrame:
    """Per series, replace each value by ``how`` over the trailing time ``window`` (causal)."""
    _check(frame)
    if how not in AGGREGATIONS:
        raise InvalidInput(
            f"aggregation {how!r} is not one of {', '.join(AGGREGATIONS)}", field="how"
        )
    seconds = parse_seconds(window, field="window")
    labels = label_columns(frame)
    ordered = frame.sort_values([*labels, "timestamp"], kind="stable")
    values = ordered.set_index("timestamp")["value"]
    func = _PANDAS_AGG.get(how, how)
    if labels:
        rolled = (
            values.groupby([ordered[c].to_numpy() for c in labels], sort=False, dropna=False)
            .rolling(pd.Timedelta(seconds=seconds))
            .agg(func)
        )
        rolled = rolled.to_numpy()
    else:
        rolled = values.rolling(pd.Timedelta(seconds=seconds)).agg(func).to_numpy()
    return ordered.assign(value=rolled).reset_index(drop=True)


def split_series(frame: pd.DataFrame) -> Iterator[tuple[str, dict[str, str], pd.Series]]:
    """Yield ``(series_key, labels, series)`` per label set: a float series on a UTC index,
    sorted and without duplicate timestamps (what detectors take)."""
    _check(frame)
    labels = label_columns(frame)
    if frame.empty:
        return
    # Row positions per label set, then plain array takes: building a sub-frame per series
    # costs more than the detector that scores it.
    stamps = pd.DatetimeIndex(frame["timestamp"])
    numbers = frame["value"].to_numpy(dtype=np.float64)
    if not labels:
        groups: Any = [((), np.arange(len(frame)))]
    elif _one_label_set(frame, labels):  # one series (most queries): no groupby needed
        groups = [(tuple(frame[c].iat[0] for c in labels), np.arange(len(frame)))]
    else:
        groups = sorted(
            frame.groupby(labels, observed=True, dropna=False, sort=False).indices.items(),
            key=_group_order,
        )
    for values, rows in groups:
        values = values if isinstance(values, tuple) else (values,)
        label_set = _labels_of(dict(zip(labels, values, strict=True)))
        index = stamps[rows]
        s = pd.Series(numbers[rows], index=index, name="value", copy=False)
        if not index.is_monotonic_increasing or not index.is_unique:
            s = s[~s.index.duplicated(keep="last")].sort_index()
        yield series_key(label_set), label_set, s


# --------------------------------------------------------------------------- a detector's steps

TRANSFORM_OPS = ("resample", "rolling", "aggregate")
_STEP_KEYS = {
    "resample": {"op", "step", "how"},
    "rolling": {"op", "window", "how"},
    "aggregate": {"op", "how", "by"},
}
MAX_STEPS = 10


def validate_steps(
    steps: Any, *, field: str = "transforms", step: float | None = None
) -> list[dict[str, Any]]:
    """A detector's transform steps, normalised (durations in seconds, ``how`` and ``by``
    filled in). ``step``: the detector's step, when known (a resample step must be a multiple
    of it). Raises :class:`InvalidInput` naming the field, e.g. ``transforms[1].window``."""
    if steps is None:
        return []
    if not isinstance(steps, (list, tuple)):
        raise InvalidInput(f"{field}: expected a list of steps", field=field)
    if len(steps) > MAX_STEPS:
        raise InvalidInput(f"{field}: at most {MAX_STEPS} steps", field=field)
    out: list[dict[str, Any]] = []
    for i, raw in enumerate(steps):
        where = f"{field}[{i}]"
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"{where}: expected a mapping with an 'op'", field=where)
        op = raw.get("op")
        if op not in TRANSFORM_OPS:
            raise InvalidInput(
                f"{where}.op: {op!r} is not one of {', '.join(TRANSFORM_OPS)}", field=f"{where}.op"
            )
        unknown = sorted(set(raw) - _STEP_KEYS[op])
        if unknown:
            raise InvalidInput(
                f"{where}.{unknown[0]}: unknown field for {op}", field=f"{where}.{unknown[0]}"
            )
        how = raw.get("how", "sum" if op == "aggregate" else "avg")
        if how not in AGGREGATIONS:
            raise InvalidInput(
                f"{where}.how: {how!r} is not one of {', '.join(AGGREGATIONS)}",
                field=f"{where}.how",
            )
        item: dict[str, Any] = {"op": op, "how": how}
        if op in ("resample", "rolling"):
            key = "step" if op == "resample" else "window"
            if key not in raw:
                raise InvalidInput(f"{where}.{key}: required for {op}", field=f"{where}.{key}")
            item[key] = parse_seconds(raw[key], field=f"{where}.{key}")
            if (
                op == "resample"
                and step
                and (item[key] < step or abs(item[key] / step - round(item[key] / step)) > 1e-9)
            ):
                raise InvalidInput(
                    f"{where}.step: {item[key]:g}s is not a multiple of the detector's step "
                    f"({step:g}s)",
                    field=f"{where}.step",
                )
        else:
            by = raw.get("by", [])
            if not isinstance(by, (list, tuple)) or not all(isinstance(b, str) and b for b in by):
                raise InvalidInput(
                    f"{where}.by: expected a list of label names", field=f"{where}.by"
                )
            item["by"] = list(by)
        out.append(item)
    return out


def history_seconds(steps: Sequence[Mapping[str, Any]]) -> float:
    """How far before a window the steps reach back: the samples to collect ahead of it so
    its first points come out as they would inside a longer window."""
    return float(
        sum(
            s.get("window", 0.0)
            if s["op"] == "rolling"
            else s.get("step", 0.0)
            if s["op"] == "resample"
            else 0.0
            for s in steps
        )
    )


def output_step(steps: Sequence[Mapping[str, Any]], step: float) -> float:
    """The spacing of the points the steps give (the last resample's step, else ``step``)."""
    for s in steps:
        if s["op"] == "resample":
            step = float(s["step"])
    return float(step)


def apply_steps(
    frame: pd.DataFrame, steps: Sequence[Mapping[str, Any]], *, step: float
) -> pd.DataFrame:
    """Run a detector's (validated) steps over a standardised frame at ``step``; the result
    is standardised again (sorted, ``gap_before`` at twice the output step). A resample
    bucket is stamped with its last step (see the module's docstring)."""
    if not steps:
        return frame
    out = frame.drop(columns=["gap_before"], errors="ignore")
    current = float(step)
    for s in steps:
        if out.empty:
            break
        if s["op"] == "resample":
            out = resample(out, s["step"], s["how"])
            shift = max(float(s["step"]) - current, 0.0)
            out = out.assign(timestamp=out["timestamp"] + pd.Timedelta(seconds=shift))
            current = float(s["step"])
        elif s["op"] == "rolling":
            out = rolling(out, s["window"], s["how"])
        else:
            out = aggregate(out, s["how"], s["by"])
    if out.empty:
        return frame.iloc[0:0]
    return standardize(out, gap=2 * current)
