"""Image pulls for real: the provider daemon pulls a job's image from a registry over HTTP (a
local one, tests/integration/provider/registry.py), reports the bytes as it goes, and the
developer sees them on the job while it is ASSIGNED; a pull longer than the acknowledgement
deadline is not taken away, and an image the registry does not have fails the job with why."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from gpumarket.protocol import JobState, PreparationProgress
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.integration.processes import CoordinatorProcess
from tests.integration.provider.conftest import (
    BUSYBOX,
    FAST,
    SETTLED_ENOUGH,
    cpu_job,
    log_text,
    wait_for,
)
from tests.integration.provider.registry import LocalRegistry, build_fresh_image, local_registry

pytestmark = pytest.mark.integration
Start = Callable[..., ProviderDaemon]
ACK_SECONDS = 2
PAYLOAD = 3_000_000  # random, so the layer cannot be compressed below it
RATE = 1_000_000  # bytes a second: the pull takes about 4 s, twice the acknowledgement deadline


@pytest.fixture
def coordinator(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[CoordinatorProcess]:
    """A coordinator that takes an assignment back after two silent seconds."""
    env = FAST | {"GPUMARKET_ASSIGNMENT_ACK_SECONDS": str(ACK_SECONDS)}
    with CoordinatorProcess.start(
        sqlite_url(tmp_path), tmp_path / "coord", ADMIN_TOKEN, extra_env=env
    ) as proc:
        yield proc


@pytest.fixture
def registry(docker_client: docker.DockerClient) -> Iterator[LocalRegistry]:
    """A registry serving a busybox with a fresh 3 MB layer that the engine does not hold."""
    source = build_fresh_image(
        docker_client, BUSYBOX, f"gpumarket-test/pullable:{uuid.uuid4().hex[:12]}", PAYLOAD
    )
    with local_registry(
        docker_client, {"pulls/busybox:1": source}, bytes_per_second=RATE, forget_sources=True
    ) as served:
        yield served


def test_the_developer_watches_a_pull_that_outlasts_the_acknowledgement_deadline(
    developer: Client, start_daemon: Start, registry: LocalRegistry
) -> None:
    start_daemon()
    image = registry.ref("pulls/busybox:1")
    job = developer.submit(cpu_job(["sh", "-c", "wc -c < /payload"], image=image))

    seen: list[PreparationProgress] = []
    deadline = time.monotonic() + 60
    while (view := developer.get(job.id, explain=False)).state in (
        JobState.QUEUED,
        JobState.ASSIGNED,
    ):
        assert time.monotonic() < deadline, "the job never started"
        if view.progress is not None:
            seen.append(view.progress)
        time.sleep(0.2)

    done = wait_for(developer, job.id, SETTLED_ENOUGH)
    assert done.state is JobState.COMMITTED and done.exit_code == 0
    assert log_text(developer, job.id, "stdout").strip() == str(PAYLOAD)
    assert done.attempts == 1  # a pull moving bytes keeps the assignment past 2 s
    assert done.progress is None

    assert len(seen) >= 3, seen  # about one report a second over a four-second pull
    fetched = [p.done_bytes for p in seen]
    assert fetched == sorted(fetched) and fetched[-1] > 0
    served = registry.images["pulls/busybox:1"].layer_bytes
    totals = [p.total_bytes for p in seen if p.total_bytes is not None]
    assert totals == sorted(totals) and totals[-1] == served  # sizes become known as layers start
    assert all(p.detail.startswith(image) and "layers)" in p.detail for p in seen)
    system = log_text(developer, job.id, "system")
    assert f"pulling image {image}" in system and f"pulled {image}" in system


def test_an_image_the_registry_does_not_have_fails_the_job_with_why(
    developer: Client, start_daemon: Start, registry: LocalRegistry
) -> None:
    start_daemon()
    job = developer.submit(cpu_job(["true"], image=registry.ref("pulls/busybox:nope")))
    failed = wait_for(developer, job.id, SETTLED_ENOUGH)
    assert failed.state is JobState.FAILED
    assert f"cannot pull image '{registry.ref('pulls/busybox:nope')}'" in (
        failed.failure_reason or ""
    )
    assert any("/manifests/nope" in path for path in registry.requests)


def test_cancelling_during_the_pull_abandons_it(
    developer: Client,
    start_daemon: Start,
    registry: LocalRegistry,
    docker_client: docker.DockerClient,
) -> None:
    start_daemon()
    image = registry.ref("pulls/busybox:1")
    job = developer.submit(cpu_job(["true"], image=image))
    deadline = time.monotonic() + 30
    while developer.get(job.id, explain=False).progress is None:
        assert time.monotonic() < deadline, "no pull progress was reported"
        time.sleep(0.1)
    developer.cancel(job.id)
    time.sleep(PAYLOAD / RATE + 2)  # past the time the whole pull would have taken
    assert developer.get(job.id, explain=False).state is JobState.CANCELLED
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(image)
    assert not docker_client.containers.list(all=True, filters={"label": f"gpumarket.job={job.id}"})


def test_a_provider_shutting_down_mid_pull_hands_the_job_back_at_once(
    developer: Client, start_daemon: Start, registry: LocalRegistry
) -> None:
    daemon = start_daemon(shutdown_grace_seconds=0)
    job = developer.submit(cpu_job(["true"], image=registry.ref("pulls/busybox:1")))
    deadline = time.monotonic() + 30
    while developer.get(job.id, explain=False).progress is None:
        assert time.monotonic() < deadline, "no pull progress was reported"
        time.sleep(0.1)
    daemon.stop()
    back = wait_for(developer, job.id, {JobState.QUEUED}, timeout=PAYLOAD / RATE + 10)
    assert back.attempts == 1
    reasons = [e.reason for e in developer.events(job.id)]
    assert any("provider shut down before the job started" in r for r in reasons), reasons
