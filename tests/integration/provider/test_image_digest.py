"""An image pinned by digest (``repo@sha256:<hex>``, which a job spec accepts) is pulled by
that digest and runs: the provider once split it by hand into a repository named
``repo@sha256`` and failed every such job. The digest is that of the manifest a local registry
(tests/integration/provider/registry.py) serves for a fresh image, so the pull is real and
needs no internet; the test images themselves are ``docker import``-ed and have no repository
digest to pin. A second job with the same pin finds the image held and pulls nothing."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress

import docker
import pytest

from gpumarket.protocol import JobState
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.sdk import Client
from tests.integration.provider.conftest import (
    BUSYBOX,
    SETTLED_ENOUGH,
    cpu_job,
    log_text,
    wait_for,
)
from tests.integration.provider.registry import LocalRegistry, build_fresh_image, local_registry

pytestmark = pytest.mark.integration
Start = Callable[..., ProviderDaemon]
PAYLOAD = 200_000
NAME = "pinned/busybox"


@pytest.fixture
def registry(docker_client: docker.DockerClient) -> Iterator[LocalRegistry]:
    """A registry serving a busybox with a fresh layer that the engine does not hold."""
    source = build_fresh_image(
        docker_client, BUSYBOX, f"gpumarket-test/pinned:{uuid.uuid4().hex[:12]}", PAYLOAD
    )
    with local_registry(
        docker_client, {f"{NAME}:1": source}, bytes_per_second=50_000_000, forget_sources=True
    ) as served:
        yield served


@pytest.fixture
def pinned(registry: LocalRegistry, docker_client: docker.DockerClient) -> Iterator[str]:
    """``<registry>/pinned/busybox@sha256:<manifest digest>``, removed from the engine after
    (the registry's own cleanup removes tags, and a pull by digest makes none)."""
    digest = "sha256:" + hashlib.sha256(registry.images[f"{NAME}:1"].manifest).hexdigest()
    image = f"{registry.ref(NAME)}@{digest}"
    yield image
    with suppress(docker.errors.ImageNotFound):
        docker_client.images.remove(image, force=True)


def test_a_job_pinned_by_digest_pulls_that_digest_and_runs(
    developer: Client,
    start_daemon: Start,
    registry: LocalRegistry,
    pinned: str,
    docker_client: docker.DockerClient,
) -> None:
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(pinned)  # not held: the job must pull it
    start_daemon()
    job = developer.submit(cpu_job(["sh", "-c", "wc -c < /payload"], image=pinned))
    done = wait_for(developer, job.id, SETTLED_ENOUGH)
    assert done.state is JobState.COMMITTED, (done.failure_reason, log_text(developer, job.id))
    assert log_text(developer, job.id, "stdout").strip() == str(PAYLOAD)
    system = log_text(developer, job.id, "system")
    assert f"pulling image {pinned}" in system and f"pulled {pinned}" in system

    digest = pinned.rpartition("@")[2]
    manifests = [path for path in registry.requests if "/manifests/" in path]
    assert f"/v2/{NAME}/manifests/{digest}" in manifests, manifests
    assert not any(path.endswith(("/manifests/latest", "/manifests/1")) for path in manifests)
    assert pinned in docker_client.images.get(pinned).attrs["RepoDigests"]

    again = developer.submit(cpu_job(["true"], image=pinned))
    assert wait_for(developer, again.id, SETTLED_ENOUGH).state is JobState.COMMITTED
    assert "pulling image" not in log_text(developer, again.id, "system")  # held: not pulled
