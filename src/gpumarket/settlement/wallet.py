"""A person's own transactions with the market: deposits and withdrawals (developers), stakes
and earnings (providers), challenges. Each is signed by the user's wallet and sent straight to
the chain; the coordinator never holds a user's key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from gpumarket.errors import InvalidRequest, PaymentRequired, Unreachable
from gpumarket.protocol import ChainInfo, from_micros
from gpumarket.settlement.contracts import Market, token_contract
from gpumarket.settlement.deploy import send_signed
from gpumarket.settlement.refusals import refusal


@dataclass(frozen=True)
class Balances:
    """Where a wallet's money is, in micro-units."""

    address: str
    wallet: int
    deposit: int
    earnings: int
    stake: int
    locked_stake: int
    unstaking: int
    unstake_ready_at: int

    def as_dict(self) -> dict[str, Any]:
        """Token amounts as decimal strings, for ``--json``."""
        return {
            "address": self.address,
            **{
                name: str(from_micros(getattr(self, name)))
                for name in ("wallet", "deposit", "earnings", "stake", "locked_stake", "unstaking")
            },
            "unstake_ready_at": self.unstake_ready_at,
        }


@dataclass(frozen=True)
class Withdrawal:
    """What one ``wallet withdraw`` took back to the wallet, in micro-units, and the
    transactions that did it (one per source: the deposit, the earnings)."""

    deposit: int = 0
    earnings: int = 0
    tx_hashes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Everything that came back to the wallet."""
        return self.deposit + self.earnings


def plan_withdrawal(deposit: int, earnings: int, wanted: int | None) -> tuple[int, int]:
    """How much of ``wanted`` (None: everything) comes from the free deposit and how much from
    the earnings, as (from deposit, from earnings). The deposit is drawn first; the contract
    pays earnings (a provider's pay, a won dispute) only whole, so they are drawn when the
    deposit alone is short, and the rest then comes from the deposit."""
    available = deposit + earnings
    shown = f"{from_micros(deposit)} in deposit and {from_micros(earnings)} in earnings"
    if wanted is None:
        if available == 0:
            raise PaymentRequired(
                f"nothing to withdraw: {shown} (escrow held by running jobs and stake are not "
                "withdrawn here)"
            )
        return deposit, earnings
    if wanted <= deposit:
        return wanted, 0
    if wanted > available:
        raise PaymentRequired(
            f"only {from_micros(available)} is available to withdraw ({shown}), "
            f"{from_micros(wanted)} asked"
        )
    if earnings > wanted:
        raise InvalidRequest(
            f"the market pays earnings out only whole ({from_micros(earnings)}) and the "
            f"deposit holds {from_micros(deposit)}: withdraw at most {from_micros(deposit)}, "
            f"or everything with `gpumarket wallet withdraw` (no amount)"
        )
    return wanted - earnings, earnings


class MarketWallet:
    """One wallet's view of, and transactions with, one market."""

    def __init__(self, chain: ChainInfo, account: LocalAccount, rpc_url: str | None = None) -> None:
        self.chain = chain
        self.account = account
        self.w3 = Web3(HTTPProvider(rpc_url or chain.rpc_url, request_kwargs={"timeout": 30}))
        self.market = Market(self.w3, chain.market)
        self.token: Contract = token_contract(self.w3, chain.token)

    def balances(self) -> Balances:
        """The wallet's token balance and its accounts in the market."""
        try:
            held = int(self.token.functions.balanceOf(self.account.address).call())
            account_id = self.market.account_id(self.account.address)
            money = self.market.balances(account_id) if account_id else None
            pending = self.market.unstaking(account_id) if account_id else None
        except (OSError, ConnectionError) as exc:
            raise Unreachable(f"cannot reach the chain at {self.chain.rpc_url}: {exc}") from exc
        return Balances(
            self.account.address,
            held,
            money.deposit if money else 0,
            money.earnings if money else 0,
            money.stake if money else 0,
            money.locked_stake if money else 0,
            pending.amount if pending else 0,
            pending.ready_at if pending else 0,
        )

    def deposit(self, micros: int) -> str:
        """Move tokens from the wallet into the market deposit that funds jobs."""
        self._approve(micros, "deposit")
        return self._call("deposit", micros)

    def withdraw(self, micros: int) -> str:
        """Take free deposit back to the wallet."""
        return self._call("withdraw", micros)

    def withdraw_all(self, micros: int | None = None) -> Withdrawal:
        """Take ``micros`` (None: everything) of what the wallet owns in the market back to
        it: free deposit and earnings (a developer's won dispute lands in earnings, as a
        provider's pay does), so one command empties both. See :func:`plan_withdrawal`."""
        balances = self.balances()
        from_deposit, from_earnings = plan_withdrawal(balances.deposit, balances.earnings, micros)
        hashes = []
        if from_earnings:
            hashes.append(self.withdraw_earnings())
        if from_deposit:
            hashes.append(self.withdraw(from_deposit))
        return Withdrawal(from_deposit, from_earnings, hashes)

    def stake(self, micros: int) -> str:
        """Stake as a provider (each committed result locks the market's minimum)."""
        self._approve(micros, "stake")
        return self._call("stake", micros)

    def request_unstake(self, micros: int) -> str:
        """Start the unstake delay for unlocked stake."""
        return self._call("requestUnstake", micros)

    def withdraw_stake(self) -> str:
        """Take stake whose delay has passed back to the wallet."""
        return self._call("withdrawStake")

    def withdraw_earnings(self) -> str:
        """Take a provider's (or challenger's) earnings to the wallet."""
        return self._call("withdrawEarnings")

    def challenge(self, chain_job_id: str) -> str:
        """Dispute a committed result inside its window; the market takes the bond."""
        if self.chain.challenge_bond_micros:
            self._approve(self.chain.challenge_bond_micros, "pay the challenge bond of")
        return self._call("challenge", bytes.fromhex(chain_job_id[2:]))

    def mint_test_tokens(self, micros: int) -> str:
        """Dev chains only: mint the test stablecoin to this wallet."""
        tx = self.token.functions.mint(self.account.address, micros).build_transaction(
            {"from": self.account.address}
        )
        return self._send(dict(tx))

    def _approve(self, micros: int, purpose: str) -> None:
        """Check that the wallet holds ``micros`` tokens (the token's own revert, an error the
        market's ABI does not know, would read "unknown error"), then let the market take
        them."""
        held = int(self.token.functions.balanceOf(self.account.address).call())
        if held < micros:
            raise PaymentRequired(
                f"cannot {purpose} {from_micros(micros)}: the wallet {self.account.address} "
                f"holds only {from_micros(held)} tokens"
            )
        allowance = int(
            self.token.functions.allowance(self.account.address, self.market.address).call()
        )
        if allowance >= micros:
            return
        tx = self.token.functions.approve(self.market.address, 2**256 - 1).build_transaction(
            {"from": self.account.address}
        )
        self._send(dict(tx))

    def _call(self, function: str, *args: Any) -> str:
        data = self.market.calldata(function, *args)
        try:
            self.w3.eth.call(
                {"from": self.account.address, "to": self.market.address, "data": HexStr(data)}
            )
        except (ContractCustomError, ContractLogicError) as exc:
            raised = self.market.errors.decode(getattr(exc, "data", None))
            raise refusal(function, raised, wallet=True) from exc
        return self._send({"to": self.market.address, "data": data})

    def _send(self, tx: dict[str, Any]) -> str:
        probe: Any = {**tx, "from": self.account.address}
        tx.setdefault("gas", int(self.w3.eth.estimate_gas(probe) * 1.3))
        receipt = send_signed(self.w3, self.account, tx)
        return "0x" + bytes(receipt["transactionHash"]).hex()
