"""The web page at ``/``: detectors, their charts and the live event feed.

Static files under ``aiops/api/static`` (shipped in the wheel), served as they are: ``/`` is
``index.html`` and ``/ui/...`` the rest (the page's script and style, and uPlot, vendored
under ``static/vendor/uplot`` with its license). Nothing is loaded from another host, and the
page's Content-Security-Policy forbids it. The page and its assets are public, so the page can
ask for the bearer token; everything it reads (``/api/...``, the WebSocket) stays protected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "ASSETS_PREFIX", "routes", "public_paths", "CONTENT_SECURITY_POLICY"]

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/ui"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset_files() -> list[str]:
    return sorted(
        p.relative_to(STATIC_DIR).as_posix()
        for p in STATIC_DIR.rglob("*")
        if p.is_file()
    )


def routes() -> list[Any]:
    index = (STATIC_DIR / "index.html").read_bytes()

    async def page(request: Request) -> Response:
        return Response(index, media_type="text/html; charset=utf-8", headers=_HEADERS)

    return [
        Route("/", page, methods=["GET", "HEAD"], name="page"),
        Mount(ASSETS_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="assets"),
    ]


def public_paths() -> list[str]:
    """``/`` and every asset: the auth middleware matches exact paths."""
    return ["/", *(f"{ASSETS_PREFIX}/{name}" for name in _asset_files())]
