"""The interactive API docs at ``/docs``, served with Swagger UI's assets from the installed
``swagger-ui-bundle`` package instead of FastAPI's default CDN (jsDelivr): a coordinator on a
network without internet access still shows its docs, not a blank page.

FastAPI registers its own CDN-backed ``/docs`` (and ReDoc, CDN-only, at ``/redoc``) when the
app is built; :func:`install` replaces them."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
STATIC_URL = "/docs/static"
REPLACED = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
"""FastAPI's own docs routes, which load their scripts and styles from a CDN."""


def install(app: FastAPI) -> None:
    """Serve ``/docs`` from local assets: drop FastAPI's CDN-backed docs routes (ReDoc too,
    which has no offline bundle here) and add Swagger UI with its files under
    ``/docs/static``."""
    app.router.routes[:] = [
        route
        for route in app.router.routes
        if not (isinstance(route, APIRoute | Route) and route.path in REPLACED)
    ]
    app.docs_url = DOCS_URL
    app.redoc_url = None
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} - API docs"
    app.mount(STATIC_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
            swagger_js_url=f"{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_URL}/favicon-32x32.png",
        )

    @app.get(f"{DOCS_URL}/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
