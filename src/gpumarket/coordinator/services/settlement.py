"""The seam between the job lifecycle and money.

The lifecycle calls a :class:`SettlementBackend` at each money-moving transition. The
on-chain backend (:mod:`gpumarket.coordinator.services.chain`) plugs in when the coordinator
is given a chain; without one, :class:`OffchainSettlement` keeps the accounting in the
coordinator's own database only, which is what a single-machine trial needs. A backend raising
:class:`~gpumarket.errors.SettlementError` stops the transition, so the job never claims a
payment state the ledger does not have.
"""

from __future__ import annotations

import logging
from typing import Protocol

from gpumarket.coordinator.db.models import Job
from gpumarket.protocol import JobSpec

log = logging.getLogger(__name__)


class SettlementBackend(Protocol):
    """What the lifecycle needs from a payment ledger; every call is idempotent by job id."""

    name: str
    on_chain: bool

    def prepare_order(self, job: Job, spec: JobSpec) -> None:
        """On-chain only: ask the developer to sign the order that funds ``job``."""

    def open_escrow(self, job: Job) -> None:
        """Lock the job's maximum payment before it is queued (SUBMITTED -> QUEUED)."""

    def commit_result(self, job: Job) -> None:
        """Record the provider's claimed amount and start the challenge window (-> COMMITTED)."""

    def finalize(self, job: Job) -> None:
        """Pay the provider and the fee once the window has passed (COMMITTED -> SETTLED)."""

    def refund(self, job: Job, reason: str) -> None:
        """Return the escrow to the developer (cancel, expiry, failure, provider at fault)."""

    def open_dispute(self, job: Job) -> None:
        """Freeze the payment while a challenge is examined (COMMITTED -> DISPUTED)."""


class OffchainSettlement:
    """Accounting in the coordinator database only: no escrow exists outside it.

    The amounts, fees and timestamps are still computed and recorded on the job by the
    lifecycle, so switching to the on-chain backend changes who holds the money, not the figures.
    """

    name = "offchain"
    on_chain = False

    def prepare_order(self, job: Job, spec: JobSpec) -> None:
        """Never called: off-chain jobs are queued at once, with no order to sign."""

    def open_escrow(self, job: Job) -> None:
        log.debug("offchain escrow opened for %s (max %s micros)", job.id, job.max_price_micros)

    def commit_result(self, job: Job) -> None:
        log.debug("offchain commit for %s: %s micros", job.id, job.amount_micros)

    def finalize(self, job: Job) -> None:
        log.debug("offchain finalize for %s", job.id)

    def refund(self, job: Job, reason: str) -> None:
        log.debug("offchain refund for %s: %s", job.id, reason)

    def open_dispute(self, job: Job) -> None:
        log.debug("offchain dispute for %s", job.id)
