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
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3
from web3.logs import DISCARD

from gpumarket.coordinator.db.models import Job
from gpumarket.coordinator.settings import CoordinatorSettings
from gpumarket.errors import (
    Conflict,
    ContractReverted,
    InvalidRequest,
    PaymentRequired,
    SettlementError,
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


@dataclass
class _Claim:
    """A provider's result claim waiting for its commit transaction (group commit)."""

    chain_job_id: str
    result: bytes
    amount_micros: int
    signature: tuple[bytes, bytes]
    done: threading.Event = field(default_factory=threading.Event)
    outcome: TxOutcome | None = None
    error: Exception | None = None


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
        self.deployment = deployment
        self.market = Market(self.w3, deployment.market)
        self.account: LocalAccount = Account.from_key(settings.chain_key.get_secret_value())
        self.sender = TransactionSender(
            self.w3,
            self.account,
            settings.data_dir / "outbox.sqlite",
            self.market.errors,
            receipt_timeout=settings.chain_receipt_timeout_seconds,
        )
        self.commit_batch_size = settings.commit_batch_size
        self._claims: list[_Claim] = []
        self._claims_lock = threading.Lock()
        self._commit_gate = threading.Lock()
        if self.sender.chain_id != deployment.chain_id:
            raise SettlementError(
                f"the RPC endpoint serves chain {self.sender.chain_id}, but the deployment file "
                f"is for chain {deployment.chain_id}"
            )

    # ------------------------------------------------------------ lifecycle hooks (no I/O)

    def open_escrow(self, job: Job) -> None:
        """Nothing to do: the escrow opens when the developer's signed order arrives."""

    def commit_result(self, job: Job) -> None:
        """Nothing to do: the provider's signed claim was committed before the transition."""

    def finalize(self, job: Job) -> None:
        """Nothing to do: the finalizer pipeline pays out with ``finalizeMany``."""

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
        """The market and its current terms, for wallets and the SDK."""
        fee, burn, _share, window, min_stake, bond = self.market.view("currentTerms")
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
        refusal says what the developer must fix."""
        order = Order.from_request(request)
        data = self.market.calldata("openJob", order.as_tuple(), _compact(signature, "order"))
        try:
            return self._send(f"open:{request.chain_job_id}", data)
        except ContractReverted as exc:
            raise _order_refusal(exc) from exc

    def commit(
        self, chain_job_id: str, result: bytes, amount_micros: int, signature: str
    ) -> TxOutcome:
        """Commit the provider's signed claim; the challenge window starts at its block.

        Group commit: while one commit transaction waits for its block, the claims that arrive
        queue, and the next sender takes them all (up to ``commit_batch_size``) into one
        ``commitMany``. A busy market pays about a third of the gas per result; an idle one
        sends each claim at once, as ``commitResult``, and waits for nothing. The contract
        takes a batch all or nothing, so a batch it refuses is sent again claim by claim and
        each provider gets its own answer."""
        claim = _Claim(chain_job_id, result, amount_micros, _compact(signature, "result claim"))
        with self._claims_lock:
            self._claims.append(claim)
        while not claim.done.is_set():
            with self._commit_gate:
                if claim.done.is_set():  # a sender before us took it
                    break
                with self._claims_lock:
                    batch = self._claims[: self.commit_batch_size]
                    del self._claims[: len(batch)]
                self._send_claims(batch)
        if claim.error is not None:
            raise claim.error
        assert claim.outcome is not None
        return claim.outcome

    def _send_claims(self, batch: list[_Claim]) -> None:
        """Commit ``batch``, answering every claim in it (each waiting thread is released)."""
        try:
            if len(batch) > 1 and self._commit_many(batch):
                return
            for claim in batch:
                try:
                    claim.outcome = self._commit_one(claim)
                except Exception as exc:  # handed to the claim's own request
                    claim.error = exc
        except Exception as exc:  # e.g. the chain is unreachable: every claim hears it
            for claim in batch:
                if claim.outcome is None and claim.error is None:
                    claim.error = exc
        finally:
            for claim in batch:
                claim.done.set()

    def _commit_many(self, batch: list[_Claim]) -> bool:
        """One ``commitMany`` for the batch; False when the contract refuses it."""
        ids = [bytes.fromhex(c.chain_job_id[2:]) for c in batch]
        data = self.market.calldata(
            "commitMany",
            ids,
            [c.result for c in batch],
            [c.amount_micros for c in batch],
            [c.signature for c in batch],
        )
        try:
            outcome = self._send("commits:" + Web3.keccak(b"".join(ids)).hex(), data)
        except ContractReverted as exc:
            log.info(
                "a batch of %d claims was refused (%s); sending them one by one", len(batch), exc
            )
            return False
        committed = outcome.events.get("ResultCommitted", [])
        for claim, job_id in zip(batch, ids, strict=True):
            mine = [e for e in committed if bytes(e["jobId"]) == job_id]
            claim.outcome = TxOutcome(outcome.sent, {"ResultCommitted": mine}, len(batch))
        return True

    def _commit_one(self, claim: _Claim) -> TxOutcome:
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

    def finalize_many(self, chain_job_ids: list[str]) -> TxOutcome:
        """Pay out every job in the list whose window has passed (others are skipped)."""
        ids = [bytes.fromhex(i[2:]) for i in chain_job_ids]
        key = "finalize:" + Web3.keccak(b"".join(ids)).hex()
        return self._send(key, self.market.calldata("finalizeMany", ids))

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
