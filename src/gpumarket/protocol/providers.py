"""What providers tell the coordinator (heartbeats, offers, results) and what they are given."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator

from gpumarket.protocol.base import (
    INT32_MAX,
    INT64_MAX,
    MAX_CPUS,
    MAX_SIZE_MB,
    MAX_TFLOPS,
    MAX_USAGE_SECONDS,
    Price,
    ResponseModel,
    WireModel,
)
from gpumarket.protocol.gpu import GpuInfo, GpuTelemetry, normalize_gpu_model
from gpumarket.protocol.jobs import JobSpec
from gpumarket.protocol.settlement import ResultClaim

CPU_OFFER = "CPU"
"""The offer key for CPU-only work (a provider with no GPU still serves CPU jobs)."""

MAX_LOG_CHUNK_BYTES = 256 * 1024


class HostResources(WireModel):
    """The host capacity a provider puts on the market (not what is free: the coordinator
    subtracts what it has reserved)."""

    cpu_count: float = Field(ge=0, le=MAX_CPUS)
    memory_mb: int = Field(ge=0, le=MAX_SIZE_MB)
    disk_mb: int = Field(ge=0, le=MAX_SIZE_MB)
    cpu_tflops: float | None = Field(
        default=None, ge=0, le=MAX_TFLOPS, description="benchmarked CPU figure"
    )


class OfferAsk(WireModel):
    """A provider's price for one GPU model (or ``"CPU"`` for CPU-only jobs)."""

    gpu_model: str = Field(min_length=1, max_length=64)
    price_per_hour: Price = Field(description="per GPU-hour; per job-hour for CPU")

    @field_validator("gpu_model")
    @classmethod
    def _normalize(cls, model: str) -> str:
        return CPU_OFFER if model.upper() == CPU_OFFER else normalize_gpu_model(model)


class Heartbeat(WireModel):
    """Sent every few seconds: inventory, live telemetry, offers and the jobs still running."""

    gpus: list[GpuInfo] = Field(default_factory=list, max_length=64)
    telemetry: list[GpuTelemetry] = Field(default_factory=list, max_length=64)
    resources: HostResources
    offers: list[OfferAsk] = Field(default_factory=list, max_length=64)
    region: str | None = Field(default=None, max_length=64)
    running_jobs: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=1024
    )
    version: str | None = Field(default=None, max_length=64)
    accepting: bool = Field(default=True, description="False while draining for shutdown")
    allows_network: bool = Field(
        default=False, description="whether jobs that ask for network access may have it"
    )


class HeartbeatAck(ResponseModel):
    """The coordinator's answer to a heartbeat: jobs to cancel and when to beat next."""

    provider_id: str
    cancel_jobs: list[str] = Field(default_factory=list)
    next_heartbeat_seconds: float
    banned: bool = False
    held_back: list[str] = Field(
        default_factory=list,
        description="why no job is matched to this provider now, that it can change (its free "
        "stake, its reputation); empty while it gets jobs",
    )


class Offer(ResponseModel):
    """One line of the public offer book: a provider's GPUs of one model and their price."""

    provider_id: str
    gpu_model: str
    vram_mb: int
    tflops: float | None
    total_count: int
    free_count: int
    price_per_hour: Decimal
    region: str | None
    reputation: float = Field(
        description="what matching ranks by: the score, or 0.5 for a newcomer"
    )
    score: float | None = Field(default=None, description="the public score; None: a newcomer")


class ProviderProfile(ResponseModel):
    """A provider's public record (no credential needed): the counters behind its score, the
    score itself (the formula is in docs/protocol.md) and the sampling rate it gets."""

    id: str
    address: str = Field(description="its payout wallet, where its stake and earnings are")
    region: str | None
    online: bool
    registered_at: datetime
    gpu_models: dict[str, int] = Field(description="GPU model -> how many the host has")
    completed_jobs: int
    failed_jobs: int
    timed_out_jobs: int
    reruns_passed: int
    reruns_failed: int
    disputes_lost: int
    slashes: int
    uptime_30d: float = Field(description="share of the last 30 days online, 0 to 1")
    newcomer: bool = Field(description="too few finished jobs for a score yet")
    score: float | None = Field(description="0 to 1; None while a newcomer")
    sampling_rate: float = Field(
        description="the probability that a sampled job it runs is re-run by another provider"
    )


class ProviderView(ResponseModel):
    """A provider as the operator (or the provider itself) sees it: inventory, telemetry,
    capacity, reputation counters and earnings."""

    id: str
    address: str
    region: str | None
    online: bool
    accepting: bool
    allows_network: bool
    banned: bool
    ban_reason: str | None
    version: str | None
    registered_at: datetime
    last_heartbeat_at: datetime | None
    gpus: list[dict[str, Any]]
    telemetry: list[dict[str, Any]]
    cpu_total: float
    cpu_reserved: float
    memory_total_mb: int
    memory_reserved_mb: int
    disk_total_mb: int
    disk_reserved_mb: int
    active_jobs: int
    completed_jobs: int
    failed_jobs: int
    timed_out_jobs: int
    disputes_lost: int
    reruns_passed: int = 0
    reruns_failed: int = 0
    slashes: int = 0
    score: float | None = None
    reputation: float
    earned: Decimal


class Assignment(ResponseModel):
    """A job handed to a provider, with the GPUs reserved for it and the agreed price."""

    job_id: str
    spec: JobSpec
    gpu_uuids: list[str]
    price_per_hour: Decimal
    attempt: int
    lease_expires_at: datetime
    chain_job_id: str | None = Field(default=None, description="the job's id in the contract")
    max_payment_micros: int = Field(default=0, description="the escrow: no claim may exceed it")


class AssignmentBatch(ResponseModel):
    """What a long-poll returns: zero or more assignments."""

    assignments: list[Assignment]


class StartedReport(WireModel):
    """The provider acknowledges an assignment: its container is starting."""

    container_id: str | None = Field(default=None, max_length=128)


class LogStream(StrEnum):
    """Which container stream a log chunk came from."""

    STDOUT = "stdout"
    STDERR = "stderr"
    SYSTEM = "system"


class LogChunk(WireModel):
    """A batch of job output; ``seq`` makes re-sending after an outage idempotent."""

    seq: int = Field(ge=0, le=INT32_MAX)
    stream: LogStream = LogStream.STDOUT
    data: str = Field(max_length=MAX_LOG_CHUNK_BYTES)


class LogAppend(WireModel):
    """Several chunks in one request, in order."""

    chunks: list[LogChunk] = Field(min_length=1, max_length=1024)


class LogAppendAck(ResponseModel):
    """How many chunks were new, and whether the job's log cap has been reached."""

    accepted: int
    duplicates: int
    truncated: bool
    next_seq: int


class ResultReport(WireModel):
    """The provider's account of a finished run."""

    exit_code: int = Field(ge=-(2**31), le=INT32_MAX)
    usage_seconds: float = Field(ge=0, le=MAX_USAGE_SECONDS)
    output_hash: str | None = Field(default=None, pattern=r"^sha256:[0-9a-f]{64}$")
    output_size: int | None = Field(default=None, ge=0, le=INT64_MAX)
    output_digest: str | None = Field(
        default=None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="the canonical manifest digest of the outputs (what runs are compared "
        "by and the claim names); must be the uploaded archive's",
    )
    claim: ResultClaim | None = Field(
        default=None, description="the signed amount; required when the market settles on-chain"
    )


class FailureReport(WireModel):
    """The provider could not run the job; ``retryable`` sends it back to the queue."""

    reason: str = Field(min_length=1, max_length=2000)
    retryable: bool = False
    busy: bool = Field(
        default=False,
        description="the provider had no free slot or GPU for it: not a fault (the job is "
        "offered again, this provider included, and the attempt is not counted)",
    )


class OutputUploadAck(ResponseModel):
    """Where the uploaded outputs were stored (content-addressed)."""

    output_hash: str
    output_size: int
    output_digest: str | None = Field(
        default=None, description="the canonical manifest digest the result must name"
    )
