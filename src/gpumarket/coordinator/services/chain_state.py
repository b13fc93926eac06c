"""The settlement state machine: where a job's money stands on the ledger.

It runs beside the lifecycle's (``lifecycle.ALLOWED``): a job can be CANCELLED in its lifecycle
while its money is still ``claim_due`` (the provider's claim for the seconds it ran) and then
``committed`` and ``settled``. Every change is :func:`advance`: idempotent, checked against
:data:`ALLOWED`, and recorded in ``job_events`` (kind ``chain``) with the transaction, block
and gas that made it, so ``gpumarket job events`` shows the money steps beside the others.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from gpumarket.coordinator.db.base import utcnow
from gpumarket.coordinator.db.models import ChainTx, Job, JobEventRow
from gpumarket.coordinator.services.settlement import StepReceipt
from gpumarket.errors import InvalidTransition
from gpumarket.protocol import ChainState

log = logging.getLogger(__name__)

C = ChainState
ALLOWED: dict[ChainState | None, frozenset[ChainState]] = {
    None: frozenset({C.AWAITING_ORDER}),
    C.AWAITING_ORDER: frozenset({C.OPEN, C.VOID}),
    C.VOID: frozenset({C.CANCELLING}),  # an order opened after all: the escrow goes back
    C.OPEN: frozenset({C.COMMITTED, C.CLAIM_DUE, C.CANCELLING, C.CANCELLED}),
    C.CLAIM_DUE: frozenset({C.COMMITTED, C.CANCELLING, C.CANCELLED}),
    C.CANCELLING: frozenset({C.CANCELLED}),
    C.COMMITTED: frozenset({C.SETTLED, C.DISPUTED}),
    C.DISPUTED: frozenset({C.SETTLED, C.REFUNDED}),
    C.SETTLED: frozenset(),
    C.REFUNDED: frozenset(),
    C.CANCELLED: frozenset(),
}

STEP_NAMES: dict[ChainState, str] = {
    C.OPEN: "open",
    C.COMMITTED: "commit",
    C.DISPUTED: "challenge",
    C.SETTLED: "finalize",
    C.REFUNDED: "resolve",
    C.CANCELLED: "cancel",
    C.CANCELLING: "open",  # a void order opened after all: its open transaction
}
"""The name a transaction that made the move has on the job view's receipt."""


def current(job: Job) -> ChainState | None:
    """The job's settlement state (None before it has one, and always off-chain)."""
    return ChainState(job.chain_state) if job.chain_state else None


def advance(
    session: Session,
    job: Job,
    to: ChainState,
    reason: str,
    receipt: StepReceipt | None = None,
    *,
    step: str | None = None,
) -> bool:
    """Move ``job``'s money to ``to``; False when it is there already (the idempotent no-op).
    A move :data:`ALLOWED` does not list is refused with :class:`InvalidTransition`."""
    here = current(job)
    if here is to:
        return False
    if to not in ALLOWED[here]:
        raise InvalidTransition(
            f"job {job.id}'s money is {here.value if here else 'untracked'}; it cannot become "
            f"{to.value}"
        )
    at = utcnow()
    job.chain_state = to.value
    tx = receipt.tx_hash if receipt else None
    session.add(
        JobEventRow(
            job_id=job.id,
            kind="chain",
            from_state=here.value if here else None,
            to_state=to.value,
            reason=reason,
            tx_hash=tx,
            block=receipt.block if receipt else None,
            gas_used=receipt.gas_used if receipt else None,
            at=at,
        )
    )
    if receipt is not None and tx:
        record_step(session, job, step or STEP_NAMES.get(to, to.value), receipt)
    log.info("job %s: money %s -> %s (%s)", job.id, here.value if here else "-", to.value, reason)
    return True


def record_step(session: Session, job: Job, step: str, receipt: StepReceipt) -> None:
    """A transaction on the job view's receipt, once per (job, transaction)."""
    if receipt.tx_hash is None:
        return
    if any(t.tx_hash == receipt.tx_hash and t.step == step for t in job.chain_txs):
        return
    session.add(
        ChainTx(
            job_id=job.id,
            step=step,
            tx_hash=receipt.tx_hash,
            block=receipt.block,
            gas_used=receipt.gas_used,
            at=utcnow(),
        )
    )
