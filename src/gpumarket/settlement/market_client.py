"""The coordinator's side of the market contract over JSON-RPC: sends and reads, no database.

Every send goes through the :class:`~gpumarket.settlement.outbox.TransactionSender` under a key
per job and step, so a process killed at any moment and restarted repeats a call's *outcome*,
never the payment. Opens and commits that arrive while one of their kind waits for its block go
out together (``openMany``, ``commitMany``; see :mod:`.group_send`). Answers are decoded: the
events a transaction emitted, by name, with this job's share of the gas; the contract's
refusals become the errors of :mod:`.refusals` (the one table), which say what to fix.

Where the outbox lives is the caller's choice (:class:`~.outbox.OutboxStore`): this module
knows nothing of the coordinator, FastAPI or SQLAlchemy.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from requests.exceptions import RequestException
from web3 import HTTPProvider, Web3
from web3.exceptions import ProviderConnectionError
from web3.logs import DISCARD

from gpumarket.errors import (
    ConfigurationError,
    Conflict,
    ContractReverted,
    InvalidRequest,
    ServiceUnavailable,
    Unreachable,
)
from gpumarket.protocol import ChainInfo, PaymentRequest
from gpumarket.settlement.contracts import Deployment, Market, Terms
from gpumarket.settlement.events import ChainEvent, EventReader
from gpumarket.settlement.group_send import GroupSender
from gpumarket.settlement.outbox import OutboxStore, Sent, TransactionSender
from gpumarket.settlement.refusals import refusal
from gpumarket.settlement.signing import Order, compact

log = logging.getLogger(__name__)

# GpuMarket.State
CHAIN_NONE, CHAIN_OPEN, CHAIN_COMMITTED, CHAIN_DISPUTED = 0, 1, 2, 3
CHAIN_SETTLED, CHAIN_REFUNDED, CHAIN_CANCELLED = 4, 5, 6

PROBE_TIMEOUT_SECONDS = 3.0
"""A scrape never waits on a slow RPC endpoint longer than this."""

UNREACHABLE: tuple[type[BaseException], ...] = (
    RequestException,  # web3's HTTP provider: refused, timed out, reset
    OSError,
    ProviderConnectionError,
    Unreachable,
)
"""What a read from the chain raises when its RPC endpoint does not answer."""


@dataclass(frozen=True)
class TxOutcome:
    """A confirmed transaction and the market events it emitted, by event name. A step sent
    in a batch of ``shared_by`` jobs gets only its own job's events and its share of the gas."""

    sent: Sent
    events: dict[str, list[dict[str, Any]]]
    shared_by: int = 1

    @property
    def gas_share(self) -> int | None:
        """This job's part of the transaction's gas."""
        return None if self.sent.gas_used is None else self.sent.gas_used // self.shared_by

    def event(self, name: str) -> dict[str, Any]:
        """The first ``name`` event of this job (the contract emits one per job and step)."""
        return self.events[name][0]


@dataclass(frozen=True)
class ChainFigures:
    """The chain's health as the coordinator's account sees it."""

    up: bool
    block: int | None
    sender_balance_wei: int | None
    outbox_pending: int


@dataclass(frozen=True)
class SignedOrder:
    """A developer's signed order on its way to ``openJob`` or ``openMany``."""

    order: Order
    signature: tuple[bytes, bytes]


@dataclass(frozen=True)
class SignedClaim:
    """A provider's signed result claim on its way to ``commitResult`` or ``commitMany``."""

    chain_job_id: str
    result: bytes
    amount_micros: int
    signature: tuple[bytes, bytes]


class MarketClient:
    """Escrow in the GpuMarket contract, through the coordinator's key and an outbox."""

    def __init__(
        self,
        rpc_url: str,
        deployment: Deployment,
        key: str,
        store: OutboxStore,
        *,
        batch_size: int = 50,
        receipt_timeout: float = 60,
        public_rpc_url: str | None = None,
    ) -> None:
        self.rpc_url = rpc_url
        self.public_rpc_url = public_rpc_url or rpc_url
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        self._probe = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": PROBE_TIMEOUT_SECONDS}))
        self.deployment = deployment
        self.market = Market(self.w3, deployment.market)
        try:
            self.account: LocalAccount = Account.from_key(key)
        except ValueError as exc:  # never echo the key itself
            raise ConfigurationError(
                "GPUMARKET_CHAIN_KEY is not a private key: write 64 hex digits (0x optional)"
            ) from exc
        self.sender = TransactionSender(
            self.w3, self.account, store, self.market.errors, receipt_timeout=receipt_timeout
        )
        self.opens: GroupSender[SignedOrder, TxOutcome] = GroupSender(
            self._open_many, self._open_one, batch_size
        )
        self.commits: GroupSender[SignedClaim, TxOutcome] = GroupSender(
            self._commit_many, self._commit_one, batch_size
        )
        if self.sender.chain_id != deployment.chain_id:
            raise ConfigurationError(
                f"the RPC endpoint serves chain {self.sender.chain_id}, but the deployment file "
                f"is for chain {deployment.chain_id}"
            )
        self._check_roles()

    def _check_roles(self) -> None:
        """Refuse to start with a key the market does not know as a coordinator (every order
        and claim would revert), and warn when it cannot rule on disputes."""
        me = self.account.address
        if not self.market.view("hasRole", self.market.view("COORDINATOR_ROLE"), me):
            raise ConfigurationError(
                f"GPUMARKET_CHAIN_KEY's account {me} does not hold the coordinator role on the "
                f"market {self.deployment.market}: use the key that does, or have the market's "
                f"admin call grantRole(COORDINATOR_ROLE, {me})"
            )
        if not self.market.view("hasRole", self.market.view("ARBITER_ROLE"), me):
            log.warning(
                "account %s does not hold the arbiter role on the market: `admin resolve` "
                "rulings will be refused by the contract until the admin grants it",
                me,
            )
        if not self.market.view("hasRole", self.market.view("VERIFIER_ROLE"), me):
            log.warning(
                "account %s does not hold the verifier role on the market: a job sampled for "
                "a re-run cannot have its challenge window extended, be challenged without a "
                "bond, nor its re-runners be paid from the verification pool until the admin "
                "grants it",
                me,
            )

    # ------------------------------------------------------------ reads

    def figures(self) -> ChainFigures:
        """The chain-side figures for ``/metrics``; an unreachable endpoint reads as down."""
        pending = self.sender.pending()
        try:
            block = int(self._probe.eth.block_number)
            balance = int(self._probe.eth.get_balance(self.account.address))
        except Exception:
            return ChainFigures(False, None, None, pending)
        return ChainFigures(True, block, balance, pending)

    def info(self) -> ChainInfo:
        """The market and its current terms, for wallets and the SDK. The terms are read from
        the contract, so while the chain's RPC endpoint does not answer this is a
        :class:`ServiceUnavailable` (503) that says so, not an internal error."""
        try:
            terms = self.market.terms()
        except UNREACHABLE as exc:
            log.debug("GET /v1/chain: the chain's RPC endpoint does not answer: %s", exc)
            raise ServiceUnavailable(
                "the chain is unreachable: the coordinator cannot read the market's terms "
                "from its RPC endpoint right now; try again in a moment"
            ) from exc
        return ChainInfo(
            chain_id=self.deployment.chain_id,
            rpc_url=self.public_rpc_url,
            market=self.deployment.market,
            token=self.deployment.token,
            fee_bps=terms.fee_bps,
            burn_bps=terms.burn_bps,
            window_seconds=terms.window,
            min_stake_micros=terms.min_stake,
            challenge_bond_micros=terms.challenge_bond,
            stake_multiple=terms.stake_multiple,
            verify_window_seconds=terms.verify_window,
            premium_bps=terms.premium_bps,
        )

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock the challenge window runs on."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def free_stake(self, address: str) -> int:
        """A provider's stake not locked by results in their window (0 without an account)."""
        account_id = self.market.account_id(address)
        if account_id == 0:
            return 0
        balances = self.market.balances(account_id)
        return balances.stake - balances.locked_stake

    def mined_at(self, tx_hash: str) -> tuple[int | None, int | None]:
        """(block, gas used) of a transaction someone else sent, for the job's receipt;
        (None, None) while it is not mined or the node will not say."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexStr(tx_hash))
        except Exception:  # not found, or the node is down: the step is shown without them
            log.info("no receipt for %s yet; its block and gas stay unknown", tx_hash)
            return None, None
        return int(receipt["blockNumber"]), int(receipt["gasUsed"])

    def job_state(self, chain_job_id: str) -> int:
        """The job's state in the contract (0 when it was never opened)."""
        return self.market.job(bytes.fromhex(chain_job_id[2:])).state

    def events(self, from_block: int, max_blocks: int) -> tuple[list[ChainEvent], int]:
        """The market's events from ``from_block`` on, oldest first, and the next block."""
        reader = EventReader(self.market, from_block)
        found = list(reader.poll(max_blocks))
        return found, reader.cursor

    def is_paused(self) -> bool:
        """Whether the market refuses new jobs."""
        return bool(self.market.view("paused"))

    def verification_pool(self) -> int:
        """What the market's verification pool holds for re-runs (micro-units)."""
        return self.market.verification_pool()

    # ------------------------------------------------------------ sends

    def open(self, request: PaymentRequest, signature: str) -> TxOutcome:
        """Relay the developer's order: its escrow moves from the deposit into the job. A
        refusal says what the developer must fix."""
        return self.opens.send(
            SignedOrder(Order.from_request(request), compact_signature(signature, "order"))
        )

    def _open_many(self, orders: list[SignedOrder]) -> list[TxOutcome]:
        data = self.market.calldata(
            "openMany", [o.order.as_tuple() for o in orders], [o.signature for o in orders]
        )
        return self._send_batch("opens", [o.order.job_id for o in orders], data, "JobOpened")

    def _open_one(self, order: SignedOrder) -> TxOutcome:
        data = self.market.calldata("openJob", order.order.as_tuple(), order.signature)
        try:
            return self._send(f"open:0x{order.order.job_id.hex()}", data)
        except ContractReverted as exc:
            raise refusal("openJob", exc) from exc

    def open_verified(self, request: PaymentRequest, signature: str, copies: int = 0) -> TxOutcome:
        """Relay the developer's order for a verified job (``openVerified``): the same escrow
        and checks as :meth:`open`, and when the job settles its developer pays the terms'
        premium, plus the whole amount once per replica of a redundant job (``copies``, 0 to
        7), into the verification pool (``PremiumPaid``). Sent alone, never batched, under the
        plain open's outbox key (``open:0x..``), so a resend after a crash repeats it rather
        than opening twice. A refusal says what the developer must fix."""
        if not 0 <= copies <= 7:
            raise ValueError(f"a job has 0 to 7 copies, not {copies}")
        signed = SignedOrder(Order.from_request(request), compact_signature(signature, "order"))
        data = self.market.calldata("openVerified", signed.order.as_tuple(), signed.signature)
        if copies:
            # a word after the ABI arguments, which the contract reads off the calldata (a
            # third ABI argument would make every plain openJob dearer)
            data = data + copies.to_bytes(32, "big").hex()
        try:
            return self._send(f"open:0x{signed.order.job_id.hex()}", data)
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
        ids = [bytes.fromhex(c.chain_job_id[2:]) for c in claims]
        data = self.market.calldata(
            "commitMany",
            ids,
            [c.result for c in claims],
            [c.amount_micros for c in claims],
            [c.signature for c in claims],
        )
        return self._send_batch("commits", ids, data, "ResultCommitted")

    def _commit_one(self, claim: SignedClaim) -> TxOutcome:
        data = self.market.calldata(
            "commitResult",
            bytes.fromhex(claim.chain_job_id[2:]),
            claim.result,
            claim.amount_micros,
            claim.signature,
        )
        try:
            return self._send(f"commit:{claim.chain_job_id}", data)
        except ContractReverted as exc:
            raise refusal("commitResult", exc) from exc

    def _send_batch(self, kind: str, ids: list[bytes], data: str, event: str) -> list[TxOutcome]:
        """One batch transaction; each job's outcome carries its own ``event`` and a share of
        the gas."""
        outcome = self._send(batch_key(kind, ids), data)
        found = outcome.events.get(event, [])
        return [
            TxOutcome(outcome.sent, {event: [e for e in found if bytes(e["jobId"]) == i]}, len(ids))
            for i in ids
        ]

    def finalize_one(self, chain_job_id: str) -> TxOutcome:
        """Pay out one job whose window has passed: `finalize` costs about 1,500 gas less than a
        `finalizeMany` of one, and refuses (ContractReverted, before anything is sent) a job
        someone else finalized or challenged first."""
        return self._send(
            f"finalize:{chain_job_id}",
            self.market.calldata("finalize", bytes.fromhex(chain_job_id[2:])),
        )

    def finalize_many(self, chain_job_ids: list[str]) -> TxOutcome:
        """Pay out every job in the list whose window has passed (others are skipped)."""
        ids = [bytes.fromhex(i[2:]) for i in chain_job_ids]
        outcome = self._send(batch_key("finalize", ids), self.market.calldata("finalizeMany", ids))
        paid = len(outcome.events.get("Settled", []))  # what the gas was spent on
        return TxOutcome(outcome.sent, outcome.events, max(paid, 1))

    def cancel(self, chain_job_id: str) -> TxOutcome:
        """Return an open job's whole escrow to the developer's deposit."""
        return self._send(
            f"cancel:{chain_job_id}",
            self.market.calldata("cancel", bytes.fromhex(chain_job_id[2:])),
        )

    def resolve(self, chain_job_id: str, provider_at_fault: bool) -> TxOutcome:
        """The arbiter's ruling on a disputed job."""
        data = self.market.calldata("resolve", bytes.fromhex(chain_job_id[2:]), provider_at_fault)
        return self._send(f"resolve:{chain_job_id}", data)

    def extend_window(self, chain_job_id: str, extra_seconds: int) -> TxOutcome:
        """Move a committed job's challenge window end ``extra_seconds`` later, so a re-run by
        another provider can finish inside it (the coordinator's key needs the verifier role).
        Once per job, while the window is open, by at most the job's terms' ``verify_window``;
        its ``WindowExtended`` event carries the new end. A refusal says which rule it broke."""
        data = self.market.calldata(
            "extendWindow", bytes.fromhex(chain_job_id[2:]), int(extra_seconds)
        )
        try:
            return self._send(f"extend:{chain_job_id}", data)
        except ContractReverted as exc:
            raise refusal("extendWindow", exc) from exc

    def verifier_challenge(self, chain_job_id: str) -> TxOutcome:
        """The market's own challenge of a committed job (the coordinator's key as verifier:
        no bond; a ruling against the provider pays the slash share to the verification pool),
        strictly inside the window. A refusal says why (the job's state, a closed window)."""
        data = self.market.calldata("challenge", bytes.fromhex(chain_job_id[2:]))
        try:
            return self._send(f"vchallenge:{chain_job_id}", data)
        except ContractReverted as exc:
            raise refusal("verifierChallenge", exc) from exc

    def pay_rerun(
        self, chain_job_id: str, run_key: str, result_hash: bytes, amount: int, signature: str
    ) -> TxOutcome:
        """Pay a re-runner of the job from the verification pool (``payRerun``, the verifier
        role): ``signature`` is the 0x-hex 65-byte claim the re-runner's daemon signed, the
        EIP-712 ``Result(jobId, resultHash, amount)`` of the job it re-ran. The contract pays
        the signer (a registered account, not the job's provider) ``amount`` (at most the
        job's maxPayment) into its earnings, once per job; ``RerunPaid`` is the on-chain
        evidence of the claim. Keyed by ``run_key`` (the re-run's own id), so a resend after
        a crash repeats the outcome, never the payment."""
        data = self.market.calldata(
            "payRerun",
            bytes.fromhex(chain_job_id[2:]),
            result_hash,
            int(amount),
            compact_signature(signature, "re-run claim"),
        )
        try:
            return self._send(f"payrerun:{run_key}", data)
        except ContractReverted as exc:
            raise refusal("payRerun", exc) from exc

    def set_fee(self, fee_bps: int, burn_bps: int | None = None) -> str:
        """New terms for jobs opened from now on (running jobs keep theirs); the tx hash."""
        t = self.market.terms()
        burn = t.burn_bps if burn_bps is None else burn_bps
        return self.set_terms(replace(t, fee_bps=fee_bps, burn_bps=burn))

    def set_terms(self, terms: Terms) -> str:
        """Whole new terms for jobs opened from now on (running jobs keep theirs); the tx
        hash. The contract refuses (``BadTerms``) a fee over 10%, a share over 100% or a
        ``min_stake`` over 40 bits."""
        data = self.market.calldata("setTerms", terms.as_tuple())
        return self._send(f"terms:{uuid.uuid4().hex}", data).sent.hash

    def set_paused(self, paused: bool) -> str:
        """Stop (or resume) opening new jobs; withdrawals always work. The tx hash."""
        if self.is_paused() == paused:
            raise Conflict(f"the market is already {'paused' if paused else 'running'}")
        data = self.market.calldata("pause" if paused else "unpause")
        return self._send(f"pause:{uuid.uuid4().hex}", data).sent.hash

    def resume(self) -> None:
        """Confirm whatever a crash or an RPC outage left in the outbox."""
        self.sender.resume()

    def _send(self, key: str, data: str) -> TxOutcome:
        sent = self.sender.submit(key, self.market.address, data)
        receipt = self.w3.eth.get_transaction_receipt(HexStr(sent.hash))
        events: dict[str, list[dict[str, Any]]] = {}
        for item in self.market.abi:
            if item["type"] != "event":
                continue
            found = getattr(self.market.contract.events, item["name"])().process_receipt(
                receipt, errors=DISCARD
            )
            if found:
                events[item["name"]] = [dict(e["args"]) for e in found]
        return TxOutcome(sent, events)


def batch_key(kind: str, ids: list[bytes]) -> str:
    """The outbox key of a batch: it names the batch's jobs, so a resend finds the same entry."""
    return f"{kind}:" + Web3.keccak(b"".join(ids)).hex()


def compact_signature(signature: str, what: str) -> tuple[bytes, bytes]:
    """A 0x-hex signature from the wire in the form the contract takes; a 422 if unusable."""
    try:
        return compact(bytes.fromhex(signature.removeprefix("0x")))
    except ValueError as exc:
        raise InvalidRequest(f"the {what}'s signature cannot be used: {exc}") from exc
