"""A coordinator that dies between sending a chain transaction and recording its outcome.

The coordinator runs in-process (its background loops off, so the test decides when each step
runs) against a real anvil devnet. Each test lets a step send its transaction, kills the step
before the database learns the outcome, then runs the chain loop's recovery: the job reaches
the right state once, and the contract shows the money moved once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gpumarket.coordinator.app import create_app
from gpumarket.coordinator.services import onchain
from gpumarket.coordinator.services.chain import ChainSettlement
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import (
    Heartbeat,
    HostResources,
    JobSpec,
    JobState,
    OfferAsk,
    ResultReport,
    Role,
)
from gpumarket.provider.claims import ClaimSigner
from gpumarket.sdk import Client, ProviderClient, register_wallet
from gpumarket.settlement.deploy import write_deployment
from gpumarket.settlement.devnet import Devnet
from gpumarket.settlement.wallet import MarketWallet
from tests.conftest import ADMIN_TOKEN, sqlite_url

pytestmark = pytest.mark.integration
USD = 10**6
SPEC = JobSpec.model_validate(
    {
        "image": "busybox:latest",
        "command": ["true"],
        "max_price_per_hour": "36",
        "max_duration_seconds": 600,
    }
)


class SharedTransport(httpx.BaseTransport):
    """The in-process app's transport, shared by several SDK clients (none may close it)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self.inner.handle_request(request)

    def close(self) -> None:
        """The TestClient owns the real transport."""


class Crash(Exception):
    """Stands for the process dying: nothing after it runs."""


@dataclass
class Rig:
    net: Devnet
    app: TestClient
    backend: ChainSettlement
    dev: Client
    provider: ProviderClient
    dev_wallet: MarketWallet

    @property
    def factory(self):  # type: ignore[no-untyped-def]
        return self.app.app.state.session_factory  # type: ignore[attr-defined]

    def recover(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The restarted coordinator's chain loop (every intent counts as stale)."""
        monkeypatch.setattr(onchain, "STALE_INTENT_SECONDS", -1.0)
        settings = self.app.app.state.settings  # type: ignore[attr-defined]
        onchain.tick(self.factory, self.backend, settings)

    def outbox_keys(self, prefix: str) -> list[str]:
        rows = self.backend.sender.db.execute(
            "SELECT key FROM outbox WHERE key LIKE ? AND status = 'done'", (prefix + "%",)
        ).fetchall()
        return [r[0] for r in rows]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with Devnet.start() as net:
        deployment = tmp_path / "devnet.json"
        write_deployment(net.deployment, deployment)
        settings = CoordinatorSettings(
            db_url=sqlite_url(tmp_path),
            data_dir=tmp_path / "data",
            admin_token=ADMIN_TOKEN,
            background=False,
            chain_rpc_url=net.rpc_url,
            chain_deployment=deployment,
            chain_key="0x" + bytes(net.accounts[0].key).hex(),  # type: ignore[arg-type]
        )
        app = create_app(settings)
        with TestClient(app) as test_client:
            url, transport = "http://testserver", SharedTransport(test_client._transport)
            dev_key = register_wallet(url, net.accounts[1], Role.DEVELOPER, transport=transport)
            prov_key = register_wallet(url, net.accounts[2], Role.PROVIDER, transport=transport)
            dev = Client(url, dev_key.api_key, transport=transport)
            chain = dev.chain_info()
            assert chain is not None
            rig = Rig(
                net,
                test_client,
                app.state.settlement,
                dev,
                ProviderClient(url, prov_key.api_key, transport=transport),
                MarketWallet(chain, net.accounts[1]),
            )
            MarketWallet(chain, net.accounts[2]).stake(200 * USD)
            rig.dev_wallet.deposit(100 * USD)
            rig.provider.heartbeat(
                Heartbeat(
                    resources=HostResources(cpu_count=4, memory_mb=8192, disk_mb=100_000),
                    offers=[OfferAsk(gpu_model="CPU", price_per_hour=Decimal(36))],
                )
            )
            yield rig


def crash_after_send(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Make ``onchain.<name>`` (the step after the chain call) die instead of recording."""

    def die(*_: object, **__: object) -> None:
        raise Crash

    monkeypatch.setattr(onchain, name, die)


def test_an_open_interrupted_after_its_transaction_queues_the_job_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = rig.dev.submit(SPEC)
    with monkeypatch.context() as patch:
        crash_after_send(patch, "_opened")
        with pytest.raises(Crash):
            rig.dev.pay(job, rig.net.accounts[1], SPEC)
    assert rig.dev.get(job.id).state is JobState.SUBMITTED
    assert rig.dev_wallet.balances().deposit == 94 * USD  # the escrow did move on-chain

    rig.recover(monkeypatch)
    view = rig.dev.get(job.id)
    assert view.state is JobState.QUEUED and [s.step for s in view.chain] == ["open"]
    assert rig.dev_wallet.balances().deposit == 94 * USD  # ... and only once
    assert len(rig.outbox_keys("open:")) == 1


def test_a_commit_interrupted_after_its_transaction_commits_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gpumarket.coordinator.background.pipelines import match_queued

    job = rig.dev.submit(SPEC, wallet=rig.net.accounts[1])
    rig.recover(monkeypatch)  # the chain loop learns the provider's stake
    match_queued(rig.factory, rig.app.app.state.settings)  # type: ignore[attr-defined]
    (assignment,) = rig.provider.poll(wait=0)
    rig.provider.started(job.id)
    chain = rig.provider.chain_info()
    assert chain is not None
    claim = ClaimSigner(rig.net.accounts[2], chain).claim(assignment, 0, None, 0.5)
    report = ResultReport(exit_code=0, usage_seconds=0.5, claim=claim)
    with monkeypatch.context() as patch:
        crash_after_send(patch, "_committed")
        with pytest.raises(Crash):
            rig.provider.report_result(job.id, report)
    assert rig.dev.get(job.id).state is JobState.RUNNING
    assert rig.backend.job_state(str(job.chain_job_id)) == 2  # Committed on-chain

    rig.recover(monkeypatch)
    assert rig.dev.get(job.id).state is JobState.COMMITTED
    again = rig.provider.report_result(job.id, report)  # the daemon's retry: a no-op
    assert again.state is JobState.COMMITTED and [s.step for s in again.chain] == [
        "open",
        "commit",
    ]
    assert len(rig.outbox_keys("commit:")) == 1

    # the finalize is interrupted the same way, then the loop settles it from the same batch
    rig.net.time_travel(3601)
    with monkeypatch.context() as patch:

        def die(*args: object, **kwargs: object) -> None:
            raise Crash

        patch.setattr(onchain.lifecycle, "finalize", die)
        with pytest.raises(Crash):
            onchain.finalize_ready(rig.factory, rig.backend, rig.app.app.state.settings)  # type: ignore[attr-defined]
    assert rig.dev.get(job.id).state is JobState.COMMITTED
    rig.recover(monkeypatch)
    settled = rig.dev.get(job.id)
    assert settled.state is JobState.SETTLED
    assert settled.receipt is not None and settled.receipt.paid == Decimal("0.004875")
    assert MarketWallet(chain, rig.net.accounts[2]).balances().earnings == 4_875
    assert rig.dev_wallet.balances().deposit == 100 * USD - 5_000
