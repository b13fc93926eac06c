"""The event follower over the in-memory market: what others did on the contract (a challenge,
a ruling, an expired escrow) and steps whose answer a crash lost (an open, a commit) reach their
jobs through the same functions as the request path, each with the transaction that made it;
the cursor moves with them, so nothing is applied twice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import event_follower, refunder
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import ChainCursor, Provider
from gpumarket.coordinator.services import disputes
from gpumarket.coordinator.services.chain_backend import EVENTS_CURSOR
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import Unreachable
from gpumarket.settlement.market_client import CHAIN_CANCELLED, CHAIN_COMMITTED, CHAIN_OPEN
from tests.unit.coordinator.chain_rig import AMOUNT, ESCROW, ChainRig, ChainStep

PAID = AMOUNT - 250  # less the contract's 2.5% fee


@pytest.fixture
def rig(factory: sessionmaker[Session], svc_settings: CoordinatorSettings) -> ChainRig:
    """The chain backend over a fresh fake market, a funded developer and a staked provider."""
    return ChainRig.create(factory, svc_settings)


def follow(rig: ChainRig, max_blocks: int = 2000) -> int:
    return event_follower.follow_events(rig.factory, rig.backend, rig.settings, max_blocks)


def caught_up(rig: ChainRig) -> None:
    """Everything so far is applied: later runs see only what happens next."""
    follow(rig)
    assert follow(rig) == 0


def made_by(rig: ChainRig, tx_hash: str, frm: str, to: str, share: int = 1) -> ChainStep:
    mined = rig.market.txs[tx_hash]
    return ChainStep(frm, to, tx_hash, mined.block, mined.gas_used // share)


def test_an_open_whose_answer_was_lost_queues_its_job(rig: ChainRig) -> None:
    job_id = rig.submit()
    caught_up(rig)
    rig.market.lose_answer("openJob")
    with pytest.raises(Unreachable):
        rig.fund(job_id)
    assert (rig.job(job_id).state, rig.job(job_id).chain_state) == ("SUBMITTED", "awaiting_order")
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_OPEN  # it reached the chain

    assert follow(rig) == 1

    job = rig.job(job_id)
    assert (job.state, job.chain_state) == ("QUEUED", "open")
    [tx] = rig.market.mined("openJob")
    assert rig.chain_steps(job_id)[-1] == made_by(rig, tx.hash, "awaiting_order", "open")
    assert [s for s, *_ in rig.receipts(job_id)] == ["open"]


def test_a_commit_whose_answer_was_lost_commits_its_job_on_the_contracts_window(
    rig: ChainRig,
) -> None:
    job_id = rig.running()
    caught_up(rig)
    rig.market.lose_answer("commitResult")
    with pytest.raises(Unreachable):
        rig.report(job_id)
    assert rig.job(job_id).state == "RUNNING" and rig.job(job_id).pending_result is not None
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_COMMITTED

    assert follow(rig) == 1

    job = rig.job(job_id)
    window_end = rig.market.job(rig.ref(job_id)).window_end
    assert (job.state, job.chain_state, job.pending_result) == ("COMMITTED", "committed", None)
    assert (job.amount_micros, job.chain_window_end) == (AMOUNT, window_end)
    assert job.challenge_deadline == datetime.fromtimestamp(window_end, UTC)
    [tx] = rig.market.mined("commitResult")
    assert rig.chain_steps(job_id)[-1] == made_by(rig, tx.hash, "open", "committed")
    with session_scope(rig.factory) as session:  # the stake the result locked is seen
        provider = session.get(Provider, rig.provider.account_id)
        assert provider is not None and provider.stake_micros == 4_000_000


def test_a_challenge_sent_straight_to_the_contract_disputes_the_job(rig: ChainRig) -> None:
    job_id = rig.committed()
    caught_up(rig)
    tx = rig.market.challenge_by(rig.dev_wallet.address, rig.ref(job_id))

    assert follow(rig) == 1

    job = rig.job(job_id)
    assert (job.state, job.chain_state) == ("DISPUTED", "disputed")
    assert rig.reasons(job_id)[-1] == (
        f"challenged: {disputes.CHALLENGED_ON_CHAIN_BY}{rig.dev_wallet.address}"
    )
    assert rig.chain_steps(job_id)[-1] == made_by(rig, tx, "committed", "disputed")


@pytest.mark.parametrize("at_fault", [True, False], ids=["against-provider", "for-provider"])
def test_a_ruling_made_straight_on_the_contract_is_applied_with_its_money(
    rig: ChainRig, at_fault: bool
) -> None:
    job_id = rig.committed()
    rig.market.challenge_by(rig.dev_wallet.address, rig.ref(job_id))
    caught_up(rig)
    tx = rig.market.rule_by_arbiter(rig.ref(job_id), at_fault)

    assert follow(rig) == 1

    job = rig.job(job_id)
    assert rig.reasons(job_id)[-1].endswith(disputes.RULED_ON_CHAIN)
    assert rig.chain_steps(job_id)[-1] == made_by(
        rig, tx, "disputed", "refunded" if at_fault else "settled"
    )
    if at_fault:
        assert (job.state, job.paid_micros, job.refund_micros) == ("REFUNDED", 0, ESCROW)
    else:
        assert (job.state, job.paid_micros, job.refund_micros) == (
            "SETTLED",
            PAID,
            ESCROW - AMOUNT,
        )
    assert follow(rig) == 0


def test_an_escrow_expired_on_the_contract_expires_its_queued_job(rig: ChainRig) -> None:
    job_id = rig.queued()
    ref = rig.ref(job_id)
    caught_up(rig)
    rig.market.advance(rig.market.job(ref).deadline - rig.market.now + 1)
    tx = rig.market.expire_by(rig.provider_wallet.address, ref)

    assert follow(rig) == 1

    job = rig.job(job_id)
    assert (job.state, job.chain_state, job.refund_micros) == ("EXPIRED", "cancelled", ESCROW)
    assert "escrow was returned on-chain" in rig.reasons(job_id)[-1]
    assert rig.chain_steps(job_id)[-1] == made_by(rig, tx, "open", "cancelled")
    assert refunder.send_refunds(rig.factory, rig.backend) == 0  # nothing left to return
    assert rig.market.job_state(ref) == CHAIN_CANCELLED and rig.market.mined("cancel") == []


def test_the_cursor_moves_with_what_it_applied_so_nothing_is_applied_twice(
    rig: ChainRig,
) -> None:
    """Read a few blocks at a time, every event is applied once; a run with nothing new
    applies nothing; a later event is read from where the cursor stopped."""
    first = rig.submit()
    rig.market.lose_answer("openJob")
    with pytest.raises(Unreachable):
        rig.fund(first)
    second = rig.committed()
    rig.market.challenge_by(rig.dev_wallet.address, rig.ref(second))

    applied = [follow(rig, max_blocks=2) for _ in range(6)]

    assert sum(applied) == 2  # the lost open and the challenge, once each
    assert applied[-1] == 0
    with session_scope(rig.factory) as session:
        cursor = session.get(ChainCursor, EVENTS_CURSOR)
        assert cursor is not None and cursor.next_block == rig.market.block + 1
    assert (rig.job(first).state, rig.job(second).state) == ("QUEUED", "DISPUTED")
    assert len([s for s in rig.chain_steps(second) if s.to_state == "disputed"]) == 1

    rig.market.rule_by_arbiter(rig.ref(second), provider_at_fault=True)
    assert follow(rig) == 1
    assert rig.job(second).state == "REFUNDED"
