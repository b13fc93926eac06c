"""The in-memory market the coordinator's unit tests run against (``tests/fakes/market.py``)
keeps :class:`MarketClient`'s interface and the contract's rules that those tests rely on: the
same signatures, a repeat answered from the outbox, wrong-state calls reverted, batches all or
nothing, events in block order, a lost answer that still reached the chain."""

from __future__ import annotations

import inspect
import threading
import time

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from gpumarket.errors import Conflict, ContractReverted, PaymentRequired, Unreachable
from gpumarket.protocol import PaymentRequest
from gpumarket.settlement.market_client import (
    CHAIN_COMMITTED,
    CHAIN_NONE,
    CHAIN_OPEN,
    CHAIN_SETTLED,
    MarketClient,
)
from gpumarket.settlement.signing import (
    Order,
    job_id_bytes,
    result_hash,
    sign_order,
    sign_result,
)
from tests.fakes.market import FakeMarket

ESCROW = 6_000_000
AMOUNT = 1_000_000
RESULT = result_hash(0, None)


@pytest.fixture
def market() -> FakeMarket:
    return FakeMarket(window=600, fee_bps=250, burn_bps=2000)


@pytest.fixture
def developer(market: FakeMarket) -> LocalAccount:
    account: LocalAccount = Account.create()
    market.deposit(account.address, 100_000_000)
    return account


@pytest.fixture
def provider(market: FakeMarket) -> LocalAccount:
    account: LocalAccount = Account.create()
    market.stake(account.address, 5_000_000)
    return account


def order(market: FakeMarket, wallet: LocalAccount, name: str) -> tuple[PaymentRequest, str]:
    request = PaymentRequest(
        chain_id=market.deployment.chain_id,
        market=market.deployment.market,
        chain_job_id="0x" + job_id_bytes(name).hex(),
        spec_hash="0x" + "ab" * 32,
        max_payment_micros=ESCROW,
        deadline=market.now + 3600,
        nonce=1,
    )
    signature = sign_order(wallet, Order.from_request(request), request.chain_id, request.market)
    return request, "0x" + signature.hex()


def commit(market: FakeMarket, wallet: LocalAccount, ref: str, amount: int = AMOUNT) -> None:
    signature = sign_result(
        wallet,
        bytes.fromhex(ref[2:]),
        RESULT,
        amount,
        market.deployment.chain_id,
        market.deployment.market,
    )
    market.commit(ref, RESULT, amount, "0x" + signature.hex())


def opened(market: FakeMarket, wallet: LocalAccount, name: str) -> str:
    request, signature = order(market, wallet, name)
    market.open(request, signature)
    return request.chain_job_id


def client_methods() -> list[str]:
    public = [
        name
        for name, member in inspect.getmembers(MarketClient, inspect.isfunction)
        if not name.startswith("_")
    ]
    return [*public, "_open_one", "_open_many", "_commit_one", "_commit_many"]


@pytest.mark.parametrize("name", client_methods())
def test_every_client_method_has_the_same_signature(name: str) -> None:
    assert hasattr(FakeMarket, name), f"FakeMarket lacks MarketClient.{name}"
    fake = inspect.signature(getattr(FakeMarket, name))
    real = inspect.signature(getattr(MarketClient, name))
    assert str(fake) == str(real)


def test_the_client_attributes_the_backend_reads_are_there(market: FakeMarket) -> None:
    assert market.deployment.market == market.market.address
    assert market.market.terms().window == 600
    assert market.opens.batch_size == market.commits.batch_size == 50
    assert market.info().market == market.deployment.market


def test_a_repeated_send_returns_the_first_outcome_without_a_second_transaction(
    market: FakeMarket, developer: LocalAccount
) -> None:
    request, signature = order(market, developer, "job-1")
    first = market.open(request, signature)
    again = market.open(request, signature)
    assert again.sent == first.sent and again.events == first.events
    assert len(market.mined("openJob")) == 1
    assert market.repeats == [f"open:{request.chain_job_id}"]
    assert market.balance(developer.address).deposit == 100_000_000 - ESCROW
    event = first.event("JobOpened")
    assert (bytes(event["jobId"]), event["maxPayment"]) == (
        bytes.fromhex(request.chain_job_id[2:]),
        ESCROW,
    )


def test_a_call_in_the_wrong_state_reverts_with_wrong_state(
    market: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    ref = opened(market, developer, "job-1")
    with pytest.raises(ContractReverted) as refused:
        market.finalize_one(ref)  # open, not committed
    assert refused.value.error == "WrongState"
    commit(market, provider, ref)
    with pytest.raises(ContractReverted, match="WrongState"):
        market.cancel(ref)  # a result is committed: no cancel
    never = "0x" + job_id_bytes("never-opened").hex()
    assert market.job_state(never) == CHAIN_NONE
    with pytest.raises(ContractReverted, match="WrongState"):
        market.resolve(never, True)
    assert market.sent("cancel") == market.sent("finalize") == []


def test_an_order_already_opened_is_refused_as_the_client_refuses_it(
    market: FakeMarket, developer: LocalAccount
) -> None:
    """A single open is refused with the client's caller-facing error, not the raw revert."""
    ref = opened(market, developer, "job-1")
    request, signature = order(market, developer, "job-1")
    market._outbox.clear()  # as if the first open went out in a batch under another key
    with pytest.raises(Conflict, match="already opened"):
        market.open(request, signature)
    assert market.job_state(ref) == CHAIN_OPEN


def test_the_window_runs_on_the_chain_clock_and_the_payout_splits_the_fee(
    market: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    due, later = opened(market, developer, "due"), opened(market, developer, "later")
    commit(market, provider, due)
    with pytest.raises(ContractReverted, match="WindowOpen"):
        market.finalize_one(due)
    market.advance(600)
    commit(market, provider, later)
    assert market.free_stake(provider.address) == 5_000_000 - 2 * 1_000_000

    outcome = market.finalize_many([due, later])

    assert (market.job_state(due), market.job_state(later)) == (CHAIN_SETTLED, CHAIN_COMMITTED)
    [settled] = outcome.events["Settled"]
    fee = AMOUNT * 250 // 10_000
    assert (settled["providerPaid"], settled["fee"], settled["burned"], settled["refund"]) == (
        AMOUNT - fee,
        fee,
        fee * 2000 // 10_000,
        ESCROW - AMOUNT,
    )
    assert outcome.gas_share == outcome.sent.gas_used  # it paid one job
    assert market.balance(provider.address).earnings == AMOUNT - fee
    assert market.free_stake(provider.address) == 4_000_000  # the settled job's lock is freed


def test_events_come_in_block_order_and_the_cursor_resumes_where_it_stopped(
    market: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    ref = opened(market, developer, "job-1")
    commit(market, provider, ref)
    everything, head = market.events(market.deployment.block, 1000)
    assert [e.name for e in everything] == ["Deposited", "Staked", "JobOpened", "ResultCommitted"]
    blocks = [e.block for e in everything]
    assert blocks == sorted(blocks) and len(set(blocks)) == len(blocks)
    assert head == market.block + 1
    assert market.mined_at(everything[-1].tx_hash) == (market.block, 88_000)
    assert market.mined_at("0x" + "00" * 32) == (None, None)

    first, cursor = market.events(market.deployment.block, 2)
    assert [e.name for e in first] == ["Deposited"]  # the deployment block had none
    rest, cursor = market.events(cursor, 1000)
    assert [e.name for e in first + rest] == [e.name for e in everything]
    assert market.events(cursor, 1000) == ([], cursor)


def test_a_batch_is_all_or_nothing_and_a_refused_one_goes_out_item_by_item(
    market: FakeMarket, developer: LocalAccount
) -> None:
    """Two orders queued meanwhile go out as one ``openMany``; one the contract refuses (a
    signer with no deposit) reverts the batch, then each order gets its own answer."""
    broke: LocalAccount = Account.create()
    good, bad = order(market, developer, "good"), order(market, broke, "bad")
    answers: dict[str, object] = {}

    def send(name: str, request: PaymentRequest, signature: str) -> None:
        try:
            answers[name] = market.open(request, signature)
        except Exception as exc:
            answers[name] = exc

    threads = [
        threading.Thread(target=send, args=("good", *good)),
        threading.Thread(target=send, args=("bad", *bad)),
    ]
    with market.opens.gate:
        for thread in threads:
            thread.start()
        while market.opens.queued() < 2:
            time.sleep(0.01)
    for thread in threads:
        thread.join(5)

    assert market.mined("openMany") == []  # reverted: nothing mined
    assert isinstance(answers["bad"], PaymentRequired)
    assert market.job_state(good[0].chain_job_id) == CHAIN_OPEN
    assert market.job_state(bad[0].chain_job_id) == CHAIN_NONE
    assert market.balance(developer.address).deposit == 100_000_000 - ESCROW


def test_a_lost_answer_reached_the_chain_and_a_repeat_hears_it(
    market: FakeMarket, developer: LocalAccount
) -> None:
    request, signature = order(market, developer, "job-1")
    market.lose_answer("openJob")
    with pytest.raises(Unreachable):
        market.open(request, signature)
    assert market.job_state(request.chain_job_id) == CHAIN_OPEN
    assert market.figures().outbox_pending == 1

    outcome = market.open(request, signature)

    assert outcome.sent.hash == market.mined("openJob")[0].hash
    assert market.figures().outbox_pending == 0
    assert len(market.events_named("JobOpened")) == 1
