"""A user's own transactions with the market, without a chain: what `wallet withdraw` takes
from where (a developer's dispute winnings sit in earnings, not the deposit), and the contract's
refusals said in the user's terms (a date, a state and why, how many tokens the wallet holds)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gpumarket.errors import ContractReverted, InvalidRequest, PaymentRequired
from gpumarket.settlement.refusals import refusal, when
from gpumarket.settlement.wallet import (
    Balances,
    MarketWallet,
    plan_withdrawal,
)


def _explain(function: str, error: str, args: tuple[object, ...]) -> Exception:
    """What a user's wallet says for the contract's revert (the one refusals table)."""
    return refusal(function, ContractReverted(error, args), wallet=True)


USD = 10**6


def test_everything_is_the_deposit_and_the_earnings() -> None:
    assert plan_withdrawal(0, 60 * USD, None) == (0, 60 * USD)
    assert plan_withdrawal(5 * USD, 60 * USD, None) == (5 * USD, 60 * USD)


def test_an_amount_comes_from_the_deposit_first_then_the_whole_earnings() -> None:
    assert plan_withdrawal(50 * USD, 60 * USD, 20 * USD) == (20 * USD, 0)
    assert plan_withdrawal(50 * USD, 60 * USD, 100 * USD) == (40 * USD, 60 * USD)
    assert plan_withdrawal(0, 60 * USD, 60 * USD) == (0, 60 * USD)


def test_what_cannot_be_withdrawn_says_what_there_is() -> None:
    with pytest.raises(PaymentRequired, match=r"nothing to withdraw: 0.000000 in deposit"):
        plan_withdrawal(0, 0, None)
    with pytest.raises(PaymentRequired, match=r"only 70.000000 is available .*10.000000 in dep"):
        plan_withdrawal(10 * USD, 60 * USD, 100 * USD)
    with pytest.raises(InvalidRequest, match=r"earnings out only whole .*at most 10.000000"):
        plan_withdrawal(10 * USD, 60 * USD, 30 * USD)


class FakeMarketWallet(MarketWallet):
    """A MarketWallet whose chain is a few numbers and a list of the calls it made."""

    def __init__(self, deposit: int, earnings: int) -> None:
        self.held = (deposit, earnings)
        self.calls: list[tuple[str, Any]] = []

    def balances(self) -> Balances:
        deposit, earnings = self.held
        return Balances("0xdev", 0, deposit, earnings, 0, 0, 0, 0)

    def _call(self, function: str, *args: Any) -> str:
        self.calls.append((function, args))
        return f"0x{len(self.calls)}"


def test_withdraw_all_takes_a_developers_dispute_winnings_too() -> None:
    wallet = FakeMarketWallet(deposit=0, earnings=60 * USD)
    done = wallet.withdraw_all()
    assert (done.deposit, done.earnings, done.total) == (0, 60 * USD, 60 * USD)
    assert wallet.calls == [("withdrawEarnings", ())]
    both = FakeMarketWallet(deposit=5 * USD, earnings=60 * USD)
    assert both.withdraw_all().tx_hashes == ["0x1", "0x2"]
    assert both.calls == [("withdrawEarnings", ()), ("withdraw", (5 * USD,))]


def test_a_deposit_beyond_the_wallets_tokens_says_how_many_it_holds() -> None:
    """The market is approved for everything after the first deposit, so the token's own
    revert (unknown to the market's ABI: "unknown error()") used to be the answer."""

    def call(value: int) -> Any:
        return SimpleNamespace(call=lambda: value)

    wallet = MarketWallet.__new__(MarketWallet)
    wallet.account = SimpleNamespace(address="0xdev")  # type: ignore[assignment]
    wallet.market = SimpleNamespace(address="0xmarket")  # type: ignore[assignment]
    wallet.token = SimpleNamespace(  # type: ignore[assignment]
        functions=SimpleNamespace(
            balanceOf=lambda who: call(3 * USD), allowance=lambda who, spender: call(2**255)
        )
    )
    with pytest.raises(PaymentRequired, match=r"cannot deposit 5.000000: .* holds only 3.000000"):
        wallet.deposit(5 * USD)


def test_an_early_stake_withdrawal_gives_a_date_and_the_wait() -> None:
    message = str(_explain("withdrawStake", "UnstakeNotReady", (2_000_000_000, 1_999_000_000)))
    assert "2000000000" not in message and "unix" not in message
    assert "2033-05-1" in message and "(in " in message and " d " in message
    assert when(1_000, now=1_000 + 90_000 + 3_660).startswith("1970-01-01")
    assert when(1_000 + 90_000 + 3_660, now=1_000).endswith("(in 1 d 2 h)")


def test_challenging_a_refunded_job_names_its_state_and_why() -> None:
    message = str(_explain("challenge", "WrongState", (b"\x01" * 32, 5)))
    assert "not in a state" not in message
    assert "Refunded on the chain" in message and "refunded" in message.split("(")[1]
    assert "only a Committed result can be challenged" in message


def test_a_revert_found_on_chain_without_its_figures_still_says_what_to_fix() -> None:
    """A transaction mined and reverted carries only the error's name: the refusal is still
    the one the table gives, in words, never an unpacking error (a 500)."""
    unfunded = refusal("openJob", ContractReverted("InsufficientBalance"))
    assert isinstance(unfunded, PaymentRequired) and "deposit more" in str(unfunded)
    short = refusal("commitResult", ContractReverted("StakeTooLow"))
    assert isinstance(short, PaymentRequired) and "provider stake" in str(short)
    expired = refusal("openJob", ContractReverted("OrderExpired"))
    assert isinstance(expired, ContractReverted)  # no words for it without its figures
    assert "would revert: WindowOpen" in str(_explain("finalize", "WindowOpen", ()))
