"""``pip install gpumarket`` (no extras) is the developer's install: the SDK, the CLI and the
wallet work without Docker's, NVML's or the coordinator's libraries, and a command that needs
an extra names it in one line instead of a traceback.

The subprocesses run with an import hook that makes every module of the provider and
coordinator extras look uninstalled (and records any attempt to import one), which is what a
bare install looks like, without building one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from gpumarket.cli.extras import EXTRA_MODULES

ROOT = Path(__file__).resolve().parents[3]
BLOCKED = sorted({m for modules in EXTRA_MODULES.values() for m in modules})

NOT_INSTALLED = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = set(sys.argv[1].split(","))
TRIED = []
assert not BLOCKED & {name.partition(".")[0] for name in sys.modules}, "imported at startup"


class NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            TRIED.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
"""


def _bare(script: str, home: Path, *args: str) -> dict[str, list[object]]:
    """Run ``script`` after the hook in a fresh interpreter (HOME and working folder at
    ``home``; ``args`` after the blocked modules in its argv); what it printed last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", NOT_INSTALLED + script, ",".join(BLOCKED), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=home,
        env={**os.environ, "HOME": str(home), "COLUMNS": "200", "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, list[object]] = json.loads(done.stdout.splitlines()[-1])
    return report


DEVELOPER = """
import json
from typer.testing import CliRunner

import importlib, pkgutil
import gpumarket.cli, gpumarket.protocol, gpumarket.sdk, gpumarket.settlement
import gpumarket.errors, gpumarket.keystore
from gpumarket.sdk import AdminClient, Client, ProviderClient

for package in (gpumarket.protocol, gpumarket.sdk, gpumarket.settlement, gpumarket.cli):
    for module in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        if module.name != "gpumarket.cli.__main__":
            importlib.import_module(module.name)

with Client("http://127.0.0.1:9", api_key="k") as client:
    pass

from gpumarket.cli.main import typer_app

runner = CliRunner()
codes = {}
for words in (
    ["--help"], ["job", "--help"], ["job", "submit", "--help"], ["login", "--help"],
    ["wallet", "--help"], ["wallet", "deposit", "--help"], ["job", "challenge", "--help"],
    ["chain", "--help"], ["offers", "--help"], ["admin", "--help"],
    ["provider", "--help"], ["provider", "run", "--help"], ["coordinator", "--help"],
):
    result = runner.invoke(typer_app, words)
    codes[" ".join(words)] = [result.exit_code, repr(result.exception)]
made = runner.invoke(
    typer_app, ["wallet", "new", "--path", "w.json", "--password-env", "PW"], env={"PW": "x"}
)
codes["wallet new"] = [made.exit_code, made.output]
print(json.dumps({"codes": [codes], "tried": TRIED}))
"""


def test_the_sdk_and_the_developer_cli_need_no_extra(tmp_path: Path) -> None:
    report = _bare(DEVELOPER, tmp_path)
    codes = report["codes"][0]
    assert isinstance(codes, dict)
    for command, (code, detail) in codes.items():
        assert code == 0, f"gpumarket {command}: {detail}"
    assert "created wallet 0x" in codes["wallet new"][1]
    assert (tmp_path / "w.json").exists()
    assert report["tried"] == [], "a developer command imported an extra's module"


NEEDS_EXTRA = """
import contextlib, io, json, sys, traceback
from gpumarket.cli.main import app

out = {}
for words in sys.argv[2:]:
    sys.argv = ["gpumarket", *words.split()]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            app()
            code = 0
        except SystemExit as exc:
            code = exc.code
        except BaseException:
            traceback.print_exc(file=err)
            code = "raised"
    out[words] = [code, err.getvalue()]
print(json.dumps(out))
"""


def test_a_command_whose_extra_is_missing_names_it_in_one_line(tmp_path: Path) -> None:
    commands = {
        "provider run": "provider",
        "provider inventory": "provider",
        "provider benchmark": "provider",
        "coordinator serve": "coordinator",
        "coordinator migrate": "coordinator",
    }
    report = _bare(NEEDS_EXTRA, tmp_path, *commands)
    for command, extra in commands.items():
        code, stderr = report[command]
        assert code == 1, f"gpumarket {command}: {code} {stderr}"
        assert "Traceback" not in stderr, stderr
        assert stderr.strip().count("\n") == 0, stderr
        assert f"needs the {extra} extra: pip install 'gpumarket[{extra}]'" in stderr, stderr


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_extras_cli_knows_are_the_ones_pyproject_declares() -> None:
    """Each module the CLI checks for comes from a distribution its extra lists (starlette
    through fastapi), every distribution an extra lists is checked, and none is in the base."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert {_name(r) for r in extras["all"]} == {"gpumarket"}
    assert set(EXTRA_MODULES) <= set(extras) and "provider,coordinator" in extras["all"][0]
    dists = packages_distributions()
    for extra, modules in EXTRA_MODULES.items():
        declared = {_name(r) for r in extras[extra]}
        assert not declared & base, f"{extra}: also in the base install"
        provided = {_name(d) for m in modules for d in dists.get(m, [])}
        assert declared <= provided, f"{extra}: no module checked for {declared - provided}"
        assert provided - declared <= {"starlette"}, f"{extra}: {provided - declared} undeclared"
