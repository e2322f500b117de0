"""A detector's transform steps through the API: a bad step is a 400 naming it; saved steps
come back normalised and the series chart replays them."""

from __future__ import annotations

import pytest

from tests.support import lokidata

pytestmark = pytest.mark.no_prometheus


@pytest.mark.parametrize(
    ("transforms", "field"),
    [
        ([{"op": "smooth"}], "transforms[0].op"),
        (
            [{"op": "rolling", "window": "10m"}, {"op": "resample", "step": "90s"}],
            "transforms[1].step",
        ),
        ([{"op": "aggregate", "by": "job"}], "transforms[0].by"),
    ],
)
async def test_a_bad_transform_step_is_a_400_naming_it(api, transforms, field):
    body = {
        "id": "d1",
        "kind": "zscore",
        "transforms": transforms,
        "datasource": {"name": "loki", "query": lokidata.QUERY, "step": 60},
    }
    r = await api.client.post("/api/detectors", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["field"] == field and field in r.json()["error"]
    assert api.store.list_detectors() == []


async def test_steps_are_saved_patched_and_replayed_by_the_series(api):
    lokidata.load(api.loki)
    body = {
        "id": "errors",
        "kind": "zscore",
        "status": "running",
        "params": {"window": 6, "calibration": "none"},
        "datasource": {"name": "loki", "query": lokidata.QUERY, "step": 60},
        "transforms": [{"op": "resample", "step": "5m", "how": "max"}],
    }
    r = await api.client.post("/api/detectors", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["transforms"] == [{"op": "resample", "step": 300.0, "how": "max"}]
    burst = lokidata.burst_at()
    r = await api.client.get(
        "/api/detectors/errors/series", params={"start": burst - 1800, "end": burst + 1200}
    )
    assert r.status_code == 200, r.text
    (series,) = r.json()["series"]
    stamps = series["timestamps"]
    assert all((t + 60) % 300 == 0 for t in stamps)  # a bucket is stamped with its last step
    assert max(series["values"]) == 40.0  # the burst's minute is the max of its bucket
    r = await api.client.patch(
        "/api/detectors/errors", json={"transforms": [{"op": "rolling", "window": "bad"}]}
    )
    assert r.status_code == 400 and r.json()["detail"]["field"] == "transforms[0].window", r.text
    r = await api.client.patch("/api/detectors/errors", json={"transforms": []})
    assert r.status_code == 200 and r.json()["transforms"] == []
