"""The on-chain market the money tests run against: an anvil devnet, a coordinator settling on
it, staked provider daemons running Docker, and a CLI home per person."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from eth_account.signers.local import LocalAccount

from gpumarket.keystore import create_wallet
from gpumarket.provider.config import load_config
from gpumarket.provider.daemon import ProviderDaemon
from gpumarket.settlement.contracts import Market
from gpumarket.settlement.deploy import write_deployment
from gpumarket.settlement.devnet import Devnet
from tests.conftest import ADMIN_TOKEN, sqlite_url
from tests.e2e.helpers import cli
from tests.integration.processes import CoordinatorProcess
from tests.integration.provider.conftest import (
    BUSYBOX,
    FAST,
    remove_run_containers,
    run_labels_toml,
)

USD = 10**6


class Session:
    """A devnet, a coordinator on it, a staked provider daemon, and a CLI home per person."""

    def __init__(
        self, net: Devnet, coordinator: CoordinatorProcess, tmp: Path, env: dict[str, str]
    ) -> None:
        self.net = net
        self.coordinator = coordinator
        self.tmp = tmp
        self.env = env
        self.deployment = tmp / "devnet.json"
        self.market = Market(net.w3, net.deployment.market)

    def cli(self, home: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"GPUMARKET_ADMIN_TOKEN": ADMIN_TOKEN, "GPUMARKET_COORDINATOR": self.coordinator.url}
        return cli(self.tmp / home, *args, check=check, env=env)

    def developer(self) -> None:
        """Developer quickstart: a new wallet, dev-chain funds (100), and a login."""
        keystore = str(self.tmp / "dev" / "wallet.json")
        created = self.cli("dev", "wallet", "new", "--path", keystore, "--json").stdout
        address = json.loads(created)["address"]
        self.fund(address, "100")
        self.cli("dev", "login", "--coordinator", self.coordinator.url, "--wallet", keystore)

    def fund(self, address: str, amount: str) -> None:
        """`gpumarket chain fund` on this devnet."""
        self.cli(
            "ops",
            "chain",
            "fund",
            address,
            "--rpc-url",
            self.net.rpc_url,
            "--deployment",
            str(self.deployment),
            "--amount",
            amount,
        )

    def kill_coordinator_and_restart(self, before_restart: Callable[[], None]) -> None:
        """SIGKILL the coordinator (no shutdown of any kind), run ``before_restart``, then
        start it again on the same port and database."""
        self.coordinator.process.kill()
        self.coordinator.process.wait()
        before_restart()
        port = int(self.coordinator.url.rsplit(":", 1)[1])
        self.coordinator = CoordinatorProcess.start(
            sqlite_url(self.tmp), self.tmp / "coord", ADMIN_TOKEN, port=port, extra_env=self.env
        )

    def submit_with_flags(self, command: str, *extra: str, max_price: str = "36") -> str:
        """The developer submits a busybox job from flags (36/h, at most 100 s: an escrow of
        1.0), with ``extra`` flags; its id."""
        return self.cli(
            "dev",
            "job",
            "submit",
            "--image",
            BUSYBOX,
            "--command",
            command,
            "--max-price",
            max_price,
            "--max-duration",
            "100",
            "--cpu",
            "1",
            "--memory",
            "128MB",
            *extra,
        ).stdout.split()[1]

    def job(self, job_id: str) -> dict[str, Any]:
        shown: dict[str, Any] = json.loads(self.cli("dev", "job", "show", job_id, "--json").stdout)
        return shown

    def wait(self, job_id: str, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (job := self.job(job_id))["state"] != state:
            assert time.monotonic() < deadline, f"{job_id} stayed {job['state']}"
            time.sleep(0.3)
        return job

    def balance(self, home: str, *extra: str) -> dict[str, str]:
        shown: dict[str, str] = json.loads(
            self.cli(home, "wallet", "balance", "--json", *extra).stdout
        )
        return shown


def money_session(
    tmp_path: Path,
    docker_client: docker.DockerClient,
    request: pytest.FixtureRequest,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Session]:
    """The ``session`` fixture's body (tests/e2e/conftest.py); ``extra_env`` adds coordinator
    settings."""
    # a short lease replaces a silent provider quickly; a test whose provider must keep its job
    # through a restart asks for a longer one (a loaded CI machine restarts a daemon slowly)
    marker = request.node.get_closest_marker("lease_seconds")
    lease = str(marker.args[0]) if marker else "5"
    with Devnet.start() as net:
        deployment = tmp_path / "devnet.json"
        write_deployment(net.deployment, deployment)
        env = {
            **FAST,
            "GPUMARKET_LEASE_SECONDS": lease,
            "GPUMARKET_CHAIN_RPC_URL": net.rpc_url,
            "GPUMARKET_CHAIN_DEPLOYMENT": str(deployment),
            "GPUMARKET_CHAIN_KEY": "0x" + bytes(net.accounts[0].key).hex(),
            **(extra_env or {}),
        }
        proc = CoordinatorProcess.start(
            sqlite_url(tmp_path), tmp_path / "coord", ADMIN_TOKEN, extra_env=env
        )
        session = Session(net, proc, tmp_path, env)
        try:
            yield session
        finally:
            session.coordinator.stop()  # the one running now: a test may have restarted it
    remove_run_containers(docker_client)


def staked_provider(s: Session, name: str = "provider") -> tuple[LocalAccount, Path]:
    """Provider guide: a wallet, dev-chain funds and a stake; returns the wallet and config."""
    wallet = s.tmp / f"{name}-wallet.json"
    account = create_wallet(wallet, "pw")
    config = s.tmp / f"{name}.toml"
    config.write_text(
        f'coordinator_url = "{s.coordinator.url}"\nwallet = "{wallet}"\n'
        f'work_dir = "{s.tmp / name / "work"}"\ncpu_price_per_hour = "36"\n'
        "stop_grace_seconds = 1\npoll_wait_seconds = 2\n"
        f"container_labels = {run_labels_toml()}\n"
    )
    s.fund(account.address, "500")
    low = s.cli("prov", "provider", "stake", "0.0000001", "--config", str(config), check=False)
    assert low.returncode == 1 and "at most 6 decimals" in low.stderr
    # the same flags as `provider run`, for a provider that runs without a config file
    flags = ["--coordinator", s.coordinator.url, "--wallet", str(wallet)]
    assert "staked 150" in s.cli("prov", "provider", "stake", "150", *flags).stdout
    return account, config


def start_provider(
    s: Session, name: str = "provider"
) -> tuple[ProviderDaemon, threading.Thread, Path]:
    """A staked provider's daemon, running in a thread."""
    account, config = staked_provider(s, name)
    daemon = ProviderDaemon(load_config(config), account)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return daemon, thread, config
