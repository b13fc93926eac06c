"""The on-chain settlement backend: the coordinator's side of the market contract.

Two kinds of calls live here. The :class:`SettlementBackend` hooks run inside the lifecycle's
database transactions and never touch the network: they only mark what the chain still owes a
job (a refund to send). The network operations (open, commit, finalize, cancel, resolve) run
outside any database transaction and send through the settlement outbox under a key per job and
step, so a coordinator killed at any moment and restarted repeats a call's *outcome*, never the
payment. :mod:`gpumarket.coordinator.services.onchain` strings the two together.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from requests.exceptions import RequestException
from web3 import HTTPProvider, Web3
from web3.exceptions import ProviderConnectionError
from web3.logs import DISCARD

from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.services.group_send import GroupSender
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import (
    Conflict,
    ContractReverted,
    InvalidRequest,
    PaymentRequired,
    ServiceUnavailable,
    SettlementError,
    TransportError,
)
from gpumarket.protocol import ChainInfo, JobSpec, PaymentRequest, from_micros
from gpumarket.settlement.contracts import Deployment, Market
from gpumarket.settlement.outbox import Sent, TransactionSender
from gpumarket.settlement.signing import Order, compact, job_id_bytes

log = logging.getLogger(__name__)

# GpuMarket.State
CHAIN_NONE, CHAIN_OPEN, CHAIN_COMMITTED, CHAIN_DISPUTED = 0, 1, 2, 3
CHAIN_SETTLED, CHAIN_REFUNDED, CHAIN_CANCELLED = 4, 5, 6

ORDER_SLACK_SECONDS = 24 * 3600
"""How long an order stays valid beyond the job's own queue and run limits."""


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


@dataclass(frozen=True)
class ChainHealth:
    """What an operator watches on the chain side (``/metrics``): whether the RPC endpoint
    answers, its latest block, the gas money left on the coordinator's account (every open,
    commit and finalize spends it) and the transactions still waiting for a receipt."""

    up: bool
    block: int | None
    sender_balance_wei: int | None
    outbox_pending: int


_UNREACHABLE: tuple[type[BaseException], ...] = (
    RequestException,  # web3's HTTP provider: refused, timed out, reset
    OSError,
    ProviderConnectionError,
    TransportError,
)
"""What a read from the chain raises when its RPC endpoint does not answer."""

PROBE_TIMEOUT_SECONDS = 3.0
"""A scrape never waits on a slow RPC endpoint longer than this."""


@dataclass(frozen=True)
class _SignedOrder:
    """A developer's signed order on its way to ``openJob`` or ``openMany``."""

    order: Order
    signature: tuple[bytes, bytes]


@dataclass(frozen=True)
class _SignedClaim:
    """A provider's signed result claim on its way to ``commitResult`` or ``commitMany``."""

    chain_job_id: str
    result: bytes
    amount_micros: int
    signature: tuple[bytes, bytes]


class ChainSettlement:
    """Escrow in the GpuMarket contract, through the coordinator's key and outbox."""

    name = "chain"
    on_chain = True

    def __init__(self, settings: CoordinatorSettings) -> None:
        if not (settings.chain_rpc_url and settings.chain_deployment and settings.chain_key):
            raise SettlementError(
                "on-chain settlement needs GPUMARKET_CHAIN_RPC_URL, GPUMARKET_CHAIN_DEPLOYMENT "
                "and GPUMARKET_CHAIN_KEY together"
            )
        try:
            deployment = Deployment.from_dict(json.loads(settings.chain_deployment.read_text()))
        except (OSError, ValueError, KeyError) as exc:
            raise SettlementError(
                f"cannot read the deployment file {settings.chain_deployment}: {exc}"
            ) from exc
        self.rpc_url = settings.chain_rpc_url
        self.public_rpc_url = settings.chain_public_rpc_url or settings.chain_rpc_url
        self.w3 = Web3(HTTPProvider(settings.chain_rpc_url, request_kwargs={"timeout": 30}))
        self._probe = Web3(
            HTTPProvider(settings.chain_rpc_url, request_kwargs={"timeout": PROBE_TIMEOUT_SECONDS})
        )
        self.deployment = deployment
        self.market = Market(self.w3, deployment.market)
        try:
            self.account: LocalAccount = Account.from_key(settings.chain_key.get_secret_value())
        except ValueError as exc:  # never echo the key itself
            raise SettlementError(
                "GPUMARKET_CHAIN_KEY is not a private key: write 64 hex digits (0x optional)"
            ) from exc
        self.sender = TransactionSender(
            self.w3,
            self.account,
            settings.data_dir / "outbox.sqlite",
            self.market.errors,
            receipt_timeout=settings.chain_receipt_timeout_seconds,
        )
        self.opens: GroupSender[_SignedOrder, TxOutcome] = GroupSender(
            self._open_many, self._open_one, settings.chain_batch_size
        )
        self.commits: GroupSender[_SignedClaim, TxOutcome] = GroupSender(
            self._commit_many, self._commit_one, settings.chain_batch_size
        )
        if self.sender.chain_id != deployment.chain_id:
            raise SettlementError(
                f"the RPC endpoint serves chain {self.sender.chain_id}, but the deployment file "
                f"is for chain {deployment.chain_id}"
            )
        self._check_roles()

    def _check_roles(self) -> None:
        """Refuse to start with a key the market does not know as a coordinator (every order
        and claim would revert), and warn when it cannot rule on disputes."""
        me = self.account.address
        if not self.market.view("hasRole", self.market.view("COORDINATOR_ROLE"), me):
            raise SettlementError(
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

    def health(self) -> ChainHealth:
        """The chain-side figures for ``/metrics``; an unreachable endpoint reads as down."""
        pending = self.sender.pending()
        try:
            block = int(self._probe.eth.block_number)
            balance = int(self._probe.eth.get_balance(self.account.address))
        except Exception:
            return ChainHealth(
                up=False, block=None, sender_balance_wei=None, outbox_pending=pending
            )
        return ChainHealth(up=True, block=block, sender_balance_wei=balance, outbox_pending=pending)

    # ------------------------------------------------------------ lifecycle hooks (no I/O)

    def open_escrow(self, job: Job) -> None:
        """Nothing to do: the escrow opens when the developer's signed order arrives."""

    def commit_result(self, job: Job) -> None:
        """Nothing to do: the provider's signed claim was committed before the transition."""

    def finalize(self, job: Job) -> None:
        """Nothing to do: the finalizer pipeline pays out with ``finalize``/``finalizeMany``."""

    def open_dispute(self, job: Job) -> None:
        """Nothing to do: the developer's own challenge transaction froze the payment."""

    def refund(self, job: Job, reason: str) -> None:
        """An open escrow is marked for cancellation; the chain pipeline sends it. A job
        cancelled while running first waits for its provider's signed claim for the seconds
        it ran (the rest is refunded when that settles). A job that never got its order just
        forgets it (no money was ever locked)."""
        if job.chain_state == "open" and job.state == "RUNNING" and job.amount_micros:
            job.chain_state = "claim_due"
        elif job.chain_state == "open":
            job.chain_state = "cancelling"
        elif job.chain_state == "awaiting_order":
            job.chain_state = "void"

    # ------------------------------------------------------------ reads

    def info(self) -> ChainInfo:
        """The market and its current terms, for wallets and the SDK. The terms are read from
        the contract, so while the chain's RPC endpoint does not answer this is a
        :class:`ServiceUnavailable` (503) that says so, not an internal error."""
        try:
            fee, burn, _share, window, min_stake, bond = self.market.view("currentTerms")
        except _UNREACHABLE as exc:
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
            fee_bps=fee,
            burn_bps=burn,
            window_seconds=window,
            min_stake_micros=min_stake,
            challenge_bond_micros=bond,
        )

    def chain_time(self) -> int:
        """The latest block's timestamp: the clock the challenge window runs on."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def free_stake(self, address: str) -> int:
        """A provider's stake not locked by results in their window (0 without an account)."""
        account_id = int(self.market.view("accountId", Web3.to_checksum_address(address)))
        if account_id == 0:
            return 0
        _deposit, _earnings, stake, locked = self.market.view("balances", account_id)
        return int(stake) - int(locked)

    def mined_at(self, tx_hash: str) -> tuple[int | None, int | None]:
        """(block, gas used) of a transaction someone else sent (the developer's challenge),
        for the job's receipt; (None, None) while it is not mined or the node will not say."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except Exception:  # not found, or the node is down: the step is shown without them
            log.info("no receipt for %s yet; its block and gas stay unknown", tx_hash)
            return None, None
        return int(receipt["blockNumber"]), int(receipt["gasUsed"])

    def job_state(self, chain_job_id: str) -> int:
        """The job's state in the contract (0 when it was never opened)."""
        return int(self.market.view("jobs", bytes.fromhex(chain_job_id[2:]))[6])

    # ------------------------------------------------------------ orders

    def payment_request(self, job: Job, spec: JobSpec) -> PaymentRequest:
        """The order the developer is asked to sign for ``job``."""
        deadline = (
            int(time.time())
            + spec.queue_timeout_seconds
            + spec.max_duration_seconds
            + ORDER_SLACK_SECONDS
        )
        return PaymentRequest(
            chain_id=self.deployment.chain_id,
            market=self.deployment.market,
            chain_job_id="0x" + job_id_bytes(job.id).hex(),
            spec_hash="0x" + job.spec_hash,
            max_payment_micros=job.escrow_micros,
            deadline=deadline,
            nonce=secrets.randbelow(2**63),
        )

    def prepare_order(self, job: Job, spec: JobSpec) -> None:
        """A new job waits in SUBMITTED for its developer to sign this order."""
        request = self.payment_request(job, spec)
        job.chain_job_id = request.chain_job_id
        job.payment_request = request.model_dump(mode="json")
        job.chain_state = "awaiting_order"

    # ------------------------------------------------------------ sends

    def open(self, request: PaymentRequest, signature: str) -> TxOutcome:
        """Relay the developer's order: its escrow moves from the deposit into the job. A
        refusal says what the developer must fix. Orders that arrive while an open waits for
        its block go out together in one ``openMany`` (see ``group_send``)."""
        return self.opens.send(
            _SignedOrder(Order.from_request(request), _compact(signature, "order"))
        )

    def _open_many(self, orders: list[_SignedOrder]) -> list[TxOutcome]:
        data = self.market.calldata(
            "openMany", [o.order.as_tuple() for o in orders], [o.signature for o in orders]
        )
        return self._send_batch("opens", [o.order.job_id for o in orders], data, "JobOpened")

    def _open_one(self, order: _SignedOrder) -> TxOutcome:
        data = self.market.calldata("openJob", order.order.as_tuple(), order.signature)
        try:
            return self._send(f"open:0x{order.order.job_id.hex()}", data)
        except ContractReverted as exc:
            raise _order_refusal(exc) from exc

    def commit(
        self, chain_job_id: str, result: bytes, amount_micros: int, signature: str
    ) -> TxOutcome:
        """Commit the provider's signed claim; the challenge window starts at its block.
        Claims that arrive while a commit waits for its block go out together in one
        ``commitMany`` (see ``group_send``)."""
        return self.commits.send(
            _SignedClaim(chain_job_id, result, amount_micros, _compact(signature, "result claim"))
        )

    def _commit_many(self, claims: list[_SignedClaim]) -> list[TxOutcome]:
        ids = [bytes.fromhex(c.chain_job_id[2:]) for c in claims]
        data = self.market.calldata(
            "commitMany",
            ids,
            [c.result for c in claims],
            [c.amount_micros for c in claims],
            [c.signature for c in claims],
        )
        return self._send_batch("commits", ids, data, "ResultCommitted")

    def _commit_one(self, claim: _SignedClaim) -> TxOutcome:
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
            if exc.error == "StakeTooLow":
                free, needed = exc.args_
                raise PaymentRequired(
                    f"your free stake is {from_micros(int(str(free)))}, under the "
                    f"{from_micros(int(str(needed)))} a result must lock: run "
                    "`gpumarket provider stake AMOUNT`, then report the result again"
                ) from exc
            if exc.error == "BadSignature":
                raise InvalidRequest(
                    "the result claim is not signed by a wallet the market knows; stake from "
                    "the wallet the provider daemon signs with"
                ) from exc
            raise

    def _send_batch(self, kind: str, ids: list[bytes], data: str, event: str) -> list[TxOutcome]:
        """One batch transaction; each job's outcome carries its own ``event`` and a share of
        the gas."""
        outcome = self._send(_batch_key(kind, ids), data)
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
        outcome = self._send(_batch_key("finalize", ids), self.market.calldata("finalizeMany", ids))
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

    def set_fee(self, fee_bps: int, burn_bps: int | None = None) -> str:
        """New terms for jobs opened from now on (running jobs keep theirs); the tx hash."""
        _fee, burn, share, window, min_stake, bond = self.market.view("currentTerms")
        terms = (fee_bps, burn if burn_bps is None else burn_bps, share, window, min_stake, bond)
        data = self.market.calldata("setTerms", terms)
        return self._send(f"terms:{uuid.uuid4().hex}", data).sent.hash

    def is_paused(self) -> bool:
        """Whether the market refuses new jobs."""
        return bool(self.market.view("paused"))

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
        receipt = self.w3.eth.get_transaction_receipt(sent.hash)  # type: ignore[arg-type]
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


def _batch_key(kind: str, ids: list[bytes]) -> str:
    """The outbox key of a batch: it names the batch's jobs, so a resend finds the same entry."""
    return f"{kind}:" + Web3.keccak(b"".join(ids)).hex()


def _order_refusal(exc: ContractReverted) -> Exception:
    args: list[Any] = [int(str(a)) if str(a).isdigit() else a for a in exc.args_]
    if exc.error == "InsufficientBalance":
        available, needed = args
        return PaymentRequired(
            f"your deposit in the market is {from_micros(available)}, but this job's escrow "
            f"needs {from_micros(needed)}: deposit more with `gpumarket wallet deposit AMOUNT` "
            "and sign again"
        )
    if exc.error == "BadSignature":
        return PaymentRequired(
            f"the order is signed by {args[0]}, which has never deposited in the market: "
            "deposit with `gpumarket wallet deposit AMOUNT` from the wallet that signs"
        )
    if exc.error == "OrderExpired":
        return InvalidRequest(
            f"the order expired at {args[0]} (chain time {args[1]}); submit the job again"
        )
    if exc.error == "WrongState":
        return Conflict("this job's escrow was already opened")
    if exc.error == "EnforcedPause":
        return Conflict("the market is paused: no new jobs are opened until the operator resumes")
    return exc


def _compact(signature: str, what: str) -> tuple[bytes, bytes]:
    """A 0x-hex signature from the wire in the form the contract takes; a 422 if unusable."""
    try:
        return compact(bytes.fromhex(signature.removeprefix("0x")))
    except ValueError as exc:
        raise InvalidRequest(f"the {what}'s signature cannot be used: {exc}") from exc
