"""A provider's extra container labels: set on every job container next to the daemon's own,
which they can never replace (a restarted daemon finds its containers by them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gpumarket.errors import InvalidRequest
from gpumarket.provider.config import RESERVED_LABELS, ProviderConfig, load_config
from gpumarket.provider.executor import LABEL_JOB, LABEL_PROVIDER, DockerExecutor
from tests.unit.provider.doubles import JOB_ID, assignment


class Containers:
    """The engine's container API, recording what it is asked to create."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create(self, **options: Any) -> object:
        self.created.append(options)
        return object()


class Engine:
    def __init__(self) -> None:
        self.containers = Containers()


def created_labels(config: ProviderConfig) -> dict[str, str]:
    engine = Engine()
    executor = DockerExecutor(config, client=engine, provider_id="prv_1")
    executor.create(assignment())
    labels: dict[str, str] = engine.containers.created[0]["labels"]
    return labels


def test_job_containers_carry_the_configured_labels_and_the_daemons_own(
    tmp_path: Path,
) -> None:
    config = ProviderConfig(work_dir=tmp_path, container_labels={"test.run": "abc123"})
    assert created_labels(config) == {
        "test.run": "abc123",
        LABEL_JOB: JOB_ID,
        LABEL_PROVIDER: "prv_1",
    }


def test_without_configured_labels_only_the_daemons_own(tmp_path: Path) -> None:
    assert created_labels(ProviderConfig(work_dir=tmp_path)) == {
        LABEL_JOB: JOB_ID,
        LABEL_PROVIDER: "prv_1",
    }


def test_the_daemons_labels_cannot_be_configured(tmp_path: Path) -> None:
    assert {LABEL_JOB, LABEL_PROVIDER} == RESERVED_LABELS
    path = tmp_path / "provider.toml"
    path.write_text('container_labels = { "gpumarket.job" = "someone-else" }\n')
    with pytest.raises(InvalidRequest, match=r"container_labels: .*gpumarket\.job is set by"):
        load_config(path)


def test_labels_from_the_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "provider.toml"
    path.write_text('[container_labels]\n"com.example.owner" = "lab-1"\n')
    assert load_config(path).container_labels == {"com.example.owner": "lab-1"}
