"""Write docs/openapi.json and docs/api-reference.md from the app itself, so the API docs
cannot drift from the code (tests/unit/docs/test_docs.py fails when they are stale).

Run: ``python scripts/export_openapi.py``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from gpumarket.coordinator.app import create_app
from gpumarket.coordinator.settings import CoordinatorSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"
CREDENTIALS = [  # path prefix -> who may call it
    ("/v1/admin", "admin token"),
    ("/v1/provider", "provider key"),
    ("/v1/jobs", "developer key (reads: the job's owner, its provider or the admin)"),
    ("/v1/auth", "none"),
    ("/v1/offers", "none"),
    ("/metrics", "admin token (none with GPUMARKET_PUBLIC_METRICS=true)"),
    ("/", "none"),
]


def openapi() -> dict[str, Any]:
    """The app's OpenAPI document."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = CoordinatorSettings(db_url=f"sqlite:///{tmp}/openapi.db", data_dir=Path(tmp))
        return create_app(settings).openapi()


def render_json(spec: dict[str, Any]) -> str:
    """Stable, pretty JSON."""
    return json.dumps(spec, indent=2, sort_keys=True) + "\n"


def render_markdown(spec: dict[str, Any]) -> str:
    """One table row per endpoint: method, path, credential, what it is for."""
    lines = [
        "# API reference",
        "",
        "Generated from the coordinator's OpenAPI document by `scripts/export_openapi.py`; the",
        "full schema is [openapi.json](openapi.json), and a running coordinator serves it at",
        "`/openapi.json` with interactive docs at `/docs`. Send credentials as",
        '`Authorization: Bearer <key>`. Errors are JSON: `{"detail": <one readable line>,',
        '"code": <stable code>, "errors": [<per-field details>]}`.',
        "",
        "| method | path | credential | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for path, operations in sorted(spec["paths"].items()):
        credential = next(who for prefix, who in CREDENTIALS if path.startswith(prefix))
        for method, operation in sorted(operations.items()):
            summary = " ".join((operation.get("description") or "").split())
            lines.append(f"| {method.upper()} | `{path}` | {credential} | {summary} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    document = openapi()
    (DOCS / "openapi.json").write_text(render_json(document))
    (DOCS / "api-reference.md").write_text(render_markdown(document))
    print(f"wrote {DOCS / 'openapi.json'} and {DOCS / 'api-reference.md'}")
