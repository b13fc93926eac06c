"""The generated API docs are current, and the README starts with the two commands."""

from __future__ import annotations

import importlib.util
import re
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


COMMAND = re.compile(r"gpumarket ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)([^`#|]*)")


def _documented_commands() -> list[tuple[str, list[str], list[str]]]:
    """(where, command words, --flags) for every `gpumarket ...` command the docs show."""
    from gpumarket.cli.main import typer_app

    groups = {g.name for g in typer_app.registered_groups}
    top = {
        c.name or (c.callback.__name__ if c.callback else "") for c in typer_app.registered_commands
    }
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(
                r"gpumarket ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)([^`#|]*)", line
            ):
                words = match.group(1).split()
                if words[0] in groups and len(words) == 2:
                    command = words
                elif words[0] in top:
                    command = words[:1]
                else:
                    continue  # prose ("gpumarket is ..."), not a command
                flags = re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", match.group(2))
                found.append((f"{path.name}:{number}", command, flags))
    return found


def test_every_command_the_docs_show_exists_with_its_flags() -> None:
    from typer.testing import CliRunner

    from gpumarket.cli.main import typer_app

    runner = CliRunner()
    documented = _documented_commands()
    assert len(documented) > 30
    for where, command, flags in documented:
        result = runner.invoke(typer_app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"{where}: `gpumarket {' '.join(command)}` does not exist"
        for flag in flags:
            assert flag in result.output, f"{where}: `gpumarket {' '.join(command)}` has no {flag}"
