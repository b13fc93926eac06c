"""A challenge seen twice: by the event follower (from the contract's ``Challenged`` event) and
by the developer's request that carries their reason. Whichever comes first, the job's move to
DISPUTED ends up with the developer's reason, never the follower's placeholder."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import event_follower
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import ChainTx, Job, JobEventRow
from gpumarket.coordinator.services import disputes, lifecycle
from gpumarket.coordinator.services.auth import Principal
from gpumarket.coordinator.services.chain_backend import ChainSettlement
from gpumarket.coordinator.services.settlement import LedgerEvent, StepReceipt
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.protocol import JobState
from gpumarket.settlement.contracts import Deployment
from gpumarket.settlement.market_client import CHAIN_DISPUTED
from tests.helpers import cpu_spec
from tests.unit.coordinator.conftest import RecordingSettlement, add_developer, submit

CHALLENGER = "0x" + "ab" * 20
TX = "0x" + "cd" * 32
REASON = "the outputs are empty"


class Contract:
    """The market client's side of a challenge: the contract says DISPUTED; ``while_asked``
    runs when the coordinator asks (to play the follower inside the developer's request)."""

    deployment = Deployment(31337, "0x" + "00" * 20, "0x" + "01" * 20, 0)

    def __init__(self) -> None:
        self.while_asked: list[Any] = []

    def job_state(self, chain_job_id: str) -> int:
        for step in self.while_asked:
            step()
        return CHAIN_DISPUTED

    def mined_at(self, tx_hash: str) -> tuple[int | None, int | None]:
        """The developer's challenge transaction, as the node's receipt gives it."""
        return 1234, 56_789


@pytest.fixture
def committed(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    ledger: RecordingSettlement,
) -> tuple[Principal, str]:
    """A developer and their job, COMMITTED on-chain."""
    owner = add_developer(factory)
    job_id = submit(factory, owner, cpu_spec(), svc_settings, ledger)
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        job.state = JobState.COMMITTED.value
        job.chain_state = "committed"
        job.chain_job_id = "0x" + "11" * 32
    return owner, job_id


def follower_sees_the_event(
    factory: sessionmaker[Session], contract: Contract, job_id: str, settings: CoordinatorSettings
) -> bool:
    event = LedgerEvent(
        name="Challenged",
        job_ref="0x" + "11" * 32,
        args={"challenger": CHALLENGER, "jobId": bytes.fromhex("11" * 32)},
        receipt=StepReceipt(TX, 7, 40_000),
    )
    with session_scope(factory) as session:
        job = lifecycle.load_job_for_update(session, job_id)
        return event_follower.HANDLERS["Challenged"](
            session, backend(factory, settings, contract), job, event, settings
        )


def developer_reports(
    factory: sessionmaker[Session], contract: Contract, owner: Principal, job_id: str, reason: str
) -> Job:
    settings = CoordinatorSettings(db_url="sqlite://", background=False)
    chain = backend(factory, settings, contract)
    return disputes.challenge(factory, chain, owner, job_id, reason, TX)


def backend(
    factory: sessionmaker[Session], settings: CoordinatorSettings, contract: Contract
) -> ChainSettlement:
    """The real chain backend around the contract double."""
    return ChainSettlement(settings, factory, client=contract)  # type: ignore[arg-type]


def dispute_reasons(factory: sessionmaker[Session], job_id: str) -> list[str]:
    with session_scope(factory) as session:
        return list(
            session.scalars(
                select(JobEventRow.reason).where(
                    JobEventRow.job_id == job_id,
                    JobEventRow.kind == "job",
                    JobEventRow.to_state == JobState.DISPUTED.value,
                )
            )
        )


def challenge_txs(factory: sessionmaker[Session], job_id: str) -> list[str]:
    with session_scope(factory) as session:
        return list(
            session.scalars(
                select(ChainTx.tx_hash).where(ChainTx.job_id == job_id, ChainTx.step == "challenge")
            )
        )


def test_follower_first_then_the_developers_reason_replaces_the_placeholder(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    committed: tuple[Principal, str],
) -> None:
    owner, job_id = committed
    contract = Contract()
    assert follower_sees_the_event(factory, contract, job_id, svc_settings)
    assert dispute_reasons(factory, job_id) == [f"challenged: challenged on-chain by {CHALLENGER}"]

    job = developer_reports(factory, contract, owner, job_id, REASON)

    assert job.state == JobState.DISPUTED.value
    assert dispute_reasons(factory, job_id) == [f"challenged: {REASON}"]
    assert challenge_txs(factory, job_id) == [TX]  # the transaction is listed once


def test_follower_during_the_developers_request_still_keeps_the_reason(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    committed: tuple[Principal, str],
) -> None:
    owner, job_id = committed
    contract = Contract()
    # the follower records the dispute while the request asks the contract about it
    contract.while_asked.append(
        lambda: follower_sees_the_event(factory, Contract(), job_id, svc_settings)
    )
    developer_reports(factory, contract, owner, job_id, REASON)
    assert dispute_reasons(factory, job_id) == [f"challenged: {REASON}"]


def test_developer_first_then_the_follower_changes_nothing(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    committed: tuple[Principal, str],
) -> None:
    owner, job_id = committed
    contract = Contract()
    job = developer_reports(factory, contract, owner, job_id, REASON)
    assert job.state == JobState.DISPUTED.value and job.chain_state == "disputed"

    assert not follower_sees_the_event(factory, contract, job_id, svc_settings)

    assert dispute_reasons(factory, job_id) == [f"challenged: {REASON}"]
    assert challenge_txs(factory, job_id) == [TX]
    with session_scope(factory) as session:  # the receipt's block and gas, not "block ?"
        step = session.scalars(select(ChainTx).where(ChainTx.job_id == job_id)).one()
        assert (step.block, step.gas_used) == (1234, 56_789)


def test_a_repeated_request_does_not_overwrite_the_first_reason(
    factory: sessionmaker[Session],
    svc_settings: CoordinatorSettings,
    committed: tuple[Principal, str],
) -> None:
    owner, job_id = committed
    contract = Contract()
    follower_sees_the_event(factory, contract, job_id, svc_settings)
    developer_reports(factory, contract, owner, job_id, REASON)
    developer_reports(factory, contract, owner, job_id, "a second thought")
    assert dispute_reasons(factory, job_id) == [f"challenged: {REASON}"]
