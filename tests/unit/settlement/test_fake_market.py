"""The in-memory market the coordinator's unit tests run against (``tests/fakes/market.py``)
keeps :class:`MarketClient`'s interface and the contract's rules that those tests rely on: the
same signatures, a repeat answered from the outbox, wrong-state calls reverted, batches all or
nothing, events in block order, a lost answer that still reached the chain."""

from __future__ import annotations

import inspect
import threading
import time
from dataclasses import replace

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from gpumarket.errors import (
    ConfigurationError,
    Conflict,
    ContractReverted,
    InvalidRequest,
    PaymentRequired,
    ServiceUnavailable,
    Unreachable,
)
from gpumarket.protocol import PaymentRequest
from gpumarket.settlement.market_client import (
    CHAIN_COMMITTED,
    CHAIN_DISPUTED,
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


@pytest.fixture
def scaled() -> FakeMarket:
    """Terms as deployed by default: a result locks max(1 token, 20 x its amount); a verifier
    may add up to two days to a window, once."""
    return FakeMarket(window=600, min_stake=1_000_000, stake_multiple=20, verify_window=172_800)


def test_a_result_locks_the_floor_or_the_multiple_and_a_settlement_releases_it(
    scaled: FakeMarket, developer: LocalAccount
) -> None:
    wallet: LocalAccount = Account.create()
    scaled.deposit(developer.address, 100_000_000)
    scaled.stake(wallet.address, 200_000_000)
    small, large = opened(scaled, developer, "small"), opened(scaled, developer, "large")
    commit(scaled, wallet, small, 40_000)  # 20 x 0.04 = 0.8 < the 1-token floor
    assert scaled.free_stake(wallet.address) == 199_000_000
    commit(scaled, wallet, large, 5_000_000)  # 20 x 5 = 100
    assert scaled.free_stake(wallet.address) == 99_000_000
    assert scaled.info().stake_multiple == 20
    assert scaled.info().verify_window_seconds == 172_800
    scaled.advance(600)
    scaled.finalize_one(large)
    assert scaled.free_stake(wallet.address) == 199_000_000  # exactly its 100 released
    scaled.finalize_many([small])
    assert scaled.balance(wallet.address).locked == 0


def test_stake_too_low_names_the_scaled_need_and_a_ruling_slashes_it(
    scaled: FakeMarket, developer: LocalAccount
) -> None:
    wallet: LocalAccount = Account.create()
    scaled.deposit(developer.address, 100_000_000)
    scaled.stake(wallet.address, 100_000_000)
    ref = opened(scaled, developer, "job-1")
    with pytest.raises(PaymentRequired, match=r"under the 120\.000000 this result must lock"):
        commit(scaled, wallet, ref, 6_000_000)  # 20 x 6 = 120 > 100
    assert scaled.job_state(ref) == CHAIN_OPEN
    commit(scaled, wallet, ref, 4_000_000)  # 80
    scaled.challenge_by(developer.address, ref)
    scaled.resolve(ref, True)
    account = scaled.balance(wallet.address)
    assert (account.stake, account.locked) == (20_000_000, 0)  # 80 slashed
    [resolved] = scaled.events_named("Resolved", ref)
    assert resolved.args["slashed"] == 80_000_000
    assert scaled.balance(developer.address).earnings == 40_000_000 + 500_000  # half, and bond


def test_a_job_keeps_the_multiple_of_the_terms_it_was_opened_under(
    scaled: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    scaled.deposit(developer.address, 100_000_000)
    scaled.stake(provider.address, 100_000_000)
    ref = opened(scaled, developer, "job-1")
    scaled.set_terms(replace(scaled.current_terms, stake_multiple=2))
    commit(scaled, provider, ref, 3_000_000)
    assert scaled.balance(provider.address).locked == 60_000_000  # 20 x, not 2 x
    with pytest.raises(ContractReverted, match="BadTerms"):
        scaled.set_terms(replace(scaled.current_terms, min_stake=1 << 40))


def test_a_verifier_extends_an_open_window_once_and_finalize_waits_for_it(
    scaled: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    scaled.deposit(developer.address, 100_000_000)
    scaled.stake(provider.address, 100_000_000)
    ref = opened(scaled, developer, "job-1")
    with pytest.raises(InvalidRequest, match="only a Committed result's challenge window"):
        scaled.extend_window(ref, 60)
    commit(scaled, provider, ref)
    end = scaled.job(ref).window_end
    with pytest.raises(InvalidRequest, match="more than the 172800 s"):
        scaled.extend_window(ref, 172_801)
    with pytest.raises(InvalidRequest, match="at least one second"):
        scaled.extend_window(ref, 0)
    outcome = scaled.extend_window(ref, 3600)
    assert outcome.event("WindowExtended")["windowEnd"] == end + 3600
    again = scaled.extend_window(ref, 60)  # a retried send: the outbox answers the first
    assert again.sent == outcome.sent and scaled.job(ref).window_end == end + 3600
    other: LocalAccount = Account.create()
    scaled.verifiers.add(other.address)
    with pytest.raises(ContractReverted, match="AlreadyExtended"):
        scaled.extend_by(other.address, ref, 60)  # once per job, whoever asks
    scaled.advance(600)  # past the old end
    with pytest.raises(ContractReverted, match="WindowOpen"):
        scaled.finalize_one(ref)
    scaled.challenge_by(scaled.account.address, ref)  # the verifier, inside the extension
    assert scaled.job_state(ref) == CHAIN_DISPUTED

    late = opened(scaled, developer, "job-2")
    commit(scaled, provider, late)
    scaled.advance(600)
    with pytest.raises(Conflict, match="window closed"):
        scaled.extend_window(late, 60)
    stranger: LocalAccount = Account.create()
    with pytest.raises(ContractReverted, match="AccessControlUnauthorizedAccount"):
        scaled.extend_by(stranger.address, late, 60)


def test_terms_without_a_verify_window_allow_no_extension(
    market: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    ref = opened(market, developer, "job-1")
    commit(market, provider, ref)
    with pytest.raises(InvalidRequest, match="allow no extension"):
        market.extend_window(ref, 1)


# ---------------------------------------------------------------- verification by re-execution


@pytest.fixture
def sampled() -> FakeMarket:
    """A market whose sampled jobs pay a 10% premium into the verification pool, seeded with
    10 tokens as a dev deployment seeds it."""
    return FakeMarket(window=600, premium_bps=1000, verify_window=172_800, pool=10_000_000)


def opened_verified(market: FakeMarket, wallet: LocalAccount, name: str) -> str:
    request, signature = order(market, wallet, name)
    market.open_verified(request, signature)
    return request.chain_job_id


def rerun_claim(
    market: FakeMarket, wallet: LocalAccount, ref: str, amount: int = AMOUNT
) -> tuple[bytes, str]:
    """A re-runner's signed claim for the job, as its daemon sends it (0x-hex, 65 bytes)."""
    result = result_hash(0, b"\x07" * 32)
    signature = sign_result(
        wallet,
        bytes.fromhex(ref[2:]),
        result,
        amount,
        market.deployment.chain_id,
        market.deployment.market,
    )
    return result, "0x" + signature.hex()


def test_a_sampled_job_pays_the_premium_into_the_pool_when_it_settles(
    sampled: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    sampled.deposit(developer.address, 100_000_000)
    sampled.stake(provider.address, 5_000_000)
    assert sampled.info().premium_bps == 1000
    one = opened_verified(sampled, developer, "one")
    plain = opened(sampled, developer, "plain")
    many = opened_verified(sampled, developer, "many")
    ruled = opened_verified(sampled, developer, "ruled")
    assert sampled.job(one).verified and not sampled.job(plain).verified
    assert sampled.sent("openVerified") == [f"open:{one}", f"open:{many}", f"open:{ruled}"]
    for ref in (one, plain, many, ruled):
        commit(sampled, provider, ref)
    sampled.challenge_by(developer.address, ruled)
    sampled.resolve(ruled, False)  # for the provider: it settles, premium and all
    sampled.advance(600)
    outcome = sampled.finalize_one(one)
    assert outcome.event("PremiumPaid")["premium"] == 100_000  # 10% of the 1-token amount
    assert outcome.event("Settled")["refund"] == ESCROW - AMOUNT - 100_000
    batch = sampled.finalize_many([plain, many])
    assert [e["premium"] for e in batch.events["PremiumPaid"]] == [100_000]  # plain: none
    assert sampled.verification_pool() == sampled.market.verification_pool() == 10_300_000
    # 4 jobs of 1 token each, 3 premiums of 0.1; the rest came back
    assert sampled.balance(developer.address).deposit == 100_000_000 - 4 * AMOUNT - 300_000


def test_the_premium_is_capped_and_a_provider_at_fault_pays_none(
    sampled: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    sampled.deposit(developer.address, 100_000_000)
    sampled.stake(provider.address, 5_000_000)
    full = opened_verified(sampled, developer, "full")
    commit(sampled, provider, full, ESCROW)  # nothing beyond the amount: no premium
    caught = opened_verified(sampled, developer, "caught")
    commit(sampled, provider, caught)
    sampled.advance(600)
    assert sampled.finalize_one(full).event("PremiumPaid")["premium"] == 0
    late = opened_verified(sampled, developer, "late")
    commit(sampled, provider, late)
    outcome = sampled.verifier_challenge(late)
    assert outcome.event("Challenged")["bond"] == 0  # a verifier's: no bond
    assert sampled.sent("challenge") == [f"vchallenge:{late}"]
    before = sampled.balance(developer.address).deposit
    sampled.resolve(late, True)
    assert sampled.balance(developer.address).deposit == before + ESCROW  # all of it back
    # half the floor slashed goes to the pool, not to the verifier (which has no account)
    assert sampled.verification_pool() == 10_000_000 + 500_000
    assert sampled.balance(sampled.account.address).account_id == 0
    assert sampled.verifier_challenge(late).sent == outcome.sent  # a resend: the outbox
    waiting = opened_verified(sampled, developer, "waiting")
    with pytest.raises(InvalidRequest, match="only a Committed result can be challenged"):
        sampled.verifier_challenge(waiting)
    with pytest.raises(Conflict, match="too late to challenge"):
        sampled.verifier_challenge(caught)  # its window has closed


def test_pay_rerun_pays_a_signed_claim_once_from_the_pool(
    sampled: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    sampled.deposit(developer.address, 100_000_000)
    sampled.stake(provider.address, 5_000_000)
    runner: LocalAccount = Account.create()
    sampled.stake(runner.address, 1_000_000)
    ref = opened_verified(sampled, developer, "job-1")
    result, signature = rerun_claim(sampled, runner, ref)
    with pytest.raises(InvalidRequest, match="only for a job whose result was committed"):
        sampled.pay_rerun(ref, "run-1", result, AMOUNT, signature)
    commit(sampled, provider, ref)

    outcome = sampled.pay_rerun(ref, "run-1", result, AMOUNT, signature)

    paid = outcome.event("RerunPaid")
    assert (paid["runner"], paid["resultHash"], paid["amount"]) == (
        runner.address,
        result,
        AMOUNT,
    )
    assert sampled.balance(runner.address).earnings == AMOUNT
    assert sampled.verification_pool() == 10_000_000 - AMOUNT
    again = sampled.pay_rerun(ref, "run-1", result, AMOUNT, signature)  # a resend: the outbox
    assert again.sent == outcome.sent and sampled.repeats == ["payrerun:run-1"]
    with pytest.raises(Conflict, match="already paid"):
        sampled.pay_rerun(ref, "run-1-again", result, AMOUNT, signature)
    assert sampled.balance(runner.address).earnings == AMOUNT  # once


def test_pay_rerun_refusals_say_why(
    sampled: FakeMarket, developer: LocalAccount, provider: LocalAccount
) -> None:
    sampled.deposit(developer.address, 100_000_000)
    sampled.stake(provider.address, 5_000_000)
    runner: LocalAccount = Account.create()
    sampled.stake(runner.address, 1_000_000)
    ref = opened_verified(sampled, developer, "job-1")
    commit(sampled, provider, ref)
    result, own = rerun_claim(sampled, provider, ref)
    with pytest.raises(InvalidRequest, match="the job's own provider"):
        sampled.pay_rerun(ref, "own", result, AMOUNT, own)
    stranger: LocalAccount = Account.create()
    result, unknown = rerun_claim(sampled, stranger, ref)
    with pytest.raises(InvalidRequest, match="has no account in the market"):
        sampled.pay_rerun(ref, "stranger", result, AMOUNT, unknown)
    result, over = rerun_claim(sampled, runner, ref, ESCROW + 1)
    with pytest.raises(InvalidRequest, match=r"over the job's maximum payment of 6\.000000"):
        sampled.pay_rerun(ref, "over", result, ESCROW + 1, over)
    result, costly = rerun_claim(sampled, runner, ref, ESCROW)
    sampled.state.pool = ESCROW - 1
    with pytest.raises(ServiceUnavailable, match=r"the verification pool holds 5\.999999"):
        sampled.pay_rerun(ref, "short", result, ESCROW, costly)
    assert sampled.sent("payRerun") == []  # every refusal sent nothing
    sampled.fund_pool(developer.address, 1)
    sampled.pay_rerun(ref, "short", result, ESCROW, costly)  # paid once the pool holds it
    assert sampled.verification_pool() == 0
    with pytest.raises(ContractReverted, match="ZeroAmount"):
        sampled.fund_pool(developer.address, 0)
    [funded] = sampled.events_named("PoolFunded")
    assert funded.args == {"from": developer.address, "amount": 1}
    sampled.verifiers.discard(sampled.account.address)
    with pytest.raises(ConfigurationError, match="grantRole\\(VERIFIER_ROLE"):
        sampled.pay_rerun(ref, "no-role", result, 1, rerun_claim(sampled, runner, ref, 1)[1])


def test_a_sampled_open_shares_the_plain_opens_outbox_key(
    sampled: FakeMarket, developer: LocalAccount
) -> None:
    """A crash-resend of an order finds the first send, whichever of the two sent it."""
    sampled.deposit(developer.address, 100_000_000)
    request, signature = order(sampled, developer, "job-1")
    first = sampled.open_verified(request, signature)
    again = sampled.open(request, signature)
    assert again.sent == first.sent
    assert sampled.repeats == [f"open:{request.chain_job_id}"]
    assert len(sampled.mined("openVerified")) == 1 and sampled.mined("openJob") == []
    other, other_signature = order(sampled, developer, "job-2")
    sampled.open(other, other_signature)
    with pytest.raises(Conflict, match="already opened"):
        sampled._outbox.clear()
        sampled.open_verified(other, other_signature)


def test_terms_refuse_a_premium_over_100_percent_and_a_verify_window_over_24_bits(
    sampled: FakeMarket,
) -> None:
    with pytest.raises(ContractReverted, match="BadTerms"):
        sampled.set_terms(replace(sampled.current_terms, premium_bps=10_001))
    with pytest.raises(ContractReverted, match="BadTerms"):
        sampled.set_terms(replace(sampled.current_terms, verify_window=1 << 24))
    sampled.set_terms(
        replace(sampled.current_terms, premium_bps=10_000, verify_window=(1 << 24) - 1)
    )
    assert sampled.info().premium_bps == 10_000
