"""The provider's TOML configuration (every key can also be given as a CLI flag).

Example ``provider.toml``::

    coordinator_url = "https://coordinator.example.com"
    wallet = "~/.gpumarket/provider-wallet.json"
    region = "eu"
    max_concurrent_jobs = 4
    allow_network = false
    allowed_images = ["docker.io/pytorch/", "python:"]   # or ["*"]
    cpu_price_per_hour = "0.05"
    container_labels = { "com.example.owner" = "lab-1" }  # optional, on every job container

    [prices]                                           # per GPU-hour, by model
    RTX4090 = "0.45"
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gpumarket.errors import InvalidRequest
from gpumarket.protocol import Money, normalize_gpu_model

DEFAULT_HOME = Path("~/.gpumarket")
RESERVED_LABELS = frozenset({"gpumarket.job", "gpumarket.provider"})
"""The container labels the daemon sets itself (the executor's LABEL_JOB and LABEL_PROVIDER)."""


class ProviderConfig(BaseModel):
    """What a GPU owner decides: where to connect, what to charge, what to allow."""

    model_config = ConfigDict(extra="forbid")

    coordinator_url: str = "http://127.0.0.1:8000"
    wallet: Path = DEFAULT_HOME / "provider-wallet.json"
    wallet_password_env: str = "GPUMARKET_WALLET_PASSWORD"  # noqa: S105 - a variable name
    region: str | None = None
    prices: dict[str, Money] = Field(default_factory=dict, description="per GPU-hour by model")
    cpu_price_per_hour: Money | None = Field(
        default=Decimal("0.05"), description="CPU-only jobs; empty: none"
    )
    max_concurrent_jobs: int = Field(default=4, ge=1, le=256)
    allowed_images: list[str] = Field(default_factory=lambda: ["*"])
    allow_network: bool = False
    work_dir: Path = DEFAULT_HOME / "work"
    max_log_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_output_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    tmp_size_mb: int = Field(default=1024, ge=16)
    disk_check_seconds: float = Field(
        default=2,
        gt=0,
        le=60,
        description="how often a running job's written bytes are measured against its "
        "resources.disk (more often as it nears the limit)",
    )
    stop_grace_seconds: float = Field(default=10, ge=0)
    shutdown_grace_seconds: float = Field(default=60, ge=0)
    poll_wait_seconds: float = Field(default=25, ge=0)
    container_labels: dict[str, str] = Field(
        default_factory=dict,
        description="extra Docker labels on every job container this daemon starts (say, "
        "to tell its containers from others on a shared engine); the gpumarket.* labels "
        "that name the job and the provider are the daemon's own and cannot be set here",
    )
    benchmark_image: str | None = Field(
        default=None,
        description="run the matmul benchmark in this image at start and advertise the "
        "measured TFLOPS (which matching ranks by); none: theoretical figures only",
    )

    @field_validator("prices")
    @classmethod
    def _normalise_models(cls, prices: dict[str, Decimal]) -> dict[str, Decimal]:
        return {normalize_gpu_model(model): price for model, price in prices.items()}

    @field_validator("container_labels")
    @classmethod
    def _labels_are_not_ours(cls, labels: dict[str, str]) -> dict[str, str]:
        # a restarted daemon finds its containers by these labels: they stay its own
        taken = sorted(key for key in labels if key in RESERVED_LABELS)
        if taken:
            raise ValueError(f"{', '.join(taken)} is set by the daemon itself")
        return labels

    def resolved(self) -> ProviderConfig:
        """The same config with ``~`` expanded in paths."""
        return self.model_copy(
            update={"wallet": self.wallet.expanduser(), "work_dir": self.work_dir.expanduser()}
        )

    def image_allowed(self, image: str) -> bool:
        """Whether the image policy admits ``image`` (``*`` admits everything; otherwise a
        prefix of the reference, e.g. ``ghcr.io/acme/`` or ``python:``)."""
        return any(rule == "*" or image.startswith(rule) for rule in self.allowed_images)


def load_config(path: Path | None, **overrides: object) -> ProviderConfig:
    """Read ``path`` (if given) and apply non-None ``overrides``; errors name the bad key."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.expanduser().read_text())
        except FileNotFoundError as exc:
            raise InvalidRequest(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise InvalidRequest(f"config file {path} is not valid TOML: {exc}") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ProviderConfig.model_validate(data).resolved()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidRequest(f"bad provider configuration: {problems}") from exc
