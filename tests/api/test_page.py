"""The page at ``/``: served without the token, self-contained, and working in a real browser.

The browser test serves the app with uvicorn on 127.0.0.1 (a temp SQLite store with a
detector over the real Prometheus) and drives Debian's ``chromium`` (installed by
``make system-deps``) with Playwright: it gives the page the token, waits for the charts (with
the stored incident as a shaded span) and the incident feed, opens an incident in the store
and waits for it in the feed, drops the WebSocket and sees the page resume with ``?since=``
without a gap or a duplicate (the incident resolves in place, a new one lands on top). Every
request the page makes is checked to stay on the loopback address. Each wait is a browser
wait on a condition, bounded; nothing sleeps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from playwright.async_api import expect

from aiops.api import ApiOptions, create_app
from aiops.api.page import CONTENT_SECURITY_POLICY, STATIC_DIR
from aiops.store import Store, series_key
from tests.api.support import TOKEN, FakeRuns, make_settings, serve
from tests.support.prometheus import SPIKE_INDEX

pytestmark = pytest.mark.prometheus

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 20_000
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


# --------------------------------------------------------------------------- over HTTP


async def test_the_page_and_its_assets_need_no_token_but_the_data_does(make_api):
    async with make_api() as api:
        anonymous = {"Authorization": ""}
        r = await api.client.get("/", headers=anonymous)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets and all(a.startswith("/") or a.startswith("data:") for a in assets), assets
        for asset in (a for a in assets if a.startswith("/ui/")):
            got = await api.client.get(asset, headers=anonymous)
            assert got.status_code == 200 and got.content, asset
        assert (
            await api.client.get("/ui/vendor/uplot/LICENSE", headers=anonymous)
        ).status_code == 200
        for path in ("/api/detectors", "/api/detectors/x/series", "/api/anomalies"):
            assert (await api.client.get(path, headers=anonymous)).status_code == 401, path
        assert (await api.client.get("/ui/nope.js", headers=anonymous)).status_code in (401, 404)


def test_no_file_of_the_page_names_another_host():
    for path in STATIC_DIR.rglob("*"):
        if not path.is_file() or path.name in ("LICENSE", "README.md"):
            continue
        text = path.read_text(encoding="utf-8")
        urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}[^\s\"'`)]*", text, re.I)
        # uPlot names its own repository in its licence comment, nothing else does
        assert all(u.startswith("https://github.com/leeoniya/uPlot") for u in urls), (path, urls)


# --------------------------------------------------------------------------- in a browser


def _is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("data", "about", "blob") or parts.hostname in LOOPBACK


@pytest.fixture
async def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed: run `make system-deps`")
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        b = await p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS * 3
        )
        try:
            yield b
        finally:
            await b.close()


async def test_the_page_charts_detectors_and_shows_live_events(tmp_path, prometheus, browser):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    try:
        store.create_detector(
            {
                "id": "flat",
                "name": "Flat with a spike",
                "kind": "zscore",
                "params": {"window": 40},
                "status": "running",
                "datasource": {"query": "aiops_test_anomaly", "step": 15},
            }
        )
        spike = datetime.fromtimestamp(prometheus.history.timestamp(SPIKE_INDEX), UTC)
        labels = {"__name__": "aiops_test_anomaly", "instance": "a"}
        key = series_key(labels)

        def incident(
            opened: datetime,
            resolved: datetime | None = None,
            *,
            new: bool = True,
            value: float = 42.0,
        ):
            return {
                "series_key": key,
                "labels": labels,
                "opened_at": opened,
                "opened": new,
                "last_anomalous_at": None if not new else opened,
                "resolved_at": resolved,
                "points": 1 if new else 0,
                "peak": {"ts": opened, "score": 7.5, "value": value, "expected": 10.0},
            }

        store.commit_detection(
            "flat",
            events=[
                {
                    "type": "anomaly",
                    "detector_id": "flat",
                    "labels": labels,
                    "ts": spike,
                    "value": 15.0,
                    "score": 6.0,
                }
            ],
            incidents=[incident(spike, spike + timedelta(minutes=5), value=15.0)],
        )
        settings = make_settings(prometheus.url, db, token=TOKEN, loki=False)
        app = create_app(
            settings, store=store, deployments=FakeRuns(), options=ApiOptions(tail_interval=0.05)
        )
        async with serve(app) as hostport:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            foreign: list[str] = []
            sockets: list[str] = []
            errors: list[str] = []

            async def only_loopback(route):
                if _is_loopback(route.request.url):
                    await route.continue_()
                else:
                    foreign.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_loopback)
            page.on("request", lambda r: None if _is_loopback(r.url) else foreign.append(r.url))
            page.on("websocket", lambda ws: sockets.append(ws.url))
            page.on("pageerror", lambda e: errors.append(str(e)))

            await page.goto(f"http://{hostport}/")
            # a token is configured: the page asks for it
            await page.wait_for_selector("#login:not([hidden])")
            await page.fill("#token", TOKEN)
            await page.click("#token-form button[type=submit]")
            await page.wait_for_selector("#login[hidden]", state="attached")

            # the detector and a chart per series; 24h covers the whole test history
            await page.click("button[data-range='24h']")
            card = page.locator(".detector[data-detector='flat']")
            await card.locator(".name").filter(has_text="Flat with a spike").wait_for()
            await expect(card.locator(".chart canvas")).to_have_count(2, timeout=WAIT_MS)
            await (
                card.locator(".message")
                .filter(has_text="1 incident in this range · 1 anomalous point")
                .wait_for()
            )
            assert await card.locator(".status").inner_text() == "running"
            # the stored incident is a shaded span on its series' chart
            await card.locator(".chart[data-incidents='1']").wait_for()
            [stored] = store.list_incidents()

            # the feed lists the stored incident, then incidents opened live, newest on top
            await page.locator(
                f"#feed li[data-incident-id='{stored.id}'][data-state='resolved']"
            ).wait_for()
            await page.wait_for_selector("#ws-state[data-state='live']")
            opened_at = datetime.now(UTC).replace(microsecond=0)
            inserted = await anyio.to_thread.run_sync(
                lambda: store.commit_detection(
                    "flat",
                    events=[
                        {
                            "type": "anomaly",
                            "detector_id": "flat",
                            "labels": labels,
                            "ts": opened_at,
                            "value": 42.0,
                            "score": 7.5,
                        }
                    ],
                    incidents=[incident(opened_at)],
                )
            )
            first = inserted[-1]
            assert first.type == "incident.opened"
            first_incident = first.payload["incident_id"]
            item = page.locator(f"#feed li[data-incident-id='{first_incident}']")
            await item.wait_for()
            assert await item.get_attribute("data-state") == "open"
            text = await item.inner_text()
            assert "flat" in text and "critical" in text and "42" in text and 'instance="a"' in text
            assert (
                await page.locator(f"#feed li[data-event-id='{inserted[0].id}']").count() == 0
            )  # no per-point items

            # a drop: the page reconnects with ?since=<last id> and misses nothing
            for sub in list(app.state.api.hub.subscribers):
                sub.close_with(1012, "test: restarting")
            await page.wait_for_selector("#ws-state:not([data-state='live'])")
            later = opened_at + timedelta(minutes=10)
            resumed_events = await anyio.to_thread.run_sync(
                lambda: store.commit_detection(
                    "flat",
                    incidents=[
                        {**incident(opened_at, opened_at + timedelta(minutes=6), new=False)},
                        incident(later, value=43.0),
                    ],
                )
            )
            assert [e.type for e in resumed_events] == ["incident.resolved", "incident.opened"]
            second_incident = resumed_events[-1].payload["incident_id"]
            await page.locator(f"#feed li[data-incident-id='{second_incident}']").wait_for()
            await page.locator(
                f"#feed li[data-incident-id='{first_incident}'][data-state='resolved']"
            ).wait_for()
            await page.wait_for_selector("#ws-state[data-state='live']")
            items = page.locator("#feed li")
            ids = [
                int(await items.nth(i).get_attribute("data-incident-id"))
                for i in range(await items.count())
            ]
            assert ids == [second_incident, first_incident, stored.id]  # newest on top, once each
            assert len(sockets) >= 2
            resumed = parse_qs(urlsplit(sockets[-1]).query)
            assert int(resumed["since"][0]) >= first.id and resumed["token"] == [TOKEN]

            await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            assert foreign == [] and all(_is_loopback(u) for u in sockets), foreign
            assert errors == []
            await page.close()
    finally:
        store.close()
