"""docker-compose.yml and the Dockerfile stay true to the code: every GPUMARKET_* variable the
compose file gives the coordinator is a real setting, the chain is deployed before the
coordinator starts, the provider gets the host's Docker (and GPUs under the gpu profile), and
every CLI command the provider's start script runs exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from typer.testing import CliRunner

from gpumarket.cli.main import typer_app as cli_app
from gpumarket.coordinator.settings import CoordinatorSettings

ROOT = Path(__file__).resolve().parents[3]


def compose() -> dict:  # type: ignore[type-arg]
    loaded: dict = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[type-arg]
    return loaded


def test_compose_services_and_settings() -> None:
    data = compose()
    services = data["services"]
    assert {"postgres", "anvil", "deploy", "coordinator", "provider", "provider-gpu"} <= set(
        services
    )
    coordinator = services["coordinator"]
    assert coordinator["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert coordinator["depends_on"]["deploy"]["condition"] == "service_completed_successfully"
    assert coordinator["build"]["args"]["BASE_IMAGE"].startswith("${BASE_IMAGE")
    fields = set(CoordinatorSettings.model_fields)
    for name in coordinator["environment"]:
        assert name.startswith("GPUMARKET_")
        assert name.removeprefix("GPUMARKET_").lower() in fields, name
    env = coordinator["environment"]
    assert "postgresql+psycopg://" in env["GPUMARKET_DB_URL"]
    assert env["GPUMARKET_CHAIN_DEPLOYMENT"] == "/chain/deployment.json"
    assert services["deploy"]["command"][:2] == ["chain", "deploy"]
    assert "/chain/deployment.json" in services["deploy"]["command"]
    for volume in ("pgdata", "outputs", "chain"):
        assert volume in data["volumes"]


def test_the_provider_gets_docker_and_gpus_under_the_gpu_profile() -> None:
    services = compose()["services"]
    provider, gpu = services["provider"], services["provider-gpu"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in provider["volumes"]
    # job folders are bind-mounted by the host's engine: the same path inside and outside
    home = "${GPUMARKET_PROVIDER_HOME:-/var/lib/gpumarket-provider}"
    assert f"{home}:{home}" in provider["volumes"]
    assert provider["environment"]["GPUMARKET_PROVIDER_HOME"] == home
    assert gpu["profiles"] == ["gpu"] and "profiles" not in provider
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]


def test_every_command_of_the_provider_start_script_exists() -> None:
    script = (ROOT / "scripts" / "compose-provider.sh").read_text()
    runner = CliRunner()
    commands = {
        tuple(shlex.split(line.split("gpumarket", 1)[1].rstrip(" \\"))[:2])
        for line in script.splitlines()
        if re.search(r"(^|\s|\()gpumarket \w", line) and not line.lstrip().startswith("#")
    }
    assert {("wallet", "new"), ("provider", "stake"), ("provider", "run")} <= commands
    for command in commands:
        result = runner.invoke(cli_app, [*command, "--help"])
        assert result.exit_code == 0, (command, result.output)


def test_dockerfile_takes_a_base_image_and_runs_the_coordinator() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=", dockerfile, re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert 'ENTRYPOINT ["gpumarket"]' in dockerfile
    assert '"coordinator", "serve"' in dockerfile
    assert "USER gpumarket" in dockerfile
    assert "COPY scripts/compose-provider.sh" in dockerfile
