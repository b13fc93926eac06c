"""`/docs` works without internet: Swagger UI's scripts and styles come from the coordinator,
not from a CDN (a blank page offline)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from gpumarket.coordinator.api import docs_ui


def test_the_docs_page_loads_only_local_assets(client: TestClient) -> None:
    docs_ui.install(client.app)  # type: ignore[arg-type]
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(url.startswith("/docs/static/") for url in assets), assets
    assert "cdn" not in page.text.lower() and "'/openapi.json'" in page.text
    for url in assets:
        assert client.get(url).status_code == 200, url
    assert client.get("/docs/static/swagger-ui-bundle.js").text.startswith("/*")
    assert client.get("/redoc").status_code == 404  # CDN-only: not offered
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert "/docs" not in client.get("/openapi.json").json()["paths"]
