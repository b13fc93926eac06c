"""The test suite touches only the containers it started: on a provider host, ``make test`` must
leave the host's own jobs (containers labelled ``gpumarket.job``) running."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import docker
import pytest

from gpumarket.protocol import JobState
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.provider.executor import LABEL_JOB
from gpumarket.sdk import Client
from tests.integration.provider.conftest import (
    BUSYBOX,
    RUN_ID,
    RUN_LABEL,
    cpu_job,
    remove_run_containers,
    wait_for,
)

pytestmark = pytest.mark.integration


def test_teardown_removes_this_runs_containers_and_spares_someone_elses(
    docker_client: docker.DockerClient,
) -> None:
    tag = uuid.uuid4().hex[:8]
    foreign = docker_client.containers.run(  # another provider's live job on this engine
        BUSYBOX,
        ["sleep", "300"],
        name=f"gpumarket-someone-else-{tag}",
        labels={LABEL_JOB: "someone-else"},
        detach=True,
    )
    ours = docker_client.containers.create(
        BUSYBOX,
        ["true"],
        name=f"gpumarket-test-{tag}",
        labels={LABEL_JOB: f"job_{tag}", RUN_LABEL: RUN_ID},
    )
    try:
        remove_run_containers(docker_client)  # what every fixture's teardown runs

        foreign.reload()
        assert foreign.status == "running"
        assert foreign.labels[LABEL_JOB] == "someone-else"
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(ours.id)
    finally:
        foreign.remove(force=True)
        for leftover in docker_client.containers.list(all=True, filters={"id": ours.id}):
            leftover.remove(force=True)


def test_the_tests_daemons_label_their_job_containers_with_the_run(
    developer: Client,
    start_daemon: Callable[..., ProviderDaemon],
    docker_client: docker.DockerClient,
) -> None:
    start_daemon()
    job = developer.submit(cpu_job(["sleep", "60"]))
    wait_for(developer, job.id, {JobState.RUNNING})
    [container] = docker_client.containers.list(
        all=True, filters={"label": f"{LABEL_JOB}={job.id}"}
    )
    assert container.labels[RUN_LABEL] == RUN_ID
    developer.cancel(job.id)
