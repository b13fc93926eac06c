"""What a developer asks for (JobSpec) and what the coordinator says about a job (JobView)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, field_validator, model_validator

from gpumarket.protocol.base import MAX_TFLOPS, Price, ResponseModel, WireModel
from gpumarket.protocol.gpu import normalize_gpu_model
from gpumarket.protocol.settlement import ChainState, ChainStep, PaymentRequest, Receipt
from gpumarket.protocol.states import JobState
from gpumarket.protocol.units import SizeRange, parse_size_mb

MAX_INLINE_INPUT_BYTES = 1024 * 1024
MAX_ARG_CHARS = 32 * 1024
"""The longest single command argument or environment value."""
MAX_ENV_VARS = 256
MAX_COMMAND_ENV_BYTES = 256 * 1024
"""Command and environment together: what a container's exec can take, with room to spare."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$")
_GPU_SHORTHAND = re.compile(r"^[^:]*(:[^:]*){0,2}$")


class GpuRequirement(WireModel):
    """Which GPUs a job needs: how many, how much VRAM, which models, how fast.

    Also accepts the dstack-like shorthand ``"RTX4090:24GB..:1"`` (``MODEL[,MODEL]:VRAM:COUNT``,
    each part optional, for instance ``"A100:2"`` or ``"40GB..:1"``).
    """

    count: int = Field(default=1, ge=1, le=64)
    vram: SizeRange | None = None
    models: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=32)
    min_compute_capability: str | None = Field(default=None, pattern=r"^\d+\.\d+$")
    min_tflops: float | None = Field(default=None, ge=0, le=MAX_TFLOPS)

    @model_validator(mode="before")
    @classmethod
    def _parse_shorthand(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"count": value}
        if not isinstance(value, str):
            return value
        if not _GPU_SHORTHAND.match(value):
            raise ValueError(f"{value!r} is not MODEL:VRAM:COUNT, e.g. 'RTX4090:24GB..:1'")
        parsed: dict[str, Any] = {}
        for part in (p.strip() for p in value.split(":")):
            if not part:
                continue
            if part.isdigit():
                parsed["count"] = int(part)
            elif re.match(r"^[\d.]*\s*[KMGT]i?B?\s*(\.\.|$)|^\.\.", part, re.IGNORECASE):
                parsed["vram"] = part
            else:
                parsed["models"] = [m for m in part.split(",") if m]
        return parsed

    @field_validator("models")
    @classmethod
    def _normalize_models(cls, models: list[str]) -> list[str]:
        normalized = [normalize_gpu_model(m) for m in models]
        if any(not m for m in normalized):
            raise ValueError("a GPU model name cannot be empty")
        return sorted(set(normalized))


class Resources(WireModel):
    """Host resources a job needs; ``gpu`` absent means a CPU-only job."""

    gpu: GpuRequirement | None = None
    cpu: float = Field(default=1.0, gt=0, le=512)
    memory: str = Field(default="2GB", max_length=32, description="RAM, e.g. '8GB'")
    disk: str = Field(default="10GB", max_length=32, description="scratch disk, e.g. '100GB'")

    @field_validator("memory", "disk")
    @classmethod
    def _check_size(cls, value: str) -> str:
        if parse_size_mb(value) <= 0:
            raise ValueError("must be more than zero")
        return value

    @property
    def memory_mb(self) -> int:
        """The RAM requirement in MB."""
        return parse_size_mb(self.memory)

    @property
    def disk_mb(self) -> int:
        """The disk requirement in MB."""
        return parse_size_mb(self.disk)

    @property
    def gpu_count(self) -> int:
        """How many GPUs the job reserves (0 for a CPU job)."""
        return self.gpu.count if self.gpu else 0


class InputFile(WireModel):
    """A file placed read-only under /inputs: small inline content, or a URL to fetch."""

    path: str = Field(min_length=1, max_length=255, description="relative to /inputs")
    content: str | None = Field(
        default=None, max_length=MAX_INLINE_INPUT_BYTES, description="inline UTF-8 text"
    )
    content_base64: str | None = Field(
        default=None,
        max_length=MAX_INLINE_INPUT_BYTES * 4 // 3 + 4,
        description="inline bytes, base64",
    )
    url: AnyHttpUrl | None = Field(default=None, max_length=2048)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _relative_path(cls, path: str) -> str:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError("must be a relative path inside /inputs without '..' or empty parts")
        return path

    @model_validator(mode="after")
    def _one_source(self) -> InputFile:
        sources = [s for s in (self.content, self.content_base64, self.url) if s is not None]
        if len(sources) != 1:
            raise ValueError("give exactly one of content, content_base64 or url")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except binascii.Error as exc:
                raise ValueError("content_base64 is not valid base64") from exc
        return self

    @property
    def inline_size(self) -> int:
        """Bytes this input adds to the request (0 for a URL)."""
        if self.content is not None:
            return len(self.content.encode())
        if self.content_base64 is not None:
            return len(self.content_base64) * 3 // 4
        return 0


class VerificationMode(StrEnum):
    """How a result is checked: trusted unless challenged, sampled re-runs, or n-way redundancy."""

    OPTIMISTIC = "optimistic"
    SAMPLED = "sampled"
    REDUNDANT = "redundant"


class VerificationState(StrEnum):
    """Where a job's verification by re-execution stands (``JobView.verification``)."""

    NOT_DRAWN = "not_drawn"
    """Not drawn for a re-run (drawn with the provider's sampling rate p)."""
    RERUNNING = "rerunning"
    """Other providers run it (a sampled job's re-run, a redundant job's replicas); a
    committed result's challenge window is extended to cover them."""
    PASSED = "passed"
    """The majority of independent runs wrote the same outputs (same digest and exit code);
    for a liveness check: the re-run found the job ran."""
    DISPUTED = "disputed"
    """The runs disagree: the market challenged the result and another run breaks the tie."""
    PROVIDER_WRONG = "provider_wrong"
    """The majority of independent runs disagrees with the provider: slashed, you are refunded."""
    PROVIDER_RIGHT = "provider_right"
    """The majority of independent runs agrees with the provider after a dispute: the result
    stands."""
    LIVENESS_CHECK = "liveness_check"
    """A job that is not deterministic, on a newcomer or suspect provider, drawn for a
    liveness re-run: did it run at all (exit code, outputs, time taken), never a digest."""
    LIVENESS_FAILED = "liveness_failed"
    """The liveness re-run suggests the job did not really run: the provider's score drops;
    nobody is slashed (outputs of such a job may differ), the result stands."""
    NO_MAJORITY = "no_majority"
    """Every run differs: nobody is slashed, the job is marked non-deterministic."""
    EXPIRED = "expired"
    """No re-run finished inside the window: the result stands unverified."""


VERIFICATION_DECIDED = frozenset(
    {
        VerificationState.PROVIDER_WRONG,
        VerificationState.PROVIDER_RIGHT,
        VerificationState.NO_MAJORITY,
    }
)
"""Outcomes of a dispute settled by re-execution: the ruling they imply is applied on the
ledger automatically."""


class JobSpec(WireModel):
    """Everything a provider needs to run a job, and every limit the developer sets on it."""

    name: str | None = Field(default=None, max_length=128)
    image: str = Field(min_length=1, max_length=512, description="container image reference")
    command: list[Annotated[str, Field(max_length=MAX_ARG_CHARS)]] | None = Field(
        default=None, max_length=1024
    )
    env: dict[
        Annotated[str, Field(max_length=256)], Annotated[str, Field(max_length=MAX_ARG_CHARS)]
    ] = Field(default_factory=dict, max_length=MAX_ENV_VARS)
    working_dir: str | None = Field(default=None, max_length=1024)
    resources: Resources = Field(default_factory=Resources)
    max_price_per_hour: Price = Field(
        description="the most the developer pays per GPU-hour (per hour for a CPU-only job)"
    )
    max_duration_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    queue_timeout_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    region: str | None = Field(default=None, max_length=64)
    network: bool = Field(default=False, description="ask for outbound network access")
    inputs: list[InputFile] = Field(default_factory=list, max_length=256)
    output_path: str = Field(default="/outputs", max_length=1024)
    verification: VerificationMode = Field(
        default=VerificationMode.OPTIMISTIC,
        description="optimistic: the result stands unless challenged in its window; sampled: "
        "re-run on another provider with a probability; redundant: run by `redundancy` "
        "providers at once, the majority's result stands (both need deterministic: true)",
    )
    deterministic: bool = Field(
        default=False,
        description="the same inputs always write the same output files: only such a job is "
        "compared byte for byte, and a provider slashed on a mismatch",
    )
    redundancy: int | None = Field(
        default=None,
        ge=2,
        le=5,
        description="verification redundant: how many distinct providers run it, its own run "
        "included (default 3)",
    )
    min_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="only providers whose public reputation score is at least this (new "
        "providers have no score yet and are left out)",
    )

    @field_validator("image")
    @classmethod
    def _image_reference(cls, image: str) -> str:
        if not _IMAGE.match(image):
            raise ValueError(f"{image!r} is not an image reference like 'python:3.12-slim'")
        return image

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        bad = [k for k in env if not _ENV_NAME.match(k)]
        if bad:
            raise ValueError(f"invalid environment variable names: {', '.join(sorted(bad))}")
        return env

    @field_validator("working_dir", "output_path")
    @classmethod
    def _absolute(cls, path: str | None) -> str | None:
        if path is not None and not path.startswith("/"):
            raise ValueError("must be an absolute path inside the container")
        return path

    @model_validator(mode="after")
    def _command_env_fit(self) -> JobSpec:
        size = sum(len(a.encode()) + 1 for a in self.command or [])
        size += sum(len(k.encode()) + len(v.encode()) + 2 for k, v in self.env.items())
        if size > MAX_COMMAND_ENV_BYTES:
            raise ValueError(
                f"command and env total {size} bytes, over the {MAX_COMMAND_ENV_BYTES} byte cap; "
                "pass large data as inputs"
            )
        return self

    @model_validator(mode="after")
    def _verification_fits(self) -> JobSpec:
        mode = self.verification
        if mode is not VerificationMode.OPTIMISTIC and not self.deterministic:
            raise ValueError(
                f"verification {mode.value!r} compares the outputs of independent runs byte for "
                "byte, so it needs deterministic: true (the same inputs write the same files); "
                "a job that is not deterministic can only use verification: optimistic"
            )
        if self.redundancy is not None and mode is not VerificationMode.REDUNDANT:
            raise ValueError("redundancy is the number of runs of verification: redundant only")
        if mode is VerificationMode.REDUNDANT and self.redundancy is None:
            self.redundancy = 3
        return self

    @model_validator(mode="after")
    def _inputs_fit(self) -> JobSpec:
        total = sum(i.inline_size for i in self.inputs)
        if total > MAX_INLINE_INPUT_BYTES:
            raise ValueError(
                f"inline inputs total {total} bytes, over the {MAX_INLINE_INPUT_BYTES} byte cap; "
                "pass large inputs by url"
            )
        paths = [i.path for i in self.inputs]
        if len(paths) != len(set(paths)):
            raise ValueError("two inputs have the same path")
        return self


class ConstraintMiss(ResponseModel):
    """One reason a provider cannot take a job, for the "why no match" explanation."""

    constraint: str
    message: str


class ProviderVerdict(ResponseModel):
    """Whether one provider (offer) can take the spec, and if not, every constraint it fails."""

    provider_id: str
    gpu_model: str | None
    region: str | None
    price_per_hour: Decimal | None = None
    matches: bool
    misses: list[ConstraintMiss] = Field(default_factory=list)


class MatchExplanation(ResponseModel):
    """The dry-run answer: matching offers cheapest-first, and why every other provider fails."""

    matches: list[ProviderVerdict]
    rejections: list[ProviderVerdict]
    summary: dict[str, int] = Field(
        default_factory=dict, description="how many providers fail each constraint"
    )
    providers_considered: int
    truncated: bool = False


class JobEvent(ResponseModel):
    """One recorded transition in a job's history: of its lifecycle (``kind`` job), of its
    money on the settlement ledger (``kind`` chain, with the transaction that moved it), or of
    its verification by re-execution (``kind`` verify: each run, digest and verdict)."""

    kind: Literal["job", "chain", "verify"] = "job"
    from_state: JobState | ChainState | VerificationState | None
    to_state: JobState | ChainState | VerificationState
    reason: str
    at: datetime
    tx_hash: str | None = Field(default=None, description="chain steps: the transaction")
    block: int | None = None
    gas_used: int | None = Field(default=None, description="this job's share of the gas")


class PreparationProgress(WireModel):
    """How far a provider has got preparing an assigned job before its container starts (its
    image pull). Reporting it keeps the assignment alive through a pull longer than the
    acknowledgement deadline, and gives the developer a progress bar instead of a silent
    ASSIGNED."""

    phase: Literal["pulling_image"] = "pulling_image"
    detail: str = Field(default="", max_length=300, description="what is being prepared")
    done_bytes: int = Field(default=0, ge=0)
    total_bytes: int | None = Field(
        default=None, ge=0, description="bytes known so far (grows as layers start); None: unknown"
    )


class JobView(ResponseModel):
    """A job as its owner (or its provider, or an operator) sees it."""

    id: str
    state: JobState
    spec: JobSpec
    owner: str
    provider_id: str | None = None
    gpu_uuids: list[str] = Field(default_factory=list)
    price_per_hour: Decimal | None = None
    attempts: int = 0
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    usage_seconds: float | None = None
    output_hash: str | None = None
    output_size: int | None = None
    output_digest: str | None = Field(
        default=None,
        description="the outputs' canonical manifest digest: what the result's claim names and "
        "runs are compared by (the same for the same files, whatever their times or order)",
    )
    outputs_available: bool = False
    cost: Decimal | None = None
    fee: Decimal | None = None
    challenge_deadline: datetime | None = None
    failure_reason: str | None = None
    why_no_match: MatchExplanation | None = None
    chain_job_id: str | None = Field(default=None, description="the job's id in the contract")
    payment: PaymentRequest | None = Field(
        default=None, description="the order to sign before a SUBMITTED job is queued"
    )
    chain: list[ChainStep] = Field(
        default_factory=list, description="every on-chain transaction of the job, in order"
    )
    receipt: Receipt | None = None
    progress: PreparationProgress | None = Field(
        default=None, description="while ASSIGNED: how far the provider is with the image pull"
    )
    verification: VerificationState | None = Field(
        default=None,
        description="a sampled or redundant job (or one drawn for a liveness check): where its "
        "verification by re-execution stands",
    )
    sampling_rate: float | None = Field(
        default=None,
        description="a sampled job (or one drawn for a liveness check): the probability p it "
        "was drawn with",
    )
    verification_premium: Decimal | None = Field(
        default=None,
        description="a sampled or redundant job: what it pays into the verification pool "
        "(premium x amount, plus the amount once per replica of a redundant job)",
    )
    verifies_job_id: str | None = Field(
        default=None, description="a verification run: the job it re-runs for the market"
    )
    verification_runs: list[str] = Field(
        default_factory=list,
        description="the market's other runs of this job (re-runs, tie-breaks, a redundant "
        "job's replicas, liveness checks), in order",
    )


class JobPage(ResponseModel):
    """One page of a job listing; pass ``next_cursor`` back to get the next."""

    items: list[JobView]
    next_cursor: str | None = None


class LogLine(ResponseModel):
    """One chunk of a job's output as stored and streamed (``seq`` orders it)."""

    seq: int
    stream: str
    data: str
    at: datetime


def spec_hash(spec: JobSpec | dict[str, Any]) -> str:
    """SHA-256 (hex) of a spec's canonical JSON: what a developer's on-chain order commits to,
    computed the same way by the coordinator and the SDK."""
    data = spec.model_dump(mode="json") if isinstance(spec, JobSpec) else spec
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
