"""The pipeline's pure steps: collection windows and detection runs over multi-series frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from aiops.pipeline import collection_window, run_detection

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_first_window_reaches_back_the_lookback_and_ends_one_step_before_now():
    w = collection_window(
        step_seconds=60, lookback_seconds=3600, checkpoint=None, now=T0 + timedelta(seconds=3630)
    )
    assert w.end == T0 + timedelta(minutes=59)  # now=60:30 minus one step, floored to the minute
    assert w.start == T0 - timedelta(minutes=1) and w.points == 61


def test_next_window_starts_one_step_after_the_checkpoint_so_downtime_leaves_no_gap():
    cp = T0 + timedelta(minutes=10)
    w = collection_window(
        step_seconds=60, lookback_seconds=600, checkpoint=cp, now=T0 + timedelta(hours=5)
    )
    assert w.start == T0 + timedelta(minutes=11) and w.end == T0 + timedelta(hours=4, minutes=59)


def test_nothing_to_collect_until_a_full_step_has_passed():
    cp = T0 + timedelta(minutes=10)
    assert (
        collection_window(
            step_seconds=60,
            lookback_seconds=600,
            checkpoint=cp,
            now=T0 + timedelta(minutes=11, seconds=59),
        )
        is None
    )
    assert (
        collection_window(
            step_seconds=60, lookback_seconds=600, checkpoint=cp, now=T0 + timedelta(minutes=12)
        )
        is not None
    )


def sample_frame(
    n: int, *, spike_at: int | None = None, instances=("a", "b"), start: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    rows = []
    for inst in instances:
        values = 10 + rng.normal(0, 0.5, n)
        if spike_at is not None and inst == "a":
            values[spike_at - start] += 25
        for i in range(n):
            rows.append((T0 + timedelta(minutes=start + i), values[i], inst))
    ts, v, inst = zip(*rows)
    return pd.DataFrame(
        {"timestamp": pd.DatetimeIndex(ts), "value": v, "instance": pd.Categorical(inst)}
    )


def run(frame, states, mode="running"):
    return run_detection(
        detector_id="d1",
        kind="zscore",
        params={"window": 30},
        threshold=1.0,
        mode=mode,
        frame=frame,
        states=states,
        params_hash="h",
        flow_run_id="run-1",
    )


def test_training_fits_every_series_and_emits_nothing():
    out = run(sample_frame(100), {}, mode="training")
    assert (
        out.events == []
        and out.series == 2
        and sorted(out.states) == ['instance="a"', 'instance="b"']
    )
    assert out.new_series == ['instance="a"', 'instance="b"']


def test_running_flags_the_spike_with_provenance_and_learns_per_series():
    trained = run(sample_frame(100), {}, mode="training")
    states = {k: v[1] for k, v in trained.states.items()}
    out = run(sample_frame(60, spike_at=130, start=100), states)
    spikes = [e for e in out.events if e["ts"] == T0 + timedelta(minutes=130)]
    assert len(spikes) == 1 and spikes[0]["labels"] == {"instance": "a"}
    assert spikes[0]["score"] > 1 and spikes[0]["expected"] < spikes[0]["value"]
    assert (
        spikes[0]["model_kind"] == "zscore"
        and spikes[0]["params_hash"] == "h"
        and spikes[0]["flow_run_id"] == "run-1"
    )
    assert out.new_series == [] and out.scored == 120
    assert {e["labels"]["instance"] for e in out.events} <= {"a", "b"}


def test_rerunning_the_same_window_scores_nothing_twice():
    trained = run(sample_frame(100), {}, mode="training")
    states = {k: v[1] for k, v in trained.states.items()}
    first = run(sample_frame(60, spike_at=130, start=100), states)
    again = run(
        sample_frame(60, spike_at=130, start=100), {k: v[1] for k, v in first.states.items()}
    )
    assert again.events == [] and again.scored == 0 and again.skipped_points == 120


def test_a_series_appearing_later_is_picked_up_with_a_fresh_model():
    trained = run(sample_frame(100, instances=("a",)), {}, mode="training")
    states = {k: v[1] for k, v in trained.states.items()}
    out = run(sample_frame(40, start=100, instances=("a", "c")), states)
    assert out.new_series == ['instance="c"'] and 'instance="c"' in out.states
    # warm-up of the new series is neutral: no anomaly events for it
    assert not [e for e in out.events if e["labels"]["instance"] == "c"]


def test_an_empty_frame_is_an_empty_run():
    out = run(pd.DataFrame({"timestamp": pd.DatetimeIndex([], tz="UTC"), "value": []}), {})
    assert out.series == 0 and out.events == [] and out.states == {}


def test_empty_probes_double_up_to_the_buffer():
    from datetime import UTC, datetime, timedelta

    from aiops.pipeline import Window, next_piece

    t = datetime(2026, 1, 1, tzinfo=UTC)
    whole = Window(t, t + timedelta(days=10), 60.0)
    sizes = [next_piece(whole, t, 0, 1000, empty_probes=k).points for k in range(9)]
    assert sizes == [10, 20, 40, 80, 160, 320, 640, 1000, 1000]
    assert (
        next_piece(whole, t, 4, 1000, empty_probes=5).points == 250
    )  # series known: sized to the buffer


def test_an_empty_buffer_drains_to_an_empty_sample_frame():
    from aiops.sources.buffer import SampleBuffer
    from aiops.transform import standardize

    frame = SampleBuffer(10).drain()
    assert list(frame.columns) == ["timestamp", "value"] and frame.empty
    assert standardize(frame, step=15).empty
