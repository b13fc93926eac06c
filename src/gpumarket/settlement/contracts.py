"""Typed access to the deployed contracts: calldata, views, events and named revert errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import (
    abi_to_signature,
    event_abi_to_log_topic,
    function_signature_to_4byte_selector,
    get_abi_input_types,
)
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError

from gpumarket.errors import ContractReverted
from gpumarket.settlement.artifacts import load_artifact


def event_topics(abi: list[dict[str, Any]]) -> dict[bytes, str]:
    """The topic of each event in ``abi`` (eth-utils computes it from the ABI), by topic."""
    return {
        bytes(event_abi_to_log_topic(item)): item["name"]  # type: ignore[arg-type]
        for item in abi
        if item["type"] == "event"
    }


class ErrorDecoder:
    """Maps a revert's 4-byte selector back to the contract's custom error and its arguments."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self.errors: dict[bytes, dict[str, Any]] = {}
        for item in abi:
            if item["type"] == "error":
                signature = abi_to_signature(item)  # type: ignore[arg-type]
                self.errors[bytes(function_signature_to_4byte_selector(signature))] = item

    def decode(self, data: str | bytes | None) -> ContractReverted:
        """The typed error for revert data (``0x...``)."""
        raw = data if isinstance(data, bytes) else bytes.fromhex((data or "0x")[2:])
        item = self.errors.get(raw[:4])
        if item is None:
            return ContractReverted("", (), raw="0x" + raw.hex())
        values = abi_decode(get_abi_input_types(item), raw[4:])  # type: ignore[arg-type]
        return ContractReverted(item["name"], tuple(values), raw="0x" + raw.hex())


@dataclass(frozen=True)
class Deployment:
    """Where the contracts live on a chain (written by ``gpumarket chain deploy``)."""

    chain_id: int
    token: str
    market: str
    block: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the deployment file."""
        return {
            "chain_id": self.chain_id,
            "token": self.token,
            "market": self.market,
            "block": self.block,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        """Read a deployment file's JSON."""
        return cls(
            int(data["chain_id"]),
            Web3.to_checksum_address(data["token"]),
            Web3.to_checksum_address(data["market"]),
            int(data["block"]),
        )


@dataclass(frozen=True)
class OnchainJob:
    """A job as the contract stores it (``jobs(id)``)."""

    developer: int
    provider: int
    max_payment: int
    amount: int
    deadline: int
    terms_index: int
    state: int


@dataclass(frozen=True)
class Terms:
    """The market's current terms (``currentTerms()``): what a job opened now gets. A result
    locks ``max(min_stake, amount * stake_multiple)`` of its provider's stake (what a lost
    challenge slashes); a verifier may extend a job's window once by up to ``verify_window``
    seconds (at most 2**24 - 1: the contract stores it in 24 bits); a verified (sampled) job's
    developer pays ``premium_bps`` of the amount into the verification pool when it settles
    (never more than the escrow holds beyond the amount)."""

    fee_bps: int
    burn_bps: int
    slash_share_bps: int
    window: int
    min_stake: int
    challenge_bond: int
    stake_multiple: int = 0
    verify_window: int = 0
    premium_bps: int = 0

    def as_tuple(self) -> tuple[int, ...]:
        """The contract's ``Terms`` tuple (``setTerms``, the constructor)."""
        return (
            self.fee_bps,
            self.burn_bps,
            self.slash_share_bps,
            self.window,
            self.min_stake,
            self.challenge_bond,
            self.stake_multiple,
            self.verify_window,
            self.premium_bps,
        )


@dataclass(frozen=True)
class Balances:
    """One account's money in the market (``balances(accountId)``)."""

    deposit: int
    earnings: int
    stake: int
    locked_stake: int


@dataclass(frozen=True)
class Unstaking:
    """Stake on its way out of the market (``unstaking(accountId)``)."""

    amount: int
    ready_at: int


class Market:
    """The GpuMarket contract at an address."""

    def __init__(self, w3: Web3, address: str) -> None:
        self.w3 = w3
        self.abi = load_artifact("GpuMarket")["abi"]
        self.contract: Contract = w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=self.abi
        )
        self.errors = ErrorDecoder(self.abi)
        self.address = self.contract.address

    def calldata(self, function: str, *args: Any) -> str:
        """ABI-encoded call of ``function``."""
        return str(self.contract.encode_abi(function, args=list(args)))

    def job(self, job_id: bytes) -> OnchainJob:
        """The contract's record of a job (all zero when it was never opened)."""
        return OnchainJob(*(int(v) for v in self.view("jobs", job_id)))

    def terms(self) -> Terms:
        """The terms jobs opened now get."""
        return Terms(*(int(v) for v in self.view("currentTerms")))

    def terms_at(self, index: int) -> Terms:
        """The terms at ``index``: what a job opened under them keeps (its ``terms_index``)."""
        return Terms(*(int(v) for v in self.view("terms", index)))

    def verification_pool(self) -> int:
        """What the verification pool holds for re-runs (micro-units)."""
        return int(self.view("verificationPool"))

    def account_id(self, address: str) -> int:
        """The market's id for ``address`` (0: it never deposited nor staked)."""
        return int(self.view("accountId", Web3.to_checksum_address(address)))

    def balances(self, account_id: int) -> Balances:
        """Deposit, earnings, stake and locked stake of an account id."""
        return Balances(*(int(v) for v in self.view("balances", account_id)))

    def unstaking(self, account_id: int) -> Unstaking:
        """Stake requested out of the market and when it may be withdrawn."""
        return Unstaking(*(int(v) for v in self.view("unstaking", account_id)))

    def view(self, function: str, *args: Any) -> Any:
        """Call a view; a revert is raised as :class:`ContractReverted` by name."""
        try:
            return getattr(self.contract.functions, function)(*args).call()
        except (ContractCustomError, ContractLogicError) as exc:
            raise self.errors.decode(getattr(exc, "data", None)) from exc


def token_contract(w3: Web3, address: str) -> Contract:
    """The payment token (an ERC-20; the test stablecoin's ABI covers what we use)."""
    return w3.eth.contract(
        address=Web3.to_checksum_address(address), abi=load_artifact("TestStablecoin")["abi"]
    )
