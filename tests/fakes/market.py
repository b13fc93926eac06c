"""An in-memory GpuMarket behind :class:`~gpumarket.settlement.market_client.MarketClient`'s
interface, so the chain backend and the reconciliation loops run in unit tests without anvil.

:class:`FakeMarket` has the client's public methods with the same signatures and return types
(``TxOutcome`` with a :class:`~gpumarket.settlement.outbox.Sent`, events by name shaped like
the contract's, ``ChainEvent`` items for the follower) and models the contract closely enough
for the coordinator's side to be tested:

- per-job state (``CHAIN_*``: none, open, committed, disputed, settled, refunded, cancelled)
  with the contract's checks, raised as :class:`~gpumarket.errors.ContractReverted` by error
  name (``WrongState``, ``WindowOpen``, ``StakeTooLow``...) and, for a single open or commit,
  turned into the same caller-facing errors as the real client (``refusals.refusal``);
- the developer's order and the provider's claim are recovered from their real EIP-712
  signatures (an unknown signer is ``BadSignature``, as on-chain);
- deposits, stakes, locked stake (``max(min_stake, amount * stake_multiple)`` per result, as
  :func:`~gpumarket.protocol.stake_to_lock` and the contract compute it: locked at commit,
  released by a settlement, slashed by a ruling against the provider), earnings, the fee and its
  burned share in basis points, each job on the terms it was opened with;
- a clock (``now``, :meth:`advance`), one block per transaction, and the challenge window,
  which a verifier (the coordinator's account, or one added to ``verifiers``) may extend once
  per job by up to the terms' ``verify_window`` (:meth:`extend_window`, :meth:`extend_by`);
- verification by re-execution: a sampled job opened with :meth:`open_verified` pays the terms'
  ``premium_bps`` of its amount (at most what its escrow holds beyond the amount, rounded
  down) into the verification ``pool`` when it settles (finalize, ``finalizeMany``, a ruling
  for the provider), and nothing when its provider is ruled at fault; a verifier challenges
  without a bond (:meth:`verifier_challenge`, or :meth:`challenge_by` from one in
  ``verifiers``) and a ruling against the provider then pays the slash share to the pool;
  :meth:`fund_pool` tops the pool up (anyone); :meth:`pay_rerun` pays a re-runner's signed
  claim from it with the contract's checks (``WrongState`` before a commit, ``AmountOverMax``,
  ``BadSignature`` for an unknown signer, ``RunnerIsProvider``, ``AlreadyPaid`` once per job
  and re-runner, ``InsufficientPool``), refused as the real client refuses it;
- an outbox: every send is keyed like the real client's (``open:0x..``, ``commit:0x..``,
  ``finalize:0x..``, ``cancel:0x..``, ``resolve:0x..``, ``vchallenge:0x..``, ``payrerun:RUN``, a
  batch by its jobs), and a repeated key
  returns the first outcome without a second transaction;
- opens and commits go through the real :class:`~gpumarket.settlement.group_send.GroupSender`
  (``opens``/``commits``), so what queues meanwhile goes out as one batch, all or nothing.

Hooks act as someone else on the contract (:meth:`deposit`, :meth:`stake`, :meth:`fund_pool`,
:meth:`challenge_by`, :meth:`extend_by`, :meth:`rule_by_arbiter`, :meth:`expire_by`,
:meth:`finalize_by`) and
:meth:`lose_answer` makes the next send reach the chain and then raise, as a crash or an RPC
outage between the transaction and its receipt does.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from gpumarket.errors import Conflict, ContractReverted, ServiceUnavailable, Unreachable
from gpumarket.protocol import ChainInfo, PaymentRequest, stake_to_lock
from gpumarket.settlement.contracts import Balances, Deployment, OnchainJob, Terms
from gpumarket.settlement.events import ChainEvent
from gpumarket.settlement.group_send import GroupSender
from gpumarket.settlement.market_client import (
    CHAIN_CANCELLED,
    CHAIN_COMMITTED,
    CHAIN_DISPUTED,
    CHAIN_NONE,
    CHAIN_OPEN,
    CHAIN_REFUNDED,
    CHAIN_SETTLED,
    ChainFigures,
    SignedClaim,
    SignedOrder,
    TxOutcome,
    batch_key,
    compact_signature,
)
from gpumarket.settlement.outbox import Sent
from gpumarket.settlement.refusals import refusal
from gpumarket.settlement.signing import Order, order_signer, result_signer

BPS = 10_000
MAX_FEE_BPS = 1000
MAX_MIN_STAKE = (1 << 40) - 1
"""The largest floor the contract's cached terms hold (``BadTerms`` above it)."""
MAX_VERIFY_WINDOW = (1 << 24) - 1
"""The longest verify window the terms word holds (24 bits; ``BadTerms`` above it)."""
U32 = (1 << 32) - 1
VERIFIER_ROLE = bytes(Web3.keccak(text="VERIFIER_ROLE"))
CHAIN_ID = 31337
MARKET = Web3.to_checksum_address("0x" + "4d" * 20)
TOKEN = Web3.to_checksum_address("0x" + "70" * 20)

GAS: dict[str, tuple[int, int]] = {
    # function: (base, per job) -- close enough to the real contract's to read like it
    "openJob": (92_000, 0),
    "openVerified": (92_000, 0),
    "openMany": (31_000, 64_000),
    "commitResult": (88_000, 0),
    "commitMany": (30_000, 61_000),
    "finalize": (47_000, 0),
    "finalizeMany": (26_000, 33_000),
    "cancel": (38_000, 0),
    "expire": (40_000, 0),
    "challenge": (71_000, 0),
    "resolve": (64_000, 0),
    "extendWindow": (36_000, 0),
    "payRerun": (70_000, 0),
    "fundPool": (42_000, 0),
    "deposit": (55_000, 0),
    "stake": (54_000, 0),
    "setTerms": (45_000, 0),
    "pause": (28_000, 0),
    "unpause": (28_000, 0),
}


def expand(signature: tuple[bytes, bytes]) -> bytes:
    """The 65-byte (r, s, v) form of an EIP-2098 ``(r, vs)`` pair, as ``ECDSA.recover(hash, r,
    vs)`` reads it."""
    r, vs = signature
    word = int.from_bytes(vs, "big")
    s, v = word & ((1 << 255) - 1), (word >> 255) + 27
    return r + s.to_bytes(32, "big") + bytes([v])


def job_key(chain_job_id: str) -> bytes:
    """The contract's ``bytes32`` job id of a coordinator's ``0x`` hex reference."""
    return bytes.fromhex(chain_job_id.removeprefix("0x"))


def ref_of(job_id: bytes) -> str:
    """The coordinator's reference (``0x`` + 64 hex digits) of a ``bytes32`` job id."""
    return "0x" + job_id.hex()


@dataclass
class FakeJob:
    """One job as the contract keeps it."""

    developer: str
    max_payment: int
    deadline: int
    terms: Terms
    spec_hash: bytes
    state: int = CHAIN_OPEN
    provider: str | None = None
    amount: int = 0
    result: bytes = b""
    window_end: int = 0
    challenger: str | None = None
    bond: int = 0
    extended: bool = False
    verified: bool = False
    """Opened with ``openVerified``: it pays the premium into the pool when it settles."""
    copies: int = 0
    """A redundant job's replicas (3 bits kept): each adds the amount to its premium."""
    by_verifier: bool = False
    """Challenged by a verifier: no bond, and the slash share goes to the pool."""

    @property
    def locked_stake(self) -> int:
        """What this job's result locks of its provider's stake (and a ruling slashes)."""
        return stake_to_lock(self.amount, self.terms.min_stake, self.terms.stake_multiple)


@dataclass
class FakeAccount:
    """One address's money in the market (refunds are folded into the deposit at once)."""

    account_id: int
    deposit: int = 0
    earnings: int = 0
    stake: int = 0
    locked: int = 0


@dataclass(frozen=True)
class Mined:
    """A transaction on the fake chain: its block, gas, sender and the events it emitted."""

    hash: str
    block: int
    timestamp: int
    gas_used: int
    sender: str
    function: str
    events: tuple[tuple[str, dict[str, Any]], ...]

    def by_name(self) -> dict[str, list[dict[str, Any]]]:
        """The events as the client decodes a receipt: by name, in emission order."""
        found: dict[str, list[dict[str, Any]]] = {}
        for name, args in self.events:
            found.setdefault(name, []).append(dict(args))
        return found


@dataclass
class _Loss:
    """A planned lost answer: the next send of ``function`` (any when None) raises ``error``
    after its transaction is mined."""

    function: str | None
    error: Exception


@dataclass
class _State:
    """Everything a reverted transaction must leave as it was."""

    jobs: dict[bytes, FakeJob] = field(default_factory=dict)
    accounts: dict[str, FakeAccount] = field(default_factory=dict)
    treasury: int = 0
    burned: int = 0
    pool: int = 0
    """The verification pool (``verificationPool()``)."""
    reruns: set[tuple[bytes, str]] = field(default_factory=set)
    """(job, re-runner) pairs ``payRerun`` paid."""


Emitted = list[tuple[str, dict[str, Any]]]


def revert(error: str, *args: object) -> ContractReverted:
    """The revert the contract's custom error ``error(args)`` decodes to."""
    return ContractReverted(error, tuple(args), raw="0x")


class FakeContract:
    """The views :class:`~gpumarket.settlement.contracts.Market` offers, on the fake's state."""

    def __init__(self, owner: FakeMarket) -> None:
        self._owner = owner
        self.address = owner.deployment.market

    def terms(self) -> Terms:
        """The terms jobs opened now get."""
        return self._owner.current_terms

    def job(self, job_id: bytes) -> OnchainJob:
        """The contract's record of a job (all zero when it was never opened)."""
        found = self._owner.state.jobs.get(job_id)
        if found is None:
            return OnchainJob(0, 0, 0, 0, 0, 0, CHAIN_NONE)
        accounts = self._owner.state.accounts
        return OnchainJob(
            accounts[found.developer].account_id,
            accounts[found.provider].account_id if found.provider else 0,
            found.max_payment,
            found.amount,
            found.window_end if found.provider is not None else found.deadline,
            0,
            found.state,
        )

    def account_id(self, address: str) -> int:
        """The market's id for ``address`` (0: it never deposited nor staked)."""
        found = self._owner.state.accounts.get(Web3.to_checksum_address(address))
        return found.account_id if found else 0

    def verification_pool(self) -> int:
        """What the verification pool holds for re-runs."""
        return self._owner.state.pool

    def balances(self, account_id: int) -> Balances:
        """Deposit, earnings, stake and locked stake of an account id."""
        for found in self._owner.state.accounts.values():
            if found.account_id == account_id:
                return Balances(found.deposit, found.earnings, found.stake, found.locked)
        return Balances(0, 0, 0, 0)


class FakeMarket:
    """The market contract and the coordinator's client of it, in memory. See the module
    docstring; ``FakeMarket(window=..., fee_bps=...)`` sets the first terms."""

    def __init__(
        self,
        *,
        window: int = 600,
        fee_bps: int = 250,
        burn_bps: int = 2000,
        slash_share_bps: int = 5000,
        min_stake: int = 1_000_000,
        challenge_bond: int = 500_000,
        stake_multiple: int = 0,
        verify_window: int = 0,
        premium_bps: int = 0,
        pool: int = 0,
        start_time: int | None = None,
        deployment_block: int = 7,
        batch_size: int = 50,
        rpc_url: str = "http://fake-chain:8545",
    ) -> None:
        self.rpc_url = rpc_url
        self.public_rpc_url = rpc_url
        self.deployment = Deployment(CHAIN_ID, TOKEN, MARKET, deployment_block)
        self.account: LocalAccount = Account.create()
        self.arbiter = self.account.address
        self.current_terms = Terms(
            fee_bps,
            burn_bps,
            slash_share_bps,
            window,
            min_stake,
            challenge_bond,
            stake_multiple,
            verify_window,
            premium_bps,
        )
        self.verifiers: set[str] = {self.account.address}
        """Who holds the verifier role (may extend windows, challenge any job without a bond
        and pay re-runners from the pool)."""
        self.market = FakeContract(self)
        self.state = _State(pool=pool)
        self.now = int(time.time()) if start_time is None else start_time
        """The chain's clock (the latest block's timestamp); it starts at the wall clock, which
        the coordinator's order deadlines are computed from."""
        self.block = deployment_block
        self.paused = False
        self.reachable = True
        self.txs: dict[str, Mined] = {}
        """Every transaction mined, by hash, in order."""
        self.log: list[ChainEvent] = []
        """Every event emitted, in chain order."""
        self.calls: list[tuple[str, str]] = []
        """(function, outbox key) of each send through the client that reached the chain."""
        self.repeats: list[str] = []
        """Outbox keys a send repeated: answered with the first outcome, nothing sent."""
        self.resumed = 0
        self._outbox: dict[str, Mined] = {}
        self._unconfirmed: set[str] = set()
        self._losses: list[_Loss] = []
        self._lock = threading.RLock()
        self._next_account = 1
        self.opens: GroupSender[SignedOrder, TxOutcome] = GroupSender(
            self._open_many, self._open_one, batch_size
        )
        self.commits: GroupSender[SignedClaim, TxOutcome] = GroupSender(
            self._commit_many, self._commit_one, batch_size
        )

    # ------------------------------------------------------------ test controls

    def advance(self, seconds: int) -> int:
        """Move the chain's clock on; the new time."""
        self.now += int(seconds)
        return self.now

    def lose_answer(self, function: str | None = None, error: Exception | None = None) -> None:
        """The next send (of ``function``: ``openJob``, ``commitMany``, ``finalizeMany``...;
        any when None) reaches the chain and is mined, then raises ``error`` (by default the
        client's no-receipt :class:`Unreachable`) instead of answering. Its outbox entry stays
        unconfirmed until :meth:`resume` or a repeat of its key."""
        self._losses.append(
            _Loss(function, error or Unreachable("no receipt yet; it stays in the outbox"))
        )

    def job(self, chain_job_id: str) -> FakeJob:
        """The contract's record of a job (KeyError when it was never opened)."""
        return self.state.jobs[job_key(chain_job_id)]

    def balance(self, address: str) -> FakeAccount:
        """An address's money in the market (zero when it has no account)."""
        return self.state.accounts.get(Web3.to_checksum_address(address), FakeAccount(0))

    def events_named(self, name: str, chain_job_id: str | None = None) -> list[ChainEvent]:
        """The ``name`` events emitted so far (of one job when ``chain_job_id`` is given)."""
        return [
            e
            for e in self.log
            if e.name == name
            and (chain_job_id is None or e.args.get("jobId") == job_key(chain_job_id))
        ]

    def sent(self, function: str) -> list[str]:
        """Outbox keys of the client's sends of ``function`` that reached the chain."""
        return [key for called, key in self.calls if called == function]

    def mined(self, function: str) -> list[Mined]:
        """The transactions calling ``function`` (anyone's), oldest first."""
        return [m for m in self.txs.values() if m.function == function]

    # ------------------------------------------------------------ someone else on the contract

    def deposit(self, address: str, amount: int) -> str:
        """A developer's deposit (what ``gpumarket wallet deposit`` sends); the tx hash."""

        def apply() -> Emitted:
            self._account(address).deposit += amount
            return [("Deposited", {"account": self._checksum(address), "amount": amount})]

        return self._mine("deposit", self._checksum(address), apply).hash

    def stake(self, address: str, amount: int) -> str:
        """A provider's stake (``gpumarket provider stake``); the tx hash."""

        def apply() -> Emitted:
            self._account(address).stake += amount
            return [("Staked", {"provider": self._checksum(address), "amount": amount})]

        return self._mine("stake", self._checksum(address), apply).hash

    def challenge_by(self, challenger: str, chain_job_id: str) -> str:
        """``challenge(jobId)`` from ``challenger``'s own wallet, strictly inside the window:
        the developer's takes the bond, a verifier's none; the tx hash."""
        who = self._checksum(challenger)
        job_id = job_key(chain_job_id)
        return self._mine("challenge", who, lambda: self._challenge(who, job_id)).hash

    def fund_pool(self, funder: str, amount: int) -> str:
        """``fundPool(amount)`` from anyone's wallet: tops the verification pool up; the tx
        hash."""
        who = self._checksum(funder)

        def apply() -> Emitted:
            if amount == 0:
                raise revert("ZeroAmount")
            self.state.pool += amount
            return [("PoolFunded", {"from": who, "amount": amount})]

        return self._mine("fundPool", who, apply).hash

    def extend_by(self, verifier: str, chain_job_id: str, extra_seconds: int) -> str:
        """``extendWindow(jobId, extra)`` from a verifier's own wallet; the tx hash."""
        job_id = job_key(chain_job_id)
        who = self._checksum(verifier)
        mined = self._mine("extendWindow", who, lambda: self._extend(who, job_id, extra_seconds))
        return mined.hash

    def rule_by_arbiter(self, chain_job_id: str, provider_at_fault: bool) -> str:
        """``resolve(jobId, atFault)`` sent straight to the contract by the arbiter (say with
        ``cast``), not through the coordinator; the tx hash."""
        job_id = job_key(chain_job_id)
        mined = self._mine("resolve", self.arbiter, lambda: self._rule(job_id, provider_at_fault))
        return mined.hash

    def expire_by(self, caller: str, chain_job_id: str) -> str:
        """``expire(jobId)``: anyone returns an open escrow once its order's deadline passed;
        the tx hash."""
        job_id = job_key(chain_job_id)

        def apply() -> Emitted:
            job = self._in_state(job_id, CHAIN_OPEN)
            if self.now <= job.deadline:
                raise revert("NotExpired", job.deadline, self.now)
            return self._refund_open(job_id, job)

        return self._mine("expire", self._checksum(caller), apply).hash

    def finalize_by(self, caller: str, chain_job_id: str) -> str:
        """``finalize(jobId)`` by anyone once the window has passed; the tx hash."""
        job_id = job_key(chain_job_id)
        return self._mine("finalize", self._checksum(caller), lambda: self._finalize(job_id)).hash

    # ------------------------------------------------------------ reads

    def figures(self) -> ChainFigures:
        """The chain-side figures for ``/metrics``; an unreachable endpoint reads as down."""
        if not self.reachable:
            return ChainFigures(False, None, None, len(self._unconfirmed))
        return ChainFigures(True, self.block, 10**18, len(self._unconfirmed))

    def info(self) -> ChainInfo:
        """The market and its current terms, for wallets and the SDK."""
        if not self.reachable:
            raise ServiceUnavailable("the chain is unreachable (fake)")
        t = self.current_terms
        return ChainInfo(
            chain_id=self.deployment.chain_id,
            rpc_url=self.public_rpc_url,
            market=self.deployment.market,
            token=self.deployment.token,
            fee_bps=t.fee_bps,
            burn_bps=t.burn_bps,
            window_seconds=t.window,
            min_stake_micros=t.min_stake,
            challenge_bond_micros=t.challenge_bond,
            stake_multiple=t.stake_multiple,
            verify_window_seconds=t.verify_window,
            premium_bps=t.premium_bps,
        )

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock the challenge window runs on."""
        self._check_reachable()
        return self.now

    def free_stake(self, address: str) -> int:
        """A provider's stake not locked by results in their window (0 without an account)."""
        self._check_reachable()
        found = self.state.accounts.get(self._checksum(address))
        return 0 if found is None else found.stake - found.locked

    def mined_at(self, tx_hash: str) -> tuple[int | None, int | None]:
        """(block, gas used) of a transaction; (None, None) when the chain has no such one."""
        mined = self.txs.get(tx_hash) if self.reachable else None
        return (None, None) if mined is None else (mined.block, mined.gas_used)

    def job_state(self, chain_job_id: str) -> int:
        """The job's state in the contract (0 when it was never opened)."""
        self._check_reachable()
        found = self.state.jobs.get(job_key(chain_job_id))
        return CHAIN_NONE if found is None else found.state

    def events(self, from_block: int, max_blocks: int) -> tuple[list[ChainEvent], int]:
        """The market's events from ``from_block`` on, oldest first, and the next block."""
        self._check_reachable()
        head = self.block
        if head < from_block:
            return [], from_block
        to_block = min(head, from_block + max_blocks - 1)
        found = [
            ChainEvent(e.name, dict(e.args), e.block, e.tx_hash, e.log_index)
            for e in self.log
            if from_block <= e.block <= to_block
        ]
        return found, to_block + 1

    def is_paused(self) -> bool:
        """Whether the market refuses new jobs."""
        self._check_reachable()
        return self.paused

    def verification_pool(self) -> int:
        """What the market's verification pool holds for re-runs (micro-units)."""
        self._check_reachable()
        return self.state.pool

    # ------------------------------------------------------------ sends

    def open(self, request: PaymentRequest, signature: str) -> TxOutcome:
        """Relay the developer's order: its escrow moves from the deposit into the job. A
        refusal says what the developer must fix."""
        return self.opens.send(
            SignedOrder(Order.from_request(request), compact_signature(signature, "order"))
        )

    def _open_many(self, orders: list[SignedOrder]) -> list[TxOutcome]:
        def apply() -> Emitted:
            self._opening()
            return [event for o in orders for event in self._open(o)]

        return self._send_batch(
            "opens", [o.order.job_id for o in orders], "openMany", apply, "JobOpened"
        )

    def _open_one(self, order: SignedOrder) -> TxOutcome:
        def apply() -> Emitted:
            self._opening()
            return self._open(order)

        try:
            return self._send(f"open:0x{order.order.job_id.hex()}", "openJob", apply)
        except ContractReverted as exc:
            raise refusal("openJob", exc) from exc

    def open_verified(self, request: PaymentRequest, signature: str, copies: int = 0) -> TxOutcome:
        """Relay a verified job's order (``openVerified``): as :meth:`open`, alone, under the
        plain open's key; the job pays the premium (plus its amount per copy) into the pool
        when it settles."""
        if not 0 <= copies <= 7:
            raise ValueError(f"a job has 0 to 7 copies, not {copies}")
        signed = SignedOrder(Order.from_request(request), compact_signature(signature, "order"))

        def apply() -> Emitted:
            self._opening()
            return self._open(signed, verified=True, copies=copies)

        try:
            return self._send(f"open:0x{signed.order.job_id.hex()}", "openVerified", apply)
        except ContractReverted as exc:
            raise refusal("openVerified", exc) from exc

    def commit(
        self, chain_job_id: str, result: bytes, amount_micros: int, signature: str
    ) -> TxOutcome:
        """Commit the provider's signed claim; the challenge window starts at its block."""
        return self.commits.send(
            SignedClaim(
                chain_job_id, result, amount_micros, compact_signature(signature, "result claim")
            )
        )

    def _commit_many(self, claims: list[SignedClaim]) -> list[TxOutcome]:
        ids = [job_key(c.chain_job_id) for c in claims]

        def apply() -> Emitted:
            return [event for c in claims for event in self._commit(c)]

        return self._send_batch("commits", ids, "commitMany", apply, "ResultCommitted")

    def _commit_one(self, claim: SignedClaim) -> TxOutcome:
        try:
            return self._send(
                f"commit:{claim.chain_job_id}", "commitResult", lambda: self._commit(claim)
            )
        except ContractReverted as exc:
            raise refusal("commitResult", exc) from exc

    def finalize_one(self, chain_job_id: str) -> TxOutcome:
        """Pay out one job whose window has passed; refuses (``WrongState``, ``WindowOpen``)
        a job that is not due, before anything is sent."""
        job_id = job_key(chain_job_id)
        return self._send(f"finalize:{chain_job_id}", "finalize", lambda: self._finalize(job_id))

    def finalize_many(self, chain_job_ids: list[str]) -> TxOutcome:
        """Pay out every job in the list whose window has passed (others are skipped)."""
        ids = [job_key(i) for i in chain_job_ids]

        def apply() -> Emitted:
            emitted: Emitted = []
            for job_id in ids:
                job = self.state.jobs.get(job_id)
                if job is not None and job.state == CHAIN_COMMITTED and self.now >= job.window_end:
                    emitted += self._settle(job_id, job)
            return emitted

        outcome = self._send(batch_key("finalize", ids), "finalizeMany", apply)
        paid = len(outcome.events.get("Settled", []))
        return TxOutcome(outcome.sent, outcome.events, max(paid, 1))

    def cancel(self, chain_job_id: str) -> TxOutcome:
        """Return an open job's whole escrow to the developer's deposit."""
        job_id = job_key(chain_job_id)

        def apply() -> Emitted:
            return self._refund_open(job_id, self._in_state(job_id, CHAIN_OPEN))

        return self._send(f"cancel:{chain_job_id}", "cancel", apply)

    def resolve(self, chain_job_id: str, provider_at_fault: bool) -> TxOutcome:
        """The arbiter's ruling on a disputed job."""
        job_id = job_key(chain_job_id)
        return self._send(
            f"resolve:{chain_job_id}", "resolve", lambda: self._rule(job_id, provider_at_fault)
        )

    def extend_window(self, chain_job_id: str, extra_seconds: int) -> TxOutcome:
        """Move a committed job's window end ``extra_seconds`` later (the coordinator as
        verifier): once, while open, by at most its terms' ``verify_window``."""
        job_id = job_key(chain_job_id)
        me = self.account.address
        try:
            return self._send(
                f"extend:{chain_job_id}",
                "extendWindow",
                lambda: self._extend(me, job_id, extra_seconds),
            )
        except ContractReverted as exc:
            raise refusal("extendWindow", exc) from exc

    def verifier_challenge(self, chain_job_id: str) -> TxOutcome:
        """The market's own challenge (the coordinator's account as verifier: no bond)."""
        job_id = job_key(chain_job_id)
        me = self.account.address
        try:
            return self._send(
                f"vchallenge:{chain_job_id}", "challenge", lambda: self._challenge(me, job_id)
            )
        except ContractReverted as exc:
            raise refusal("verifierChallenge", exc) from exc

    def pay_rerun(
        self, chain_job_id: str, run_key: str, result_hash: bytes, amount: int, signature: str
    ) -> TxOutcome:
        """Pay a re-runner's signed claim for the job from the pool (the coordinator's account
        as verifier), with the contract's checks; keyed ``payrerun:{run_key}``."""
        job_id = job_key(chain_job_id)
        me = self.account.address
        claim = compact_signature(signature, "re-run claim")

        def apply() -> Emitted:
            return self._pay_rerun(me, job_id, result_hash, amount, claim)

        try:
            return self._send(f"payrerun:{run_key}", "payRerun", apply)
        except ContractReverted as exc:
            raise refusal("payRerun", exc) from exc

    def set_fee(self, fee_bps: int, burn_bps: int | None = None) -> str:
        """New terms for jobs opened from now on (running jobs keep theirs); the tx hash."""
        t = self.current_terms
        burn = t.burn_bps if burn_bps is None else burn_bps
        return self.set_terms(replace(t, fee_bps=fee_bps, burn_bps=burn))

    def set_terms(self, terms: Terms) -> str:
        """Whole new terms for jobs opened from now on (running jobs keep theirs); the tx
        hash. ``BadTerms`` as the contract refuses them."""

        def apply() -> Emitted:
            if (
                terms.fee_bps > MAX_FEE_BPS
                or terms.burn_bps > BPS
                or terms.slash_share_bps > BPS
                or terms.min_stake > MAX_MIN_STAKE
                or terms.verify_window > MAX_VERIFY_WINDOW
                or terms.premium_bps > BPS
            ):
                raise revert("BadTerms")
            self.current_terms = terms
            return [("TermsChanged", {"terms": terms})]

        return self._send(f"terms:{uuid.uuid4().hex}", "setTerms", apply).sent.hash

    def set_paused(self, paused: bool) -> str:
        """Stop (or resume) opening new jobs; withdrawals always work. The tx hash."""
        if self.is_paused() == paused:
            raise Conflict(f"the market is already {'paused' if paused else 'running'}")

        def apply() -> Emitted:
            self.paused = paused
            return [("Paused" if paused else "Unpaused", {"account": self.account.address})]

        function = "pause" if paused else "unpause"
        return self._send(f"pause:{uuid.uuid4().hex}", function, apply).sent.hash

    def resume(self) -> None:
        """Confirm whatever a crash or an RPC outage left in the outbox."""
        self._check_reachable()
        self.resumed += 1
        self._unconfirmed.clear()

    # ------------------------------------------------------------ the contract's rules

    def _opening(self) -> None:
        if self.paused:
            raise revert("EnforcedPause")

    def _open(self, signed: SignedOrder, verified: bool = False, copies: int = 0) -> Emitted:
        order = signed.order
        if order.job_id in self.state.jobs:
            raise revert("WrongState", order.job_id, self.state.jobs[order.job_id].state)
        if self.now > order.deadline:
            raise revert("OrderExpired", order.deadline, self.now)
        developer = order_signer(
            expand(signed.signature), order, self.deployment.chain_id, self.deployment.market
        )
        account = self.state.accounts.get(developer)
        if account is None:
            raise revert("BadSignature", developer)
        if account.deposit < order.max_payment:
            raise revert("InsufficientBalance", account.deposit, order.max_payment)
        account.deposit -= order.max_payment
        self.state.jobs[order.job_id] = FakeJob(
            developer,
            order.max_payment,
            order.deadline,
            self.current_terms,
            order.spec_hash,
            verified=verified,
            copies=copies & 7,
        )
        args = {"jobId": order.job_id, "specHash": order.spec_hash, "maxPayment": order.max_payment}
        return [("JobOpened", args)]

    def _commit(self, claim: SignedClaim) -> Emitted:
        job_id = job_key(claim.chain_job_id)
        job = self._in_state(job_id, CHAIN_OPEN)
        if claim.amount_micros > job.max_payment:
            raise revert("AmountOverMax", claim.amount_micros, job.max_payment)
        provider = result_signer(
            expand(claim.signature),
            job_id,
            claim.result,
            claim.amount_micros,
            self.deployment.chain_id,
            self.deployment.market,
        )
        account = self.state.accounts.get(provider)
        if account is None:
            raise revert("BadSignature", provider)
        t = job.terms
        need = stake_to_lock(claim.amount_micros, t.min_stake, t.stake_multiple)
        if account.stake - account.locked < need:
            raise revert("StakeTooLow", account.stake - account.locked, need)
        account.locked += need
        job.provider, job.amount, job.result = provider, claim.amount_micros, claim.result
        job.window_end = self.now + job.terms.window
        job.state = CHAIN_COMMITTED
        args = {
            "jobId": job_id,
            "provider": provider,
            "resultHash": claim.result,
            "amount": claim.amount_micros,
            "windowEnd": job.window_end,
        }
        return [("ResultCommitted", args)]

    def _extend(self, who: str, job_id: bytes, extra: int) -> Emitted:
        if who not in self.verifiers:
            raise revert("AccessControlUnauthorizedAccount", who, VERIFIER_ROLE)
        job = self._in_state(job_id, CHAIN_COMMITTED)
        if self.now >= job.window_end:
            raise revert("WindowClosed", job.window_end, self.now)
        if job.extended:
            raise revert("AlreadyExtended", job_id)
        if extra == 0:
            raise revert("ZeroAmount")
        if extra > job.terms.verify_window:
            raise revert("ExtensionTooLong", extra, job.terms.verify_window)
        job.window_end = min(job.window_end + extra, U32)
        job.extended = True
        return [("WindowExtended", {"jobId": job_id, "windowEnd": job.window_end})]

    def _challenge(self, who: str, job_id: bytes) -> Emitted:
        job = self._in_state(job_id, CHAIN_COMMITTED)
        if self.now >= job.window_end:
            raise revert("WindowClosed", job.window_end, self.now)
        by_verifier = who in self.verifiers
        if not by_verifier and who != job.developer:
            raise revert("NotDeveloperOrVerifier", who)
        # a verifier puts up no bond and needs no account (it earns nothing)
        job.challenger, job.by_verifier = who, by_verifier
        job.bond = 0 if by_verifier else job.terms.challenge_bond
        job.state = CHAIN_DISPUTED
        return [("Challenged", {"jobId": job_id, "challenger": who, "bond": job.bond})]

    def _pay_rerun(
        self,
        who: str,
        job_id: bytes,
        result: bytes,
        amount: int,
        signature: tuple[bytes, bytes],
    ) -> Emitted:
        if who not in self.verifiers:
            raise revert("AccessControlUnauthorizedAccount", who, VERIFIER_ROLE)
        job = self.state.jobs.get(job_id)
        state = CHAIN_NONE if job is None else job.state
        if job is None or state not in (
            CHAIN_COMMITTED,
            CHAIN_DISPUTED,
            CHAIN_SETTLED,
            CHAIN_REFUNDED,
        ):
            raise revert("WrongState", job_id, state)
        if amount > job.max_payment:
            raise revert("AmountOverMax", amount, job.max_payment)
        runner = result_signer(
            expand(signature),
            job_id,
            result,
            amount,
            self.deployment.chain_id,
            self.deployment.market,
        )
        if runner not in self.state.accounts:
            raise revert("BadSignature", runner)
        if runner == job.provider:
            raise revert("RunnerIsProvider", job_id, runner)
        if (job_id, runner) in self.state.reruns:
            raise revert("AlreadyPaid", job_id, runner)
        if self.state.pool < amount:
            raise revert("InsufficientPool", self.state.pool, amount)
        self.state.reruns.add((job_id, runner))
        self.state.pool -= amount
        self.state.accounts[runner].earnings += amount
        args = {"jobId": job_id, "runner": runner, "resultHash": result, "amount": amount}
        return [("RerunPaid", args)]

    def _finalize(self, job_id: bytes) -> Emitted:
        job = self._in_state(job_id, CHAIN_COMMITTED)
        if self.now < job.window_end:
            raise revert("WindowOpen", job.window_end, self.now)
        return self._settle(job_id, job)

    def _settle(self, job_id: bytes, job: FakeJob) -> Emitted:
        assert job.provider is not None
        fee = job.amount * job.terms.fee_bps // BPS
        burned = fee * job.terms.burn_bps // BPS
        refund = job.max_payment - job.amount
        emitted: Emitted = []
        if job.verified:
            # the developer of a verified job pays the premium out of its refund
            bps = job.terms.premium_bps + job.copies * BPS
            premium = min(job.amount * bps // BPS, refund)
            refund -= premium
            self.state.pool += premium
            emitted.append(("PremiumPaid", {"jobId": job_id, "premium": premium}))
        provider = self.state.accounts[job.provider]
        provider.earnings += job.amount - fee
        provider.locked -= job.locked_stake
        self.state.accounts[job.developer].deposit += refund
        self.state.treasury += fee - burned
        self.state.burned += burned
        job.state = CHAIN_SETTLED
        args = {
            "jobId": job_id,
            "providerPaid": job.amount - fee,
            "fee": fee,
            "burned": burned,
            "refund": refund,
        }
        return [*emitted, ("Settled", args)]

    def _rule(self, job_id: bytes, provider_at_fault: bool) -> Emitted:
        job = self._in_state(job_id, CHAIN_DISPUTED)
        assert job.provider is not None and job.challenger is not None
        if not provider_at_fault:
            if job.bond:
                self.state.accounts[job.provider].earnings += job.bond
            resolved = {"jobId": job_id, "providerAtFault": False, "slashed": 0}
            return [("Resolved", resolved), *self._settle(job_id, job)]
        slashed = job.locked_stake
        provider = self.state.accounts[job.provider]
        provider.locked -= slashed
        provider.stake -= slashed
        reward = slashed * job.terms.slash_share_bps // BPS
        if job.by_verifier:  # the pool paid for the runs that proved the fault
            self.state.pool += reward
        else:
            self.state.accounts[job.challenger].earnings += reward + job.bond
        self.state.treasury += slashed - reward
        self.state.accounts[job.developer].deposit += job.max_payment
        job.state = CHAIN_REFUNDED
        return [
            ("Resolved", {"jobId": job_id, "providerAtFault": True, "slashed": slashed}),
            ("Refunded", {"jobId": job_id, "amount": job.max_payment}),
        ]

    def _refund_open(self, job_id: bytes, job: FakeJob) -> Emitted:
        self.state.accounts[job.developer].deposit += job.max_payment
        job.state = CHAIN_CANCELLED
        return [("Cancelled", {"jobId": job_id, "refund": job.max_payment})]

    def _in_state(self, job_id: bytes, wanted: int) -> FakeJob:
        job = self.state.jobs.get(job_id)
        state = CHAIN_NONE if job is None else job.state
        if job is None or state != wanted:
            raise revert("WrongState", job_id, state)
        return job

    # ------------------------------------------------------------ the chain and the outbox

    def _checksum(self, address: str) -> str:
        return str(Web3.to_checksum_address(address))

    def _account(self, address: str) -> FakeAccount:
        who = self._checksum(address)
        found = self.state.accounts.get(who)
        if found is None:
            found = self.state.accounts[who] = FakeAccount(self._next_account)
            self._next_account += 1
        return found

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise Unreachable("the chain's RPC endpoint is unreachable (fake)")

    def _mine(
        self, function: str, sender: str, apply: Callable[[], Emitted], jobs: int = 1
    ) -> Mined:
        """Run ``apply`` as one transaction: all of it, or (a revert) none of it."""
        self._check_reachable()
        with self._lock:
            before = copy.deepcopy(self.state)
            try:
                emitted = apply()
            except ContractReverted:
                self.state = before
                raise
            self.block += 1
            base, per_job = GAS.get(function, (50_000, 0))
            mined = Mined(
                hash="0x" + bytes(Web3.keccak(text=f"fake-tx:{self.block}:{function}")).hex(),
                block=self.block,
                timestamp=self.now,
                gas_used=base + per_job * jobs,
                sender=sender,
                function=function,
                events=tuple((name, dict(args)) for name, args in emitted),
            )
            self.txs[mined.hash] = mined
            for index, (name, args) in enumerate(emitted):
                self.log.append(ChainEvent(name, dict(args), mined.block, mined.hash, index))
            return mined

    def _send(
        self, key: str, function: str, apply: Callable[[], Emitted], jobs: int = 1
    ) -> TxOutcome:
        """One send under an outbox ``key``: a key seen before answers with its first
        outcome; a revert sends (and records) nothing."""
        self._check_reachable()
        with self._lock:
            mined = self._outbox.get(key)
            if mined is not None:
                self.repeats.append(key)
                self._unconfirmed.discard(key)
            else:
                mined = self._mine(function, self.account.address, apply, jobs)
                self._outbox[key] = mined
                self.calls.append((function, key))
                loss = next((x for x in self._losses if x.function in (None, function)), None)
                if loss is not None:
                    self._losses.remove(loss)
                    self._unconfirmed.add(key)
                    raise loss.error
        sent = Sent(key, mined.hash, "done", mined.gas_used, mined.block, None)
        return TxOutcome(sent, mined.by_name())

    def _send_batch(
        self, kind: str, ids: list[bytes], function: str, apply: Callable[[], Emitted], event: str
    ) -> list[TxOutcome]:
        """One batch transaction; each job's outcome carries its own ``event`` and a share of
        the gas (as the real client splits a batch's receipt)."""
        outcome = self._send(batch_key(kind, ids), function, apply, len(ids))
        found = outcome.events.get(event, [])
        return [
            TxOutcome(outcome.sent, {event: [e for e in found if bytes(e["jobId"]) == i]}, len(ids))
            for i in ids
        ]
