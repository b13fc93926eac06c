"""docker-compose.yml and the Dockerfile stay true to the code: every GPUMARKET_* variable the
compose file sets is a real setting, and the image runs a real CLI command."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from gpumarket.coordinator.settings import CoordinatorSettings

ROOT = Path(__file__).resolve().parents[3]


def test_compose_services_and_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "coordinator"} <= set(services)
    coordinator = services["coordinator"]
    assert coordinator["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert coordinator["build"]["args"]["BASE_IMAGE"].startswith("${BASE_IMAGE")
    fields = set(CoordinatorSettings.model_fields)
    for name in coordinator["environment"]:
        assert name.startswith("GPUMARKET_")
        assert name.removeprefix("GPUMARKET_").lower() in fields, name
    assert "postgresql+psycopg://" in coordinator["environment"]["GPUMARKET_DB_URL"]
    for volume in ("pgdata", "outputs"):
        assert volume in compose["volumes"]


def test_dockerfile_takes_a_base_image_and_runs_the_coordinator() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=", dockerfile, re.MULTILINE)
    assert "FROM ${BASE_IMAGE}" in dockerfile
    assert 'ENTRYPOINT ["gpumarket"]' in dockerfile
    assert '"coordinator", "serve"' in dockerfile
    assert "USER gpumarket" in dockerfile
