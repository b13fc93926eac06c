"""The finalizer loop over the in-memory market: claims whose window has passed on the chain's
clock are paid in one call and settled; one someone else finalized first is left to the event
follower, which settles it from that transaction."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import event_follower, finalizer
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.db.models import Provider
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import Unreachable
from gpumarket.settlement.market_client import CHAIN_COMMITTED, CHAIN_SETTLED
from tests.unit.coordinator.chain_rig import AMOUNT, ESCROW, ChainRig, ChainStep

PAID = AMOUNT - 250  # less the contract's 2.5% fee


@pytest.fixture
def rig(factory: sessionmaker[Session], svc_settings: CoordinatorSettings) -> ChainRig:
    """The chain backend over a fresh fake market, a funded developer and a staked provider."""
    return ChainRig.create(factory, svc_settings)


def earned(rig: ChainRig) -> int:
    with session_scope(rig.factory) as session:
        provider = session.get(Provider, rig.provider.account_id)
        assert provider is not None
        return provider.earned_micros


def test_due_claims_are_paid_in_one_batch_and_settled(rig: ChainRig) -> None:
    first, second = rig.committed(), rig.committed()
    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 0  # window runs
    rig.pass_window()
    later = rig.committed()  # its window has only begun

    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 2

    [batch] = rig.market.mined("finalizeMany")
    assert rig.market.mined("finalize") == []
    assert len(batch.by_name()["Settled"]) == 2
    for job_id in (first, second):
        job = rig.job(job_id)
        assert (job.state, job.chain_state) == ("SETTLED", "settled")
        assert (job.paid_micros, job.fee_micros, job.refund_micros) == (PAID, 250, ESCROW - AMOUNT)
        # each job's share of the batch's gas
        assert rig.chain_steps(job_id)[-1] == ChainStep(
            "committed", "settled", batch.hash, batch.block, batch.gas_used // 2
        )
        assert rig.market.job_state(rig.ref(job_id)) == CHAIN_SETTLED
    assert (rig.job(later).state, rig.market.job_state(rig.ref(later))) == (
        "COMMITTED",
        CHAIN_COMMITTED,
    )
    assert earned(rig) == 2 * PAID
    assert rig.market.balance(rig.provider_wallet.address).earnings == 2 * PAID

    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 0  # nothing due
    assert len(rig.market.mined("finalizeMany")) == 1


def test_a_claim_someone_else_finalized_first_is_left_to_the_follower(rig: ChainRig) -> None:
    ours, theirs = rig.committed(), rig.committed()
    rig.pass_window()
    other_tx = rig.market.finalize_by(rig.provider_wallet.address, rig.ref(theirs))

    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 1

    [batch] = rig.market.mined("finalizeMany")
    assert [bytes(e["jobId"]) for e in batch.by_name()["Settled"]] == [
        bytes.fromhex(rig.ref(ours)[2:])
    ]
    assert rig.chain_steps(ours)[-1].gas_used == batch.gas_used  # all of it: it paid one job
    assert (rig.job(theirs).state, rig.job(theirs).chain_state) == ("COMMITTED", "committed")

    assert event_follower.follow_events(rig.factory, rig.backend, rig.settings) == 1

    job = rig.job(theirs)
    assert (job.state, job.chain_state, job.paid_micros) == ("SETTLED", "settled", PAID)
    mined = rig.market.txs[other_tx]
    assert rig.chain_steps(theirs)[-1] == ChainStep(
        "committed", "settled", other_tx, mined.block, mined.gas_used
    )
    assert earned(rig) == 2 * PAID  # each paid once


def test_one_due_claim_goes_alone_and_one_finalized_meanwhile_changes_nothing(
    rig: ChainRig,
) -> None:
    """A single due job uses the cheaper ``finalize``; when someone else finalized it first the
    contract refuses it and nothing is recorded until the follower reads their event."""
    alone = rig.committed()
    rig.pass_window()
    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 1
    assert [m.function for m in rig.market.txs.values()][-1] == "finalize"
    assert rig.job(alone).state == "SETTLED"

    raced = rig.committed()
    rig.pass_window()
    rig.market.finalize_by(rig.dev_wallet.address, rig.ref(raced))
    sent = len(rig.market.txs)
    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 0
    assert len(rig.market.txs) == sent  # refused before sending
    assert rig.job(raced).state == "COMMITTED"
    event_follower.follow_events(rig.factory, rig.backend, rig.settings)
    assert rig.job(raced).state == "SETTLED"


def test_a_payout_whose_answer_was_lost_is_applied_next_run_without_paying_twice(
    rig: ChainRig,
) -> None:
    jobs = [rig.committed(), rig.committed()]
    rig.pass_window()
    rig.market.lose_answer("finalizeMany")
    with pytest.raises(Unreachable):
        finalizer.finalize_due(rig.factory, rig.backend, rig.settings)
    assert [rig.job(j).chain_state for j in jobs] == ["committed", "committed"]

    assert finalizer.finalize_due(rig.factory, rig.backend, rig.settings) == 2

    [batch] = rig.market.mined("finalizeMany")
    assert rig.market.repeats == [rig.market.calls[-1][1]]  # the same batch, answered again
    assert [rig.chain_steps(j)[-1].tx_hash for j in jobs] == [batch.hash, batch.hash]
    assert earned(rig) == rig.market.balance(rig.provider_wallet.address).earnings == 2 * PAID
