"""The generated API docs are current, and the README starts with the two commands."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _exporter():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "export_openapi", ROOT / "scripts" / "export_openapi.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_api_docs_are_current() -> None:
    exporter = _exporter()
    document = exporter.openapi()
    stale = "stale: run `python scripts/export_openapi.py` and commit the result"
    assert (ROOT / "docs" / "openapi.json").read_text() == exporter.render_json(document), stale
    assert (ROOT / "docs" / "api-reference.md").read_text() == exporter.render_markdown(document), (
        stale
    )


def test_readme_opens_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:15]
    text = "\n".join(head)
    assert "make demo" in text and "make test" in text
