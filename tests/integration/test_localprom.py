"""aiops.localprom: history loaded in daily chunks by promtool, served by a real Prometheus."""

from __future__ import annotations

import time

import httpx
import pytest

from aiops.localprom import Family, load_history, run_prometheus

pytestmark = pytest.mark.prometheus


def test_history_loaded_in_chunks_is_served_complete_and_exact(tmp_path):
    step, points = 300, 3 * 288  # three days at 5 minutes
    end = int(time.time() // 3600) * 3600 - 3600
    start = end - (points - 1) * step

    def samples(k: int):
        return ((start + i * step, float(i * 10 + k)) for i in range(points))

    fams = [
        Family(
            "chunked_gauge",
            "gauge",
            [({"series": str(k), "odd": 'a"b\\c'}, samples(k)) for k in range(2)],
        ),
        Family(
            "chunked_total",
            "counter",
            [({}, ((start + i * step, float(i)) for i in range(points)))],
        ),
    ]
    assert load_history(fams, tmp_path / "data", tmp_path / "om") == 3 * points
    assert not list((tmp_path / "om").iterdir())  # the chunk files are gone
    with run_prometheus(tmp_path / "prom", data_dir=tmp_path / "data") as prom:
        r = httpx.get(
            prom.url + "/api/v1/query_range",
            params={"query": "chunked_gauge", "start": start, "end": end, "step": step},
            timeout=30,
        ).json()
        got = {s["metric"]["series"]: s for s in r["data"]["result"]}
        assert set(got) == {"0", "1"} and got["1"]["metric"]["odd"] == 'a"b\\c'
        for k, s in got.items():
            assert [float(v) for _, v in s["values"]] == [i * 10 + int(k) for i in range(points)]
        total = httpx.get(
            prom.url + "/api/v1/query", params={"query": "chunked_total", "time": end}, timeout=30
        ).json()
        assert float(total["data"]["result"][0]["value"][1]) == points - 1
