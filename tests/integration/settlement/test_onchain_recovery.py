"""A coordinator that dies between sending a chain transaction and recording its outcome.

The coordinator runs in-process (its background loops off, so the test decides when each step
runs) against a real anvil devnet. Each test lets a step send its transaction, kills the step
before the database learns the outcome, then runs the chain loop's recovery: the job reaches
the right state once, and the contract shows the money moved once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from gpumarket.coordinator.app import create_app
from gpumarket.coordinator.background import (
    chain_resume,
    event_follower,
    finalizer,
    matcher,
    refunder,
)
from gpumarket.coordinator.db.models import OutboxRow
from gpumarket.coordinator.services import orders, results
from gpumarket.coordinator.services.chain_backend import ChainSettlement
from gpumarket.coordinator.settings import CoordinatorSettings, load_settings
from gpumarket.errors import ConfigurationError, PaymentRequired
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
from gpumarket.settlement.group_send import GroupSender
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
    url: str
    transport: httpx.BaseTransport

    @property
    def factory(self):  # type: ignore[no-untyped-def]
        return self.app.app.state.session_factory  # type: ignore[attr-defined]

    def recover(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The restarted coordinator's chain loop (every intent counts as stale)."""
        settings = self.app.app.state.settings  # type: ignore[attr-defined]
        event_follower.follow_events(self.factory, self.backend, settings)
        chain_resume.resume_intents(self.factory, self.backend, settings, stale_after=-1.0)
        refunder.send_refunds(self.factory, self.backend)
        finalizer.finalize_due(self.factory, self.backend, settings)

    def outbox_keys(self, prefix: str) -> list[str]:
        with self.factory() as session:
            return list(
                session.scalars(
                    select(OutboxRow.key).where(
                        OutboxRow.key.like(prefix + "%"), OutboxRow.status == "done"
                    )
                )
            )


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
                url,
                transport,
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


def die(*_: object, **__: object) -> None:
    """Stands in for the step after the chain call: the process dies before it records."""
    raise Crash


def test_an_open_interrupted_after_its_transaction_queues_the_job_once(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = rig.dev.submit(SPEC)
    with monkeypatch.context() as patch:
        patch.setattr(orders, "apply_opened", die)
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
    job = rig.dev.submit(SPEC, wallet=rig.net.accounts[1])
    rig.recover(monkeypatch)  # the chain loop learns the provider's stake
    matcher.match_queued(rig.factory, rig.app.app.state.settings)  # type: ignore[attr-defined]
    (assignment,) = rig.provider.poll(wait=0)
    rig.provider.started(job.id)
    chain = rig.provider.chain_info()
    assert chain is not None
    claim = ClaimSigner(rig.net.accounts[2], chain).claim(assignment, 0, None, 0.5)
    report = ResultReport(exit_code=0, usage_seconds=0.5, claim=claim)
    with monkeypatch.context() as patch:
        patch.setattr(results, "apply_committed", die)
        with pytest.raises(Crash):
            rig.provider.report_result(job.id, report)
    assert rig.dev.get(job.id).state is JobState.RUNNING
    assert rig.backend.client.job_state(str(job.chain_job_id)) == 2  # Committed on-chain

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
        patch.setattr(finalizer.lifecycle, "finalize", die)
        with pytest.raises(Crash):
            finalizer.finalize_due(rig.factory, rig.backend, rig.app.app.state.settings)  # type: ignore[attr-defined]
    assert rig.dev.get(job.id).state is JobState.COMMITTED
    rig.recover(monkeypatch)
    settled = rig.dev.get(job.id)
    assert settled.state is JobState.SETTLED
    assert settled.receipt is not None and settled.receipt.paid == Decimal("0.004875")
    assert MarketWallet(chain, rig.net.accounts[2]).balances().earnings == 4_875
    assert rig.dev_wallet.balances().deposit == 100 * USD - 5_000


def ready_to_report(rig: Rig, monkeypatch: pytest.MonkeyPatch, jobs: int) -> list[ResultReport]:
    """``jobs`` paid jobs, matched, started, and their providers' signed claims."""
    submitted = [rig.dev.submit(SPEC, wallet=rig.net.accounts[1]) for _ in range(jobs)]
    rig.recover(monkeypatch)  # the chain loop learns the provider's stake
    matcher.match_queued(rig.factory, rig.app.app.state.settings)  # type: ignore[attr-defined]
    assignments = rig.provider.poll(wait=0)
    assert sorted(a.job_id for a in assignments) == sorted(j.id for j in submitted)
    chain = rig.provider.chain_info()
    assert chain is not None
    reports = []
    for assignment in assignments:
        rig.provider.started(assignment.job_id)
        claim = ClaimSigner(rig.net.accounts[2], chain).claim(assignment, 0, None, 0.5)
        reports.append(ResultReport(exit_code=0, usage_seconds=0.5, claim=claim))
    return [r for _, r in sorted(zip([a.job_id for a in assignments], reports, strict=True))]


def together(sender: GroupSender[Any, Any], calls: list[Callable[[], object]]) -> list[object]:
    """Every call at once, while ``sender``'s gate is held (as a transaction waiting for its
    block holds it) until all of them queue behind it; each one's answer (its return value, or
    the exception it raised)."""

    def run(call: Callable[[], object]) -> object:
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        with sender.gate:
            answers = [pool.submit(run, call) for call in calls]
            deadline = time.monotonic() + 30
            while sender.queued() < len(calls):
                assert time.monotonic() < deadline, "the requests never queued"
                time.sleep(0.01)
        return [a.result(60) for a in answers]


def report_together(rig: Rig, reports: list[ResultReport]) -> list[object]:
    """Every report at once, queued behind a commit that waits for its block."""
    ids = sorted(j.id for j in rig.dev.jobs().items if j.state is JobState.RUNNING)
    calls: list[Callable[[], object]] = [
        partial(rig.provider.report_result, i, r) for i, r in zip(ids, reports, strict=True)
    ]
    return together(rig.backend.client.commits, calls)


def pay_together(rig: Rig, payers: list[tuple[Client, int]]) -> list[object]:
    """A job for each (client, account index), all paid at once behind an open that waits."""
    jobs = [(client, client.submit(SPEC), index) for client, index in payers]
    calls: list[Callable[[], object]] = [
        partial(client.pay, job, rig.net.accounts[index], SPEC) for client, job, index in jobs
    ]
    return together(rig.backend.client.opens, calls)


def test_orders_that_arrive_while_an_open_waits_share_one_open_many(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = pay_together(rig, [(rig.dev, 1)] * 3)
    assert all(getattr(a, "state", None) is JobState.QUEUED for a in answers), answers
    opens = [a.chain[0] for a in answers]  # type: ignore[attr-defined]
    assert len({o.tx_hash for o in opens}) == 1  # one transaction, a share of its gas each:
    assert all(o.gas_used is not None and o.gas_used < 50_000 for o in opens)  # alone: 65k
    assert len(rig.outbox_keys("opens:")) == 1 and not rig.outbox_keys("open:")
    assert rig.dev_wallet.balances().deposit == 100 * USD - 3 * 6 * USD


def test_a_batch_of_orders_with_an_unfunded_one_is_sent_order_by_order(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = register_wallet(rig.url, rig.net.accounts[3], Role.DEVELOPER, transport=rig.transport)
    stranger = Client(rig.url, key.api_key, transport=rig.transport)
    answers = pay_together(rig, [(rig.dev, 1), (stranger, 3), (rig.dev, 1)])
    assert [getattr(a, "state", None) for a in (answers[0], answers[2])] == [JobState.QUEUED] * 2
    assert isinstance(answers[1], PaymentRequired) and "never deposited" in str(answers[1])
    (waiting,) = stranger.jobs().items
    assert waiting.state is JobState.SUBMITTED  # signs again once it has deposited
    assert rig.dev_wallet.balances().deposit == 100 * USD - 2 * 6 * USD


def test_a_batch_of_orders_opened_just_before_a_crash_is_recorded_from_its_events(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(orders, "apply_opened", die)
        answers = pay_together(rig, [(rig.dev, 1)] * 3)
    assert all(isinstance(a, Crash) for a in answers)
    assert all(j.state is JobState.SUBMITTED for j in rig.dev.jobs().items)

    rig.recover(monkeypatch)  # the event follower finds the opens; nothing is sent again
    views = rig.dev.jobs().items
    assert len(views) == 3 and all(v.state is JobState.QUEUED for v in views)
    assert all([s.step for s in rig.dev.get(v.id).chain] == ["open"] for v in views)
    assert len(rig.outbox_keys("opens:")) == 1 and not rig.outbox_keys("open:")
    assert rig.dev_wallet.balances().deposit == 100 * USD - 3 * 6 * USD  # once each


def test_claims_that_arrive_while_a_commit_waits_share_one_commit_many(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    MarketWallet(rig.provider.chain_info(), rig.net.accounts[2]).stake(300 * USD)  # type: ignore[arg-type]
    answers = report_together(rig, ready_to_report(rig, monkeypatch, 4))
    assert all(getattr(a, "state", None) is JobState.COMMITTED for a in answers), answers
    commits = [next(s for s in a.chain if s.step == "commit") for a in answers]  # type: ignore[attr-defined]
    assert len({c.tx_hash for c in commits}) == 1  # one transaction ...
    assert len(rig.outbox_keys("commits:")) == 1 and not rig.outbox_keys("commit:")  # commitMany
    assert all(c.gas_used is not None and c.gas_used < 40_000 for c in commits)  # a share each

    rig.net.time_travel(3601)
    rig.recover(monkeypatch)
    settled = [rig.dev.get(a.id) for a in answers]  # type: ignore[attr-defined]
    assert all(v.state is JobState.SETTLED for v in settled)
    paid = sum(int(v.receipt.paid * USD) for v in settled if v.receipt is not None)
    chain = rig.provider.chain_info()
    assert chain is not None
    assert MarketWallet(chain, rig.net.accounts[2]).balances().earnings == paid == 4 * 4_875


def test_a_batch_the_contract_refuses_is_sent_claim_by_claim(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    # matching asked for the stake each job's largest claim could lock (20 x 6 tokens); the
    # provider then takes out all but 2 of its 200: a result locks the 1-token floor (these
    # claims are far under floor / stake_multiple), so only two of the three commit
    reports = ready_to_report(rig, monkeypatch, 3)
    MarketWallet(rig.provider.chain_info(), rig.net.accounts[2]).request_unstake(198 * USD)  # type: ignore[arg-type]
    answers = report_together(rig, reports)
    committed = [a for a in answers if getattr(a, "state", None) is JobState.COMMITTED]
    refused = [a for a in answers if isinstance(a, PaymentRequired)]
    assert len(committed) == 2 and len(refused) == 1, answers
    assert "free stake is 0.000000" in str(refused[0])
    running = [j for j in rig.dev.jobs().items if j.state is JobState.RUNNING]
    assert len(running) == 1  # the refused claim's job waits for its provider to stake


def test_a_batch_committed_just_before_a_crash_is_recorded_from_its_events(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    MarketWallet(rig.provider.chain_info(), rig.net.accounts[2]).stake(300 * USD)  # type: ignore[arg-type]
    reports = ready_to_report(rig, monkeypatch, 3)
    with monkeypatch.context() as patch:
        patch.setattr(results, "apply_committed", die)
        answers = report_together(rig, reports)
    assert all(isinstance(a, Crash) for a in answers)
    running = [j for j in rig.dev.jobs().items if j.state is JobState.RUNNING]
    assert len(running) == 3

    rig.recover(monkeypatch)  # the event follower finds the commits; nothing is sent again
    views = [rig.dev.get(j.id) for j in running]
    assert all(v.state is JobState.COMMITTED for v in views)
    assert all([s.step for s in v.chain] == ["open", "commit"] for v in views)
    assert len({v.chain[1].tx_hash for v in views}) == 1
    assert len(rig.outbox_keys("commits:")) == 1 and not rig.outbox_keys("commit:")


def test_a_coordinator_key_without_the_role_or_not_a_key_is_refused_at_start(
    rig: Rig, tmp_path: Path
) -> None:
    """Every order and claim would revert under a key the market does not know as a
    coordinator: the coordinator refuses to start and says which account needs the role."""
    base = rig.backend
    deployment = tmp_path / "devnet.json"
    stranger = rig.net.accounts[1]

    def settings(key: str) -> CoordinatorSettings:
        return CoordinatorSettings(
            db_url=sqlite_url(tmp_path / "other"),
            data_dir=tmp_path / "other",
            chain_rpc_url=base.client.rpc_url,
            chain_deployment=deployment,
            chain_key=key,  # type: ignore[arg-type]
        )

    with pytest.raises(ConfigurationError, match="does not hold the coordinator role") as refused:
        ChainSettlement(settings("0x" + bytes(stranger.key).hex()), rig.factory)
    assert stranger.address in str(refused.value)
    # a key that is not one is a misconfiguration refused with the other settings, before
    # the chain is even asked
    with pytest.raises(ConfigurationError, match="is not a private key") as garbled:
        load_settings(
            db_url=sqlite_url(tmp_path / "other"),
            chain_rpc_url=base.client.rpc_url,
            chain_deployment=deployment,
            chain_key="0x1234",
        )
    # a key, even a wrong one, is never echoed
    assert "0x1234" not in str(garbled.value) and "0x1234" not in str(garbled.value.__cause__)
