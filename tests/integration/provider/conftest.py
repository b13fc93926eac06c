"""Provider integration fixtures: a real Docker engine, local images, a real coordinator process
over HTTP and the provider daemon running in a thread (or a child process)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from eth_account import Account

from gpumarket.protocol import JobSpec, JobState, JobView, Role
from gpumarket.provider.config import ProviderConfig
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client, register_wallet
from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.integration.processes import CoordinatorProcess

RUN_LABEL = "gpumarket.test-run"
RUN_ID = uuid.uuid4().hex
"""Every job container the tests' providers start carries ``RUN_LABEL=RUN_ID`` (a provider's
``container_labels``): teardown removes those and nothing else, so a test run on a provider
host never touches the host's own jobs."""
RUN_LABELS = {RUN_LABEL: RUN_ID}
BUSYBOX = "gpumarket-test/busybox:1"
PYTHON = "gpumarket-test/python:1"
FAST = {"GPUMARKET_HEARTBEAT_INTERVAL_SECONDS": "1", "GPUMARKET_LOOP_INTERVAL_SECONDS": "0.2"}
SETTLED_ENOUGH = {
    JobState.COMMITTED,
    JobState.SETTLED,
    JobState.FAILED,
    JobState.CANCELLED,
    JobState.EXPIRED,
    JobState.REFUNDED,
}


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    """The local engine with the test images (`make test` installs and builds both)."""
    try:
        client = docker.from_env()
        client.ping()
        for image in (BUSYBOX, PYTHON):
            client.images.get(image)
    except Exception as exc:
        message = (
            f"no Docker engine with the test images ({exc}); run "
            "scripts/ensure-docker.sh and scripts/build-test-images.sh"
        )
        if os.environ.get("GPUMARKET_REQUIRE_DOCKER"):
            pytest.fail(message)
        pytest.skip(message)
    return client


def remove_run_containers(client: docker.DockerClient) -> None:
    """Remove the job containers this test run's providers started (running or not); other
    containers, a provider host's live jobs included, are left alone."""
    for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={RUN_ID}"}):
        container.remove(force=True)


def run_labels_toml() -> str:
    """``container_labels`` as a TOML value, for the tests that write a provider.toml."""
    return "{ " + ", ".join(f'"{k}" = "{v}"' for k, v in RUN_LABELS.items()) + " }"


@pytest.fixture
def coordinator(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[CoordinatorProcess]:
    """A coordinator process on SQLite with short heartbeats."""
    with CoordinatorProcess.start(
        sqlite_url(tmp_path), tmp_path / "coord", ADMIN_TOKEN, extra_env=FAST
    ) as proc:
        yield proc


@pytest.fixture
def developer(coordinator: CoordinatorProcess) -> Client:
    """A registered developer's SDK client."""
    key = register_wallet(coordinator.url, Account.create(), Role.DEVELOPER).api_key
    return Client(coordinator.url, key)


def provider_config(
    coordinator: CoordinatorProcess, tmp_path: Path, **overrides: Any
) -> ProviderConfig:
    """A config for a daemon on this machine with fast loops and small caps."""
    values: dict[str, Any] = {
        "coordinator_url": coordinator.url,
        "wallet": tmp_path / "wallet.json",
        "work_dir": tmp_path / "work",
        "cpu_price_per_hour": "0.10",
        "region": "local",
        "stop_grace_seconds": 1,
        "shutdown_grace_seconds": 5,
        "poll_wait_seconds": 2,
        "max_concurrent_jobs": 4,
        "tmp_size_mb": 16,
        "container_labels": RUN_LABELS,
    }
    values.update(overrides)
    return ProviderConfig.model_validate(values)


@pytest.fixture
def start_daemon(
    coordinator: CoordinatorProcess, tmp_path: Path, docker_client: docker.DockerClient
) -> Iterator[Callable[..., ProviderDaemon]]:
    """Start a provider daemon thread (config overrides as keyword arguments)."""
    started: list[tuple[ProviderDaemon, threading.Thread]] = []

    def start(**overrides: Any) -> ProviderDaemon:
        config = provider_config(coordinator, tmp_path, **overrides)
        daemon = ProviderDaemon(config, Account.create())
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        started.append((daemon, thread))
        return daemon

    yield start
    for daemon, thread in started:
        daemon.stop()
        thread.join(30)
    remove_run_containers(docker_client)


def cpu_job(command: list[str], image: str = BUSYBOX, **fields: Any) -> JobSpec:
    """A CPU job spec with small defaults."""
    spec: dict[str, Any] = {
        "image": image,
        "command": command,
        "max_price_per_hour": "1.00",
        "resources": {"cpu": 1, "memory": "256MB"},
        "max_duration_seconds": 60,
    }
    spec.update(fields)
    return JobSpec.model_validate(spec)


def wait_for(developer: Client, job_id: str, states: set[JobState], timeout: float = 60) -> JobView:
    """Poll until the job reaches one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        job = developer.get(job_id, explain=False)
        if job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job.state.value}")
        time.sleep(0.2)


def log_text(developer: Client, job_id: str, stream: str | None = None) -> str:
    """Everything the job logged (optionally one stream)."""
    return "".join(
        line.data
        for line in developer.logs(job_id, limit=10_000)
        if stream is None or line.stream == stream
    )
