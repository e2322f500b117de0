"""The web page at ``/``: detectors, their charts and the live event feed.

Static files under ``aiops/api/static`` (shipped in the wheel), served as they are: ``/`` is
``index.html`` and ``/ui/...`` the rest (the page's script and style, and uPlot, vendored
under ``static/vendor/uplot`` with its license). Nothing is loaded from another host, and the
page's Content-Security-Policy forbids it. The page and its assets are public, so the page can
ask for the bearer token; everything it reads (``/api/...``, the WebSocket) stays protected.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from aiops.api.openapi import Call, Operation

__all__ = [
    "STATIC_DIR",
    "ASSETS_PREFIX",
    "OPERATIONS",
    "asset_routes",
    "asset_paths",
    "CONTENT_SECURITY_POLICY",
]

STATIC_DIR = Path(__file__).parent / "static"
ASSETS_PREFIX = "/ui"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
    "data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset_files() -> list[str]:
    return sorted(
        p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*") if p.is_file()
    )


@cache
def _index() -> bytes:
    return (STATIC_DIR / "index.html").read_bytes()


async def page(call: Call) -> Response:
    return Response(_index(), media_type="text/html; charset=utf-8", headers=_HEADERS)


def asset_routes() -> list[Mount]:
    return [Mount(ASSETS_PREFIX, app=StaticFiles(directory=STATIC_DIR), name="assets")]


def asset_paths() -> list[str]:
    """Every file under ``/ui/`` (public: the auth middleware matches exact paths)."""
    return [f"{ASSETS_PREFIX}/{name}" for name in _asset_files()]


OPERATIONS = [
    Operation(
        "GET",
        "/",
        page,
        "The web page: detectors, their charts and the live event feed (HTML)",
        "service",
        responses={200: "text/html"},
        errors=(),
        public=True,
        description="Loads its script, style and uPlot from /ui/ (public too) and nothing from "
        "another host; asks for the token when one is configured.",
    ),
]
