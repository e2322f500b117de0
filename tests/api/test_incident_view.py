"""One view per incident (``#/incidents/<id>``) in a real browser: its series with the band
and the incident's span, and its log triage beside it; reached from the feed and by URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from aiops.api import ApiOptions, create_app
from aiops.store import Store, series_key
from tests.api.support import TOKEN, FakeRuns, make_settings, serve
from tests.api.test_page import WAIT_MS, _is_loopback, browser  # noqa: F401  (the browser fixture)
from tests.support.prometheus import SPIKE_INDEX

pytestmark = pytest.mark.prometheus

REPORT = {
    "summary": "1 new error type, 1 new template (java.net.SocketTimeoutException)",
    "window": {
        "start": "2026-01-01T00:00:00+00:00",
        "end": "2026-01-01T00:10:00+00:00",
        "seconds": 600,
    },
    "baselines": [
        {
            "name": "previous",
            "start": "2025-12-31T23:50:00+00:00",
            "end": "2026-01-01T00:00:00+00:00",
            "lines": 130,
            "used": True,
        },
        {
            "name": "day",
            "start": "2025-12-31T00:00:00+00:00",
            "end": "2025-12-31T00:10:00+00:00",
            "lines": 0,
            "used": False,
        },
    ],
    "lines": {"incident": 260, "baseline": 130},
    "errors": {"incident": 65, "baseline": 0},
    "findings": [
        {
            "kind": "new_template",
            "severity": "warning",
            "template": "java.net.SocketTimeoutException: Read timed out <*>",
            "count": 65,
            "previous_count": 0,
            "examples": ["ERROR java.net.SocketTimeoutException: Read timed out payments-1"],
            "logql": {
                "pattern_filter": '{app="checkout"} |> "<_> java.net.SocketTimeoutException: '
                'Read timed out <_>"',
                "metric_query": "...",
            },
        },
        {
            "kind": "rate_jump",
            "severity": "info",
            "template": "WARN cache miss for key k<NUM>",
            "count": 65,
            "previous_count": 10,
            "ratio": 3.25,
            "examples": [],
            "logql": None,
        },
    ],
    "top_templates": [
        {"template_id": "t1", "template": "GET /cart/<NUM> served in <DUR>", "count": 130}
    ],
}


async def test_an_incident_view_shows_the_series_band_span_and_triage_and_is_reached_from_the_feed(
    tmp_path,
    prometheus,
    browser,  # noqa: F811
):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    try:
        store.create_detector(
            {
                "id": "flat",
                "name": "Flat with a spike",
                "kind": "zscore",
                "status": "running",
                "datasource": {"query": "aiops_test_anomaly", "step": 15},
                "triage": {"selector": '{app="checkout"}'},
            }
        )
        spike = datetime.fromtimestamp(prometheus.history.timestamp(SPIKE_INDEX), UTC)
        labels = {"__name__": "aiops_test_anomaly", "instance": "a"}
        store.commit_detection(
            "flat",
            incidents=[
                {
                    "series_key": series_key(labels),
                    "labels": labels,
                    "opened_at": spike,
                    "opened": True,
                    "last_anomalous_at": spike,
                    "resolved_at": spike + timedelta(minutes=5),
                    "points": 1,
                    "peak": {"ts": spike, "score": 7.5, "value": 15.0, "expected": 10.0},
                }
            ],
        )
        [incident] = store.list_incidents()
        store.start_triage(incident.id, source='loki:loki:{app="checkout"}', flow_run_id="run-1")
        store.finish_triage(incident.id, report=REPORT)
        settings = make_settings(prometheus.url, db, token=TOKEN, loki=False)
        app = create_app(
            settings, store=store, deployments=FakeRuns(), options=ApiOptions(tail_interval=0.05)
        )
        async with serve(app) as hostport:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            foreign: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: None if _is_loopback(r.url) else foreign.append(r.url))

            # by URL (as an alert links it): the token first, then the view
            await page.goto(f"http://{hostport}/#/incidents/{incident.id}")
            await page.wait_for_selector("#login:not([hidden])")
            await page.fill("#token", TOKEN)
            await page.click("#token-form button[type=submit]")
            view = page.locator(f"#incident-view[data-incident='{incident.id}']")
            await view.wait_for()
            assert await page.locator("#detectors-section").is_hidden()
            assert await page.locator("#iv-state").inner_text() == "resolved"
            assert 'instance="a"' in await page.locator("#iv-labels").inner_text()
            await expect(page.locator("#iv-chart canvas")).to_have_count(1, timeout=WAIT_MS)
            await page.locator("#iv-chart[data-spans='1']").wait_for()
            triage = page.locator("#iv-triage[data-status='done']")
            await triage.wait_for()
            assert await triage.locator(".summary").inner_text() == REPORT["summary"]
            new = triage.locator(".finding[data-kind='new_template']")
            assert "java.net.SocketTimeoutException" in await new.locator(".what").inner_text()
            assert (
                await new.locator(".logql code").inner_text()
                == REPORT["findings"][0]["logql"]["pattern_filter"]
            )
            assert "Read timed out payments-1" in await new.locator(".example").inner_text()
            assert (
                "×3.25"
                in await triage.locator(".finding[data-kind='rate_jump'] .numbers").inner_text()
            )

            # back to the detectors, then into the view again from the feed
            await page.click("#iv-back")
            await page.locator("#detectors-section:not([hidden])").wait_for()
            link = page.locator(".detector[data-detector='flat'] .triage-link")
            await expect(link).to_have_text(
                'log triage: loki: {app="checkout"} (lead 300s, baselines previous, day, week)'
            )
            assert await page.locator("#incident-view").is_hidden()
            await page.click(f"#feed li[data-incident-id='{incident.id}'] a.detector-id")
            await view.wait_for()
            assert page.url.endswith(f"#/incidents/{incident.id}")
            await page.locator("#iv-triage[data-status='done']").wait_for()
            await page.screenshot(path=str(tmp_path / "incident.png"), full_page=True)
            assert errors == [] and foreign == []
            await page.close()
    finally:
        store.close()
