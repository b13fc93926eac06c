"""ORM tables of the coordinator. Indexes are chosen for the hot paths: matching walks
``offers`` in rank order, loops scan jobs by (state, deadline), listings by (owner, created)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gpumarket.coordinator.db.base import Base, JSONType, NullableJSONType, UTCDateTime, utcnow


class AuthChallenge(Base):
    """A one-time message a wallet must sign to register; used once, then dead."""

    __tablename__ = "auth_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    address: Mapped[str] = mapped_column(String(42))
    role: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class Developer(Base):
    """A developer account: a wallet address with a hashed API key."""

    __tablename__ = "developers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Provider(Base):
    """A provider: payout wallet, host capacity, what is reserved, health and reputation."""

    __tablename__ = "providers"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    region: Mapped[str | None] = mapped_column(String(64))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    accepting: Mapped[bool] = mapped_column(Boolean, default=True)
    allows_network: Mapped[bool] = mapped_column(Boolean, default=False)
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    ban_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[str | None] = mapped_column(String(64))

    cpu_total: Mapped[float] = mapped_column(Float, default=0)
    memory_total_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_total_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    cpu_reserved: Mapped[float] = mapped_column(Float, default=0)
    memory_reserved_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    disk_reserved_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    active_jobs: Mapped[int] = mapped_column(Integer, default=0)

    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    telemetry: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    inventory_digest: Mapped[str | None] = mapped_column(String(64))

    completed_jobs: Mapped[int] = mapped_column(Integer, default=0)
    failed_jobs: Mapped[int] = mapped_column(Integer, default=0)
    timed_out_jobs: Mapped[int] = mapped_column(Integer, default=0)
    disputes_lost: Mapped[int] = mapped_column(Integer, default=0)
    reruns_passed: Mapped[int] = mapped_column(Integer, default=0)
    reruns_failed: Mapped[int] = mapped_column(Integer, default=0)
    slashes: Mapped[int] = mapped_column(Integer, default=0)
    # Seconds online per UTC day over the last 31 days ({"2026-12-01": 86400, ...}).
    uptime_days: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    # The public score (services/reputation.py); None while the provider is new.
    score: Mapped[float | None] = mapped_column(Float)
    # What matching ranks by: the score, or the newcomer's exploration value.
    reputation: Mapped[float] = mapped_column(Float, default=0.5)
    stake_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    earned_micros: Mapped[int] = mapped_column(BigInteger, default=0)


class OfferRow(Base):
    """A provider's GPUs of one model (or its CPU capacity) at one price.

    ``rank_price`` is the price per benchmarked TFLOPS: matching walks the index on it in order
    and stops at the first offer that passes every filter, so it never scans the whole table.
    """

    __tablename__ = "offers"
    __table_args__ = (
        UniqueConstraint("provider_id", "gpu_model"),
        Index("ix_offers_model_rank", "gpu_model", "rank_price"),
        Index("ix_offers_rank", "rank_price"),
        Index("ix_offers_model_price", "gpu_model", "price_micros"),
        Index("ix_offers_price", "price_micros"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), index=True
    )
    gpu_model: Mapped[str] = mapped_column(String(64))
    vram_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    compute_capability: Mapped[float] = mapped_column(Float, default=0)
    tflops: Mapped[float | None] = mapped_column(Float)
    total_count: Mapped[int] = mapped_column(Integer, default=0)
    reserved_count: Mapped[int] = mapped_column(Integer, default=0)
    price_micros: Mapped[int] = mapped_column(BigInteger)
    rank_price: Mapped[float] = mapped_column(Float)
    region: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GpuReservation(Base):
    """A GPU held by a job; the primary key makes double-booking impossible in the database."""

    __tablename__ = "gpu_reservations"

    provider_id: Mapped[str] = mapped_column(
        ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True
    )
    gpu_uuid: Mapped[str] = mapped_column(String(128), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)


class Job(Base):
    """A job and everything the lifecycle has recorded about it."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_state_created", "state", "created_at"),
        Index("ix_jobs_state_next_match", "state", "next_match_at"),
        Index("ix_jobs_state_deadline", "state", "queue_deadline_at"),
        Index("ix_jobs_state_challenge", "state", "challenge_deadline"),
        Index("ix_jobs_state_lease", "state", "lease_expires_at"),
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
        Index("ix_jobs_provider_state", "provider_id", "state"),
        UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("developers.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    spec_hash: Mapped[str] = mapped_column(String(64))
    gpu_count: Mapped[int] = mapped_column(Integer, default=0)
    max_price_micros: Mapped[int] = mapped_column(BigInteger)
    escrow_micros: Mapped[int] = mapped_column(BigInteger)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    queue_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_match_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    match_failures: Mapped[int] = mapped_column(Integer, default=0)

    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"))
    gpu_uuids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    offer_gpu_model: Mapped[str | None] = mapped_column(String(64))
    excluded_provider_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    price_micros: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    exit_code: Mapped[int | None] = mapped_column(Integer)
    usage_seconds: Mapped[float | None] = mapped_column(Float)
    output_hash: Mapped[str | None] = mapped_column(String(80))
    output_size: Mapped[int | None] = mapped_column(BigInteger)
    # The canonical manifest digest of the stored archive (computed by the coordinator from
    # the upload): what the result's claim must name and what runs are compared by.
    output_digest: Mapped[str | None] = mapped_column(String(80))
    outputs_stored: Mapped[bool] = mapped_column(Boolean, default=False)
    amount_micros: Mapped[int | None] = mapped_column(BigInteger)
    fee_micros: Mapped[int | None] = mapped_column(BigInteger)
    committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    challenge_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failure_reason: Mapped[str | None] = mapped_column(Text)
    # Verification by re-execution (services/verification.py). On a sampled job: where it
    # stands, the rate p it was drawn with, the premium it pays, and whether its window was
    # extended for the re-run. On a verification run: the job it re-runs and its role.
    verification: Mapped[str | None] = mapped_column(String(16), index=True)
    sampling_rate: Mapped[float | None] = mapped_column(Float)
    premium_micros: Mapped[int | None] = mapped_column(BigInteger)
    window_extended: Mapped[bool] = mapped_column(Boolean, default=False)
    verifies_job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), index=True
    )
    verification_role: Mapped[str | None] = mapped_column(String(16))
    verification_runs: Mapped[list[str] | None] = mapped_column(JSONType)
    # A known-answer run: the one provider it may go to (the provider it checks).
    pinned_provider_id: Mapped[str | None] = mapped_column(String(40), index=True)
    # While ASSIGNED: the provider's last PreparationProgress (its image pull).
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONType)

    log_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    log_truncated: Mapped[bool] = mapped_column(Boolean, default=False)

    # On-chain settlement (all NULL when the coordinator keeps accounts off-chain).
    chain_job_id: Mapped[str | None] = mapped_column(String(66), unique=True)
    chain_txs: Mapped[list[ChainTx]] = relationship(order_by="ChainTx.id", lazy="select")
    chain_state: Mapped[str | None] = mapped_column(String(16), index=True)
    payment_request: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    order_signature: Mapped[str | None] = mapped_column(String(132))
    pending_result: Mapped[dict[str, Any] | None] = mapped_column(NullableJSONType)
    chain_window_end: Mapped[int | None] = mapped_column(BigInteger)
    paid_micros: Mapped[int | None] = mapped_column(BigInteger)
    burned_micros: Mapped[int | None] = mapped_column(BigInteger)
    refund_micros: Mapped[int | None] = mapped_column(BigInteger)


class ChainTx(Base):
    """One on-chain transaction of a job, for the job view's receipt (a batch transaction has
    one row per job it touched)."""

    __tablename__ = "chain_txs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(16))
    tx_hash: Mapped[str] = mapped_column(String(66))
    block: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ChainCursor(Base):
    """How far the coordinator has read the market's events (the next block to read)."""

    __tablename__ = "chain_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_block: Mapped[int] = mapped_column(BigInteger)


class JobEventRow(Base):
    """One transition of a job, with when and why (the job's audit trail). ``kind`` says
    which state machine moved: the lifecycle's (``job``) or the settlement's (``chain``), whose
    steps also name their transaction, block and gas."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8), default="job", server_default="job")
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    tx_hash: Mapped[str | None] = mapped_column(String(66))
    block: Mapped[int | None] = mapped_column(BigInteger)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxRow(Base):
    """One chain transaction, signed and recorded before it is sent (see
    :mod:`gpumarket.settlement.outbox`); shared by every coordinator replica."""

    __tablename__ = "outbox"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    sender: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[str] = mapped_column(String(42))
    data: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(String(66))
    status: Mapped[str] = mapped_column(String(16), index=True)
    gas_used: Mapped[int | None] = mapped_column(BigInteger)
    block: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (UniqueConstraint("sender", "nonce", name="uq_outbox_sender_nonce"),)


class OutboxSender(Base):
    """The next nonce of one sending account. Its row is locked while a nonce is taken, so
    replicas sharing the key take nonces one at a time, with no gap and no repeat."""

    __tablename__ = "outbox_senders"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger, default=0)


class Lease(Base):
    """A named duty held by one replica until ``expires_at`` (the chain sender's loops): the
    holder renews it; when it dies, another replica takes the duty over once it expires."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobLogRow(Base):
    """One chunk of job output; (job_id, seq) makes re-sent chunks harmless."""

    __tablename__ = "job_logs"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(8))
    data: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
