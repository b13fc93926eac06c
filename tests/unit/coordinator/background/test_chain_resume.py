"""The resume loop over the in-memory market: orders and claims a request recorded but never
finished (it died before sending, or after sending but before the answer) are sent again, and
the outbox's keys make each reach the chain exactly once; an order the ledger refuses is
dropped, and one opened in a batch whose answer was lost is left to the event follower."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from gpumarket.coordinator.background import chain_resume, event_follower
from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.engine import session_scope
from gpumarket.coordinator.services import lifecycle
from gpumarket.coordinator.services.chain_backend import OrderIntent
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import GpumarketError, Unreachable
from gpumarket.settlement.market_client import CHAIN_NONE, CHAIN_OPEN
from tests.unit.coordinator.chain_rig import AMOUNT, USD, ChainRig

LONG_AGO = timedelta(seconds=chain_resume.STALE_INTENT_SECONDS * 2)


@pytest.fixture
def rig(factory: sessionmaker[Session], svc_settings: CoordinatorSettings) -> ChainRig:
    """The chain backend over a fresh fake market, a funded developer and a staked provider."""
    return ChainRig.create(factory, svc_settings)


def resume(rig: ChainRig) -> int:
    return chain_resume.resume_intents(rig.factory, rig.backend, rig.settings)


def stale(rig: ChainRig, job_id: str) -> None:
    rig.age(job_id, utcnow() - LONG_AGO)


@pytest.mark.parametrize("sent", [False, True], ids=["died-before-sending", "answer-lost"])
def test_a_stale_order_is_sent_again_and_opens_its_escrow_once(rig: ChainRig, sent: bool) -> None:
    job_id = rig.submit()
    intent = rig.record_order(job_id)
    if sent:  # it reached the chain; the process died before it heard back
        rig.market.lose_answer("openJob")
        with pytest.raises(Unreachable):
            rig.backend.open(intent)
        assert rig.market.figures().outbox_pending == 1
    assert resume(rig) == 0  # a request this recent may still be in flight
    assert rig.job(job_id).state == "SUBMITTED"
    stale(rig, job_id)

    assert resume(rig) == 1

    job = rig.job(job_id)
    assert (job.state, job.chain_state) == ("QUEUED", "open")
    [tx] = rig.market.mined("openJob")
    assert rig.chain_steps(job_id)[-1].tx_hash == tx.hash
    assert rig.market.repeats == ([f"open:{rig.ref(job_id)}"] if sent else [])
    assert rig.market.figures().outbox_pending == 0
    assert rig.market.resumed == 2  # the outbox is confirmed first, every run

    assert resume(rig) == 0
    assert len(rig.market.mined("openJob")) == 1


@pytest.mark.parametrize("sent", [False, True], ids=["died-before-sending", "answer-lost"])
def test_a_stale_claim_is_sent_again_and_committed_once(rig: ChainRig, sent: bool) -> None:
    job_id = rig.running()
    report = rig.claim(job_id)
    if sent:
        rig.market.lose_answer("commitResult")
        with pytest.raises(Unreachable):
            rig.report(job_id, report)
    else:
        with session_scope(rig.factory) as session:
            job = lifecycle.load_job_for_update(session, job_id)
            rig.backend.claim_intent(session, job, report, rig.provider.address or "")
    assert rig.job(job_id).pending_result is not None
    stale(rig, job_id)

    assert resume(rig) == 1

    job = rig.job(job_id)
    assert (job.state, job.chain_state, job.amount_micros) == ("COMMITTED", "committed", AMOUNT)
    assert job.chain_window_end == rig.market.job(rig.ref(job_id)).window_end
    [tx] = rig.market.mined("commitResult")
    assert rig.chain_steps(job_id)[-1].tx_hash == tx.hash
    assert rig.market.repeats == ([f"commit:{rig.ref(job_id)}"] if sent else [])

    assert resume(rig) == 0
    assert len(rig.market.mined("commitResult")) == 1


def test_an_order_the_ledger_refuses_is_dropped(
    factory: sessionmaker[Session], svc_settings: CoordinatorSettings
) -> None:
    """The developer's deposit no longer covers the escrow: the order is forgotten (they may
    deposit and sign again) instead of being retried for ever."""
    rig = ChainRig.create(factory, svc_settings, deposit=USD)
    job_id = rig.submit()
    rig.record_order(job_id)
    stale(rig, job_id)

    assert resume(rig) == 1

    job = rig.job(job_id)
    assert (job.state, job.chain_state, job.order_signature) == (
        "SUBMITTED",
        "awaiting_order",
        None,
    )
    assert rig.market.job_state(rig.ref(job_id)) == CHAIN_NONE
    assert rig.market.calls == []  # refused before anything was sent
    assert resume(rig) == 0


def open_together(rig: ChainRig, intents: list[OrderIntent]) -> list[BaseException | None]:
    """Send the orders from concurrent requests, queued behind one gate: they go out as one
    ``openMany``. Each request's error (or None)."""
    errors: list[BaseException | None] = [None] * len(intents)

    def send(index: int, intent: OrderIntent) -> None:
        try:
            rig.backend.open(intent)
        except GpumarketError as exc:
            errors[index] = exc

    threads = [threading.Thread(target=send, args=(i, intent)) for i, intent in enumerate(intents)]
    with rig.market.opens.gate:
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while rig.market.opens.queued() < len(intents) and time.monotonic() < deadline:
            time.sleep(0.01)
    for thread in threads:
        thread.join(5)
    return errors


def test_orders_opened_in_a_batch_whose_answer_was_lost_are_left_to_the_follower(
    rig: ChainRig,
) -> None:
    """The resume loop's single open is refused (the batch opened the job), the ledger says the
    order landed, so it is kept, not dropped; the follower queues both jobs from the batch's
    events, each with its share of the gas."""
    jobs = [rig.submit(), rig.submit()]
    rig.market.lose_answer("openMany")
    errors = open_together(rig, [rig.record_order(job_id) for job_id in jobs])
    assert all(isinstance(e, Unreachable) for e in errors)
    [batch] = rig.market.mined("openMany")
    assert all(rig.market.job_state(rig.ref(j)) == CHAIN_OPEN for j in jobs)
    for job_id in jobs:
        stale(rig, job_id)

    assert resume(rig) == 2

    assert rig.market.mined("openJob") == []
    for job_id in jobs:
        job = rig.job(job_id)
        assert (job.chain_state, job.order_signature is not None) == ("awaiting_order", True)

    event_follower.follow_events(rig.factory, rig.backend, rig.settings)
    for job_id in jobs:
        job = rig.job(job_id)
        assert (job.state, job.chain_state) == ("QUEUED", "open")
        step = rig.chain_steps(job_id)[-1]
        assert (step.tx_hash, step.gas_used) == (batch.hash, batch.gas_used // 2)
    assert resume(rig) == 0
