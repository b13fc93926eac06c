"""docker-compose.yml brought up for real: PostgreSQL, anvil, the one-shot deploy, the coordinator
settling on-chain and the provider daemon in its container, driving the host's Docker engine.
A developer on the host then runs one job through the stack with the CLI, from deposit to
SETTLED. Base images come from ``scripts/build-compose-images.sh`` (no registry is reached)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from web3 import Web3

from gpumarket.settlement.devnet import free_port
from tests.e2e.helpers import cli
from tests.integration.provider.conftest import (
    BUSYBOX,
    RUN_ID,
    RUN_LABEL,
    remove_run_containers,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ADMIN = "compose-admin-token"


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) where present, else the standalone `docker-compose`."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return []


class Stack:
    """One compose project of this repository, on ports of its own."""

    def __init__(self, tmp: Path, command: list[str]) -> None:
        self.tmp = tmp
        self.command = command  # how this machine runs compose
        self.project = f"gmtest{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        self.anvil_port = free_port()
        self.env = {
            **os.environ,
            "GPUMARKET_ADMIN_TOKEN": ADMIN,
            "GPUMARKET_PORT": str(self.port),
            "ANVIL_PORT": str(self.anvil_port),
            "GPUMARKET_PROVIDER_HOME": str(tmp / "provider-home"),
            "GPUMARKET_CPU_PRICE": "36",  # 0.01 a second, for a receipt worth reading
            # the stack's job containers carry this run's label: teardown removes only them
            "GPUMARKET_PROVIDER_CONTAINER_LABEL": f"{RUN_LABEL}={RUN_ID}",
        }
        self.url = f"http://127.0.0.1:{self.port}"
        self.rpc_url = f"http://127.0.0.1:{self.anvil_port}"

    def compose(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.command, "-p", self.project, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"compose {args}: {result.stdout}\n{result.stderr}"
        return result

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40").stdout

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the coordinator never answered:\n{self.logs()}"
            time.sleep(1)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return cli(self.tmp / "dev", *args, check=check, env={"GPUMARKET_COORDINATOR": self.url})


@pytest.fixture
def stack(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Stack]:
    if not compose_command() and not shutil.which("apt-get"):
        why = (
            "neither `docker compose` nor `docker-compose` is installed, and there is no apt-get "
            "for scripts/build-compose-images.sh to install Debian's docker-compose with"
        )
        if os.environ.get("GPUMARKET_REQUIRE_DOCKER"):
            pytest.fail(why)
        pytest.skip(why)
    built = subprocess.run(
        ["bash", "scripts/build-compose-images.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    s = Stack(tmp_path, compose_command())  # the script installed one if none was there
    for setting in built.stdout.split("export", 1)[1].split():
        name, value = setting.split("=", 1)
        s.env[name] = value
    try:
        s.compose("up", "-d", "--build")
        s.wait_healthy()
        yield s
    finally:
        subprocess.run(
            [*s.command, "-p", s.project, "down", "-v", "--remove-orphans"],
            cwd=ROOT,
            env=s.env,
            capture_output=True,
            timeout=300,
            check=False,
        )
        remove_run_containers(docker_client)
        # each build of changed sources leaves the previous gpumarket:local untagged (0.6 GB)
        docker_client.images.prune(
            filters={"dangling": True, "label": "org.opencontainers.image.title=gpumarket"}
        )


def test_the_compose_stack_runs_a_job_to_settled(stack: Stack) -> None:
    s = stack
    providers: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120
    # the provider service signs in once it has funded and staked, and is online from its first
    # heartbeat, a moment later
    while not (providers and providers[0]["online"]):
        assert time.monotonic() < deadline, f"no provider online:\n{providers}\n{s.logs()}"
        time.sleep(1)
        providers = httpx.get(
            f"{s.url}/v1/admin/providers", headers={"Authorization": f"Bearer {ADMIN}"}
        ).json()

    # the developer, on the host: the dev chain's deployment file is in the stack's volume
    deployment = s.tmp / "deployment.json"
    deployment.write_text(
        s.compose("exec", "-T", "coordinator", "cat", "/chain/deployment.json").stdout
    )
    keystore = str(s.tmp / "dev" / "wallet.json")
    address = s.cli("wallet", "new", "--path", keystore).stdout.split()[2]
    s.cli(
        "chain",
        "fund",
        address,
        "--rpc-url",
        s.rpc_url,
        "--deployment",
        str(deployment),
        "--amount",
        "100",
    )
    s.cli("login", "--coordinator", s.url, "--wallet", keystore)
    s.cli("wallet", "deposit", "20")

    spec = s.tmp / "job.yaml"
    spec.write_text(
        f"image: {BUSYBOX}\nmax_price_per_hour: '36'\nmax_duration_seconds: 100\n"
        "resources: {cpu: 1, memory: 128MB}\n"
    )
    run = s.cli(
        "job",
        "submit",
        str(spec),
        "--command",
        "sh -c 'echo through compose; echo 42 > /outputs/answer.txt; sleep 2'",
        "--follow",
    )
    assert "through compose" in run.stdout
    job_id = run.stdout.split()[1]

    def job() -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(s.cli("job", "show", job_id, "--json").stdout)
        return shown

    deadline = time.monotonic() + 90
    while (state := job()["state"]) != "COMMITTED":
        assert time.monotonic() < deadline, f"{job_id} stayed {state}:\n{s.logs()}"
        time.sleep(0.5)

    w3 = Web3(Web3.HTTPProvider(s.rpc_url))
    w3.provider.make_request("evm_increaseTime", [3601])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    deadline = time.monotonic() + 90
    while (settled := job())["state"] != "SETTLED":
        assert time.monotonic() < deadline, f"{job_id} stayed {settled['state']}:\n{s.logs()}"
        time.sleep(0.5)

    assert [c["step"] for c in settled["chain"]] == ["open", "commit", "finalize"]
    receipt = {k: Decimal(v) for k, v in settled["receipt"].items()}
    assert receipt["paid"] > 0
    assert receipt["paid"] + receipt["fee"] + receipt["refund"] == 1  # the whole escrow
    balance = json.loads(s.cli("wallet", "balance", "--json").stdout)
    assert Decimal(balance["deposit"]) == 20 - receipt["paid"] - receipt["fee"]

    archive = s.tmp / "outputs.tar.gz"
    s.cli("job", "outputs", job_id, "--dest", str(archive))
    with tarfile.open(archive) as tar:
        answer = tar.extractfile("answer.txt")
        assert answer is not None and answer.read() == b"42\n"
