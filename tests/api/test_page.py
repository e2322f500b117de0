"""The page at ``/``: served without the token, self-contained, and working in a real browser.

The browser test serves the app with uvicorn on 127.0.0.1 (a temp SQLite store with a
detector over the real Prometheus) and drives Debian's ``chromium`` (installed by
``make system-deps``) with Playwright: it gives the page the token, waits for the charts and
the live feed, inserts an anomaly into the store and waits for it in the feed, drops the
WebSocket and sees the page resume with ``?since=`` without a gap or a duplicate. Every
request the page makes is checked to stay on the loopback address. Each wait is a browser
wait on a condition, bounded; nothing sleeps.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from playwright.async_api import expect

from aiops.api import ApiOptions, create_app
from aiops.api.page import CONTENT_SECURITY_POLICY, STATIC_DIR
from aiops.store import Store
from tests.api.support import TOKEN, FakeRuns, make_settings, serve
from tests.support.prometheus import SPIKE_INDEX

pytestmark = pytest.mark.prometheus

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
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
        assert (await api.client.get("/ui/vendor/uplot/LICENSE", headers=anonymous)).status_code == 200
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
        b = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS * 3)
        try:
            yield b
        finally:
            await b.close()


async def test_the_page_charts_detectors_and_shows_live_events(tmp_path, prometheus, browser):
    db = f"sqlite:///{tmp_path / 'aiops.db'}"
    store = Store.open(db)
    try:
        store.create_detector({"id": "flat", "name": "Flat with a spike", "kind": "zscore",
                               "params": {"window": 40}, "status": "running",
                               "datasource": {"query": "aiops_test_anomaly", "step": 15}})
        spike = datetime.fromtimestamp(prometheus.history.timestamp(SPIKE_INDEX), UTC)
        labels = {"__name__": "aiops_test_anomaly", "instance": "a"}
        store.insert_events([{"type": "anomaly", "detector_id": "flat", "labels": labels, "ts": spike,
                              "value": 15.0, "score": 6.0}])
        settings = make_settings(prometheus.url, db, token=TOKEN, loki=False)
        app = create_app(settings, store=store, deployments=FakeRuns(), options=ApiOptions(tail_interval=0.05))
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
            await card.locator(".message").filter(has_text="1 anomaly in this range").wait_for()
            assert await card.locator(".status").inner_text() == "running"

            # the live feed: an anomaly stored now appears, newest on top
            await page.wait_for_selector("#ws-state[data-state='live']")
            [first] = await anyio.to_thread.run_sync(lambda: store.insert_events(
                [{"type": "anomaly", "detector_id": "flat", "labels": labels, "ts": datetime.now(UTC),
                  "value": 42.0, "score": 7.5, "expected": 10.0, "lower": 9.9, "upper": 10.1}]))
            item = page.locator(f"#feed li[data-event-id='{first.id}']")
            await item.wait_for()
            text = await item.inner_text()
            assert "flat" in text and "critical" in text and "42" in text and 'instance="a"' in text

            # a drop: the page reconnects with ?since=<last id> and misses nothing
            for sub in list(app.state.api.hub.subscribers):
                sub.close_with(1012, "test: restarting")
            await page.wait_for_selector("#ws-state:not([data-state='live'])")
            [second] = await anyio.to_thread.run_sync(lambda: store.insert_events(
                [{"type": "anomaly", "detector_id": "flat", "labels": labels, "ts": datetime.now(UTC),
                  "value": 43.0, "score": 8.0}]))
            await page.locator(f"#feed li[data-event-id='{second.id}']").wait_for()
            await page.wait_for_selector("#ws-state[data-state='live']")
            items = page.locator("#feed li")
            ids = [int(await items.nth(i).get_attribute("data-event-id")) for i in range(await items.count())]
            assert ids == [second.id, first.id]  # newest on top, once each
            assert len(sockets) >= 2
            resumed = parse_qs(urlsplit(sockets[-1]).query)
            assert int(resumed["since"][0]) >= first.id and resumed["token"] == [TOKEN]

            await page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            assert foreign == [] and all(_is_loopback(u) for u in sockets), foreign
            assert errors == []
            await page.close()
    finally:
        store.close()
