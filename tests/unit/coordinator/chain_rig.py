"""The coordinator's real chain backend over the in-memory market, on the service tests' SQLite
database: a funded developer wallet, a staked provider wallet, and builders that walk a job to
each money state through the real services (submit, sign_order, matcher, report_result)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import matcher
from gpumarket.coordinator.db.base import new_id
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import ChainTx, Developer, Job, JobEventRow
from gpumarket.coordinator.services import jobs, lifecycle, orders, providers, results
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.chain_backend import ChainSettlement, OrderIntent
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobSpec, PaymentRequest, ResultClaim, ResultReport, Role
from gpumarket.settlement.market_client import MarketClient
from gpumarket.settlement.signing import Order, result_hash, sign_order, sign_result
from tests.fakes.market import FakeMarket
from tests.helpers import RTX4090, gpu_spec, gpus, heartbeat
from tests.unit.coordinator.conftest import add_provider

USD = 1_000_000
PRICE = "36"  # USD an hour: 10,000 micros a second
ESCROW = 6 * USD  # 36 USD/h x 1 GPU x 600 s
AMOUNT = 10_000  # what a 1-second run claims
SPEC = gpu_spec(gpu="RTX4090:1", price=PRICE, max_duration_seconds=600)


def chain_backend(
    settings: CoordinatorSettings, factory: sessionmaker[Session], market: FakeMarket
) -> ChainSettlement:
    """The real chain backend, its client the fake market."""
    return ChainSettlement(settings, factory, client=cast(MarketClient, market))


@dataclass(frozen=True)
class ChainStep:
    """A ``job_events`` row of kind ``chain``: one move of the job's money."""

    from_state: str | None
    to_state: str
    tx_hash: str | None
    block: int | None
    gas_used: int | None


@dataclass
class ChainRig:
    """A coordinator settling on the fake market, with one developer and one provider."""

    factory: sessionmaker[Session]
    settings: CoordinatorSettings
    market: FakeMarket
    backend: ChainSettlement
    dev_wallet: LocalAccount
    dev: Principal
    provider_wallet: LocalAccount
    provider: Principal

    @classmethod
    def create(
        cls,
        factory: sessionmaker[Session],
        settings: CoordinatorSettings,
        market: FakeMarket | None = None,
        *,
        deposit: int = 100 * USD,
        stake: int = 5 * USD,
        gpu_count: int = 4,
    ) -> ChainRig:
        """Wallets registered with the coordinator, the developer's deposit and the provider's
        stake on the market, and the provider's offer of ``gpu_count`` GPUs at :data:`PRICE`."""
        market = market or FakeMarket()
        dev_wallet: LocalAccount = Account.create()
        provider_wallet: LocalAccount = Account.create()
        with session_scope(factory) as session:
            row = Developer(
                id=new_id("dev"), address=dev_wallet.address.lower(), api_key_hash=new_id("h")
            )
            session.add(row)
            dev = Principal(Role.DEVELOPER, row.id, row.address)
        beat = heartbeat(gpus(RTX4090, gpu_count), {"RTX4090": PRICE})
        seller = add_provider(factory, settings, beat, address=provider_wallet.address.lower())
        provider = Principal(Role.PROVIDER, seller.account_id, provider_wallet.address.lower())
        if deposit:
            market.deposit(dev_wallet.address, deposit)
        if stake:
            market.stake(provider_wallet.address, stake)
        backend = chain_backend(settings, factory, market)
        return cls(factory, settings, market, backend, dev_wallet, dev, provider_wallet, provider)

    # ------------------------------------------------------------ walking a job

    def submit(self) -> str:
        """A new job, waiting for its developer's order."""
        with session_scope(self.factory) as session:
            spec = JobSpec.model_validate(SPEC)
            return jobs.submit(session, self.dev, spec, None, self.backend, self.settings).id

    def order_signature(self, job_id: str, wallet: LocalAccount | None = None) -> str:
        """The developer's (or ``wallet``'s) signature over the job's payment request."""
        request = PaymentRequest.model_validate(self.job(job_id).payment_request)
        signature = sign_order(
            wallet or self.dev_wallet,
            Order.from_request(request),
            request.chain_id,
            request.market,
        )
        return "0x" + signature.hex()

    def fund(self, job_id: str) -> Job:
        """The developer's signed order, through the request path."""
        signature = self.order_signature(job_id)
        return orders.sign_order(self.factory, self.backend, self.dev, job_id, signature)

    def queued(self) -> str:
        """A job whose escrow is open (QUEUED)."""
        job_id = self.submit()
        self.fund(job_id)
        return job_id

    def run(self, job_id: str) -> None:
        """Match the queued job to the provider and start it."""
        matcher.match_queued(self.factory, self.settings)
        assert self.job(job_id).provider_id == self.provider.account_id
        with session_scope(self.factory) as session:
            providers.mark_started(session, self.provider, job_id, self.settings)

    def running(self) -> str:
        """A job RUNNING on the provider, its escrow open."""
        job_id = self.queued()
        self.run(job_id)
        return job_id

    def claim(
        self,
        job_id: str,
        amount: int = AMOUNT,
        *,
        exit_code: int = 0,
        wallet: LocalAccount | None = None,
        signed_hash: bytes | None = None,
    ) -> ResultReport:
        """The provider's report of a 1-second run with its signed claim for ``amount``
        (signed by ``wallet``, over ``signed_hash`` when given, to test refusals)."""
        ref = self.job(job_id).chain_job_id
        assert ref is not None
        digest = result_hash(exit_code, None)
        signature = sign_result(
            wallet or self.provider_wallet,
            bytes.fromhex(ref[2:]),
            signed_hash or digest,
            amount,
            self.market.deployment.chain_id,
            self.market.deployment.market,
        )
        claim = ResultClaim(
            amount_micros=amount,
            result_hash="0x" + (signed_hash or digest).hex(),
            signature="0x" + signature.hex(),
        )
        return ResultReport(exit_code=exit_code, usage_seconds=1.0, claim=claim)

    def report(self, job_id: str, report: ResultReport | None = None) -> Job:
        """The provider's result, through the request path."""
        return results.report_result(
            self.factory,
            self.backend,
            self.provider,
            job_id,
            report or self.claim(job_id),
            self.settings,
        )

    def committed(self) -> str:
        """A job COMMITTED on the market, its window running."""
        job_id = self.running()
        self.report(job_id)
        return job_id

    def pass_window(self) -> None:
        """The market's clock past the challenge window of everything committed so far."""
        self.market.advance(self.market.current_terms.window + 1)

    def record_order(self, job_id: str) -> OrderIntent:
        """The order's intent recorded, as by a request that died before sending it."""
        signature = self.order_signature(job_id)
        with session_scope(self.factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            intent = self.backend.order_intent(session, job, self.dev.address or "", signature)
        assert intent is not None
        return intent

    def age(self, job_id: str, when: datetime) -> None:
        """Set the job's last change (what the resume loop measures staleness by)."""
        with session_scope(self.factory) as session:
            lifecycle.load_job_for_update(session, job_id).updated_at = when

    # ------------------------------------------------------------ reading back

    def job(self, job_id: str) -> Job:
        """The job's row as committed (its ledger steps loaded)."""
        with session_scope(self.factory) as session:
            job = session.get(Job, job_id)
            assert job is not None
            return jobs.with_chain_steps(job)

    def ref(self, job_id: str) -> str:
        """The job's id in the contract."""
        ref = self.job(job_id).chain_job_id
        assert ref is not None
        return ref

    def chain_steps(self, job_id: str) -> list[ChainStep]:
        """The job's money moves, oldest first, as ``job_events`` records them."""
        with session_scope(self.factory) as session:
            rows = session.scalars(
                select(JobEventRow)
                .where(JobEventRow.job_id == job_id, JobEventRow.kind == "chain")
                .order_by(JobEventRow.id)
            )
            return [
                ChainStep(r.from_state, r.to_state, r.tx_hash, r.block, r.gas_used) for r in rows
            ]

    def receipts(self, job_id: str) -> list[tuple[str, str, int | None, int | None]]:
        """(step, tx hash, block, gas) of the job's transactions on its view's receipt."""
        with session_scope(self.factory) as session:
            rows = session.scalars(
                select(ChainTx).where(ChainTx.job_id == job_id).order_by(ChainTx.id)
            )
            return [(r.step, r.tx_hash, r.block, r.gas_used) for r in rows]

    def reasons(self, job_id: str) -> list[str]:
        """The reasons of the job's lifecycle moves, oldest first."""
        with session_scope(self.factory) as session:
            return list(
                session.scalars(
                    select(JobEventRow.reason)
                    .where(JobEventRow.job_id == job_id, JobEventRow.kind == "job")
                    .order_by(JobEventRow.id)
                )
            )
