"""``GET /api/detectors/{id}/series`` against the real Prometheus: the samples, the band the
detector's model gives them (the same numbers the pipeline computes), the stored anomalies as
markers, and bad input answered 4xx with a message."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from aiops.api import ApiOptions
from aiops.labels import series_key
from aiops.localprom import free_port
from aiops.pipeline import run_detection
from tests.support.prometheus import SPIKE_INDEX

pytestmark = pytest.mark.prometheus

QUERY = "aiops_test_anomaly"


# The band mechanics, exactly: the band distance as the score (a calibrated score also needs
# the long-run history of band distances, which the replay adds: see the warm-up test below).
PARAMS = {"window": 40, "calibration": "none"}


def detector(
    api, detector_id: str = "flat", *, query: str = QUERY, name: str = "prometheus", **extra
):
    spec = {
        "id": detector_id,
        "kind": "zscore",
        "params": PARAMS,
        "status": "running",
        "datasource": {"name": name, "query": query, "step": 15},
        **extra,
    }
    return api.store.create_detector(spec)


def around_spike(prometheus, before: int = 20, after: int = 20) -> dict[str, int]:
    h = prometheus.history
    return {"start": h.timestamp(SPIKE_INDEX - before), "end": h.timestamp(SPIKE_INDEX + after)}


async def test_series_carry_values_band_and_score_and_the_spike_breaks_the_band(api, prometheus):
    detector(api)
    rng = around_spike(prometheus)
    r = await api.client.get("/api/detectors/flat/series", params=rng)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["start"], body["end"], body["step"]) == (rng["start"], rng["end"], 15)
    assert (
        body["kind"] == "zscore"
        and PARAMS.items() <= body["params"].items()
        and body["threshold"] == 1
    )
    assert body["datasource"] == "prometheus" and body["query"] == QUERY
    assert body["warmup_points"] == 40 and body["warmup_complete"] is True
    assert body["series_total"] == 2 and body["truncated"] is False
    by_instance = {s["labels"]["instance"]: s for s in body["series"]}
    a = by_instance["a"]
    assert a["key"] == series_key(a["labels"])
    h = prometheus.history
    assert a["timestamps"] == [h.timestamp(i) for i in range(SPIKE_INDEX - 20, SPIKE_INDEX + 21)]
    for name in ("values", "expected", "lower", "upper", "score"):
        assert len(a[name]) == 41, name
    # warmed up before the range: a band from the first point on
    assert all(v is not None for v in a["expected"] + a["lower"] + a["upper"])
    spike = a["timestamps"].index(h.timestamp(SPIKE_INDEX))
    assert a["values"][spike] == pytest.approx(h.series[7].value(SPIKE_INDEX))
    assert a["values"][spike] > a["upper"][spike] and a["score"][spike] > 1
    normal = [i for i in range(41) if i != spike]
    assert all(a["lower"][i] <= a["values"][i] <= a["upper"][i] for i in normal)
    assert all(9.9 < a["expected"][i] < 10.2 for i in range(41))
    assert max(by_instance["b"]["score"]) <= 1


async def test_the_band_is_the_pipelines_band(api, prometheus):
    """The replay is aiops.pipeline.run_detection over the same samples: same expected/band."""
    detector(api)
    rng = around_spike(prometheus)
    body = (await api.client.get("/api/detectors/flat/series", params=rng)).json()
    frame = (
        await api.state.prometheus().query_range(QUERY, rng["start"] - 40 * 15, rng["end"], 15)
    ).to_frame()
    from aiops.transform import standardize

    run = run_detection(
        detector_id="flat",
        kind="zscore",
        params=PARAMS,
        threshold=1.0,
        mode="running",
        frame=standardize(frame, step=15),
        states={},
    )
    [event] = run.events
    a = next(s for s in body["series"] if s["key"] == event["series_key"])
    i = a["timestamps"].index(event["ts"].timestamp())
    assert (a["expected"][i], a["lower"][i], a["upper"][i], a["score"][i]) == pytest.approx(
        (event["expected"], event["lower"], event["upper"], event["score"])
    )


async def test_the_band_widens_with_the_threshold(api, prometheus):
    detector(api, "one")
    detector(api, "two", threshold=2.0)
    rng = around_spike(prometheus)
    one = (await api.client.get("/api/detectors/one/series", params=rng)).json()["series"][0]
    two = (await api.client.get("/api/detectors/two/series", params=rng)).json()["series"][0]
    assert two["expected"] == pytest.approx(one["expected"])
    width = lambda s: np.subtract(s["upper"], s["lower"])  # noqa: E731
    assert width(two) == pytest.approx(2 * width(one))


async def test_stored_anomalies_in_the_range_are_the_markers(api, prometheus):
    detector(api)
    rng = around_spike(prometheus)
    labels = {"__name__": QUERY, "instance": "a"}
    at = lambda ts: datetime.fromtimestamp(ts, UTC)  # noqa: E731
    inside, outside = api.store.insert_events(
        [
            {
                "type": "anomaly",
                "detector_id": "flat",
                "labels": labels,
                "ts": at(rng["start"] + 300),
                "value": 15.0,
                "score": 5.0,
            },
            {
                "type": "anomaly",
                "detector_id": "flat",
                "labels": labels,
                "ts": at(rng["start"] - 600),
                "value": 15.0,
                "score": 5.0,
            },
        ]
    )
    api.store.insert_events(
        [
            {
                "type": "anomaly",
                "detector_id": "other",
                "labels": labels,
                "ts": at(rng["start"] + 300),
            }
        ]
    )
    body = (await api.client.get("/api/detectors/flat/series", params=rng)).json()
    assert [m["id"] for m in body["anomalies"]] == [inside.id]
    [m] = body["anomalies"]
    assert m["ts"] == rng["start"] + 300 and m["value"] == 15.0 and m["severity"] == "critical"
    assert (
        m["series_key"] in {s["key"] for s in body["series"]}
        and body["anomalies_truncated"] is False
    )


async def test_defaults_the_last_hour_at_the_detectors_step(api, prometheus):
    detector(api)
    body = (await api.client.get("/api/detectors/flat/series")).json()
    assert body["step"] == 15 and body["end"] % 15 == 0
    assert body["end"] - body["start"] == 3600
    assert body["end"] <= datetime.now(UTC).timestamp()
    if prometheus.history.end > body["start"] + 600:  # the history reaches into the last hour
        assert body["series_total"] == 2 and all(s["timestamps"] for s in body["series"])
    coarse = (
        await api.client.get("/api/detectors/flat/series", params={"start": "now-2h", "step": "1m"})
    ).json()
    assert coarse["step"] == 60 and coarse["end"] - coarse["start"] == pytest.approx(7200, abs=60)


async def test_many_series_are_cut_to_the_limit_and_say_so(make_api, prometheus):
    async with make_api(options=ApiOptions(tail_interval=0.05, series_max_series=5)) as api:
        detector(api, "hostile", query="aiops_hostile")
        body = (
            await api.client.get("/api/detectors/hostile/series", params=around_spike(prometheus))
        ).json()
        assert body["series_total"] > 5 and body["truncated"] is True and len(body["series"]) == 5


async def test_a_long_warmup_is_cut_to_the_limit_and_says_so(make_api, prometheus):
    async with make_api(options=ApiOptions(tail_interval=0.05, series_max_warmup_points=10)) as api:
        detector(api)
        body = (
            await api.client.get("/api/detectors/flat/series", params=around_spike(prometheus))
        ).json()
        assert body["warmup_points"] == 10 and body["warmup_complete"] is False
        # zscore needs half a window (20 points) before its first band
        assert body["series"][0]["expected"][0] is None


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"start": "now-1h", "end": "now-2h"}, 400, "start must be before end"),
        ({"start": "now-1d", "step": "1s"}, 400, "points per series"),
        ({"start": "now-10s", "end": "now-5s", "step": "1h"}, 400, "no step"),
        ({"start": "yesterday"}, 422, "query.start"),
        ({"step": "0"}, 422, "query.step"),
        ({"step": "-1m"}, 422, "query.step"),
        ({"limit": "3"}, 422, "unknown field"),
    ],
)
async def test_bad_ranges_are_4xx_with_a_message(api, params, status, words):
    detector(api)
    r = await api.client.get("/api/detectors/flat/series", params=params)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


async def test_unknown_detector_is_404_and_one_without_datasource_400(api):
    r = await api.client.get("/api/detectors/nope/series")
    assert r.status_code == 404 and "nope" in r.json()["error"]
    api.store.create_detector({"id": "bare", "kind": "zscore"})
    r = await api.client.get("/api/detectors/bare/series")
    assert r.status_code == 400 and "no datasource" in r.json()["error"]
    detector(
        api, "logs", name="loki"
    )  # a Loki detector is charted too: here Loki refuses the PromQL
    r = await api.client.get("/api/detectors/logs/series")
    assert r.status_code == 400 and "parse error" in r.json()["error"]


async def test_a_query_prometheus_refuses_is_400_and_a_prometheus_down_503(make_api):
    async with make_api() as api:
        detector(api, "bad", query="sum(")
        r = await api.client.get("/api/detectors/bad/series")
        assert r.status_code == 400, r.text
    async with make_api(prometheus_url=f"http://127.0.0.1:{free_port()}", loki=False) as api:
        detector(api)
        r = await api.client.get("/api/detectors/flat/series")
        assert r.status_code == 503, r.text
        assert r.json()["error"]


async def test_every_kind_replays(api, prometheus):
    kinds = {
        "zscore": {},
        "mad": {"window": 30},
        "ewma": {"alpha": 0.2},
        "quantile": {"window": 30},
        "seasonal": {"bucket_minutes": 60},
        "threshold": {"upper": 12.0},
    }
    for kind, params in kinds.items():
        api.store.create_detector(
            {
                "id": f"k-{kind}",
                "kind": kind,
                "params": params,
                "datasource": {"query": QUERY, "step": 15},
            }
        )
        r = await api.client.get(f"/api/detectors/k-{kind}/series", params=around_spike(prometheus))
        assert r.status_code == 200, (kind, r.text)
        a = next(s for s in r.json()["series"] if s["labels"]["instance"] == "a")
        spike = a["timestamps"].index(prometheus.history.timestamp(SPIKE_INDEX))
        if kind != "seasonal":  # a day-long profile has no band after 6 hours of history
            assert a["score"][spike] > 1, kind
        assert all(math.isfinite(v) for v in a["score"]), kind


async def test_needs_the_token(api):
    detector(api)
    r = await api.client.get(
        "/api/detectors/flat/series", headers={"Authorization": "Bearer wrong"}
    )
    assert r.status_code == 401


EDGES = [
    "0",
    "1",
    "1e308",
    "-1",
    "now",
    "now+1y",
    "now-100y",
    "7258118399",
    "1.5",
    "0.001",
    "1e-9",
    "2026-01-01T00:00:00Z",
    "99999999999999999999",
    "nan",
    "inf",
    "",
    " ",
    "1h",
    "-1h",
    "1y",
]


@pytest.mark.parametrize("name", ["start", "end", "step"])
async def test_no_value_makes_it_answer_5xx(api, name):
    detector(api)
    for value in EDGES:
        r = await api.client.get("/api/detectors/flat/series", params={name: value})
        assert r.status_code < 500, (name, value, r.text)
        assert r.status_code == 200 or r.json()["error"], (name, value)
    for start, end, step in [
        ("0", "7258118399", "1y"),
        ("0", "1", "1"),
        ("1", "2", "1e308"),
        ("now-1y", "now", "1h"),
    ]:
        r = await api.client.get(
            "/api/detectors/flat/series", params={"start": start, "end": end, "step": step}
        )
        assert r.status_code < 500, (start, end, step, r.text)


def test_a_calibrated_score_replays_the_long_run_history_of_its_band_distances():
    from aiops import detectors
    from aiops.api.series import warmup_points

    assert warmup_points(detectors.create("zscore", window=40, calibration="none"), 15) == 40
    # the calibration's long-run mean and spread of band distances follow the band
    assert warmup_points(detectors.create("zscore", window=40), 15) == 40 + 1000
    # auto first looks for a period (600 points, two days at most 4,000 points), then its windows
    assert warmup_points(detectors.create("auto", long_window=100), 60) == 2880 + 240 + 100
    assert warmup_points(detectors.create("threshold", upper=1.0), 15) == 0
