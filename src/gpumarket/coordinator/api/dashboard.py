"""The operator's dashboard: a page that reads the admin API with the admin token typed into
it, so it holds no data and needs no session of its own.

The page, its script and its stylesheet are served from the package with a strict Content
Security Policy (only this origin's own script, style and API; no inline code, no frames), and
the script writes what the API returns as text, never as markup."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from gpumarket.errors import NotFound

router = APIRouter(tags=["dashboard"])

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes:
    return resources.files("gpumarket.coordinator.dashboard").joinpath(name).read_bytes()


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> Response:
    """The dashboard page (sign in with the admin token to see the market)."""
    return Response(
        _asset("index.html"), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


@router.get("/dashboard/{name}", include_in_schema=False)
def dashboard_asset(name: str) -> Response:
    """The dashboard's script and stylesheet."""
    if name not in ASSETS:
        raise NotFound(f"no dashboard file {name!r}")
    return Response(_asset(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)
