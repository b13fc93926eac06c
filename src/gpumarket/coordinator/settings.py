"""Typed coordinator configuration from ``GPUMARKET_*`` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoordinatorSettings(BaseSettings):
    """Every knob of the coordinator, with defaults that run on one machine out of the box."""

    model_config = SettingsConfigDict(env_prefix="GPUMARKET_", env_file=None, extra="ignore")

    db_url: str = Field(
        default="sqlite:///./gpumarket.db",
        description="SQLAlchemy URL; postgresql+psycopg://user:pw@host/db for several replicas",
    )
    data_dir: Path = Field(default=Path("./gpumarket-data"), description="outputs store")
    admin_token: SecretStr | None = Field(default=None, description="operator credential")
    auto_migrate: bool = Field(default=True, description="run alembic upgrade at start-up")

    challenge_ttl_seconds: int = 300
    heartbeat_interval_seconds: float = 10.0
    provider_offline_after_seconds: float = 45.0
    assignment_ack_seconds: float = 60.0
    lease_seconds: float = 90.0
    max_attempts: int = Field(default=3, ge=1)
    long_poll_max_seconds: float = 30.0
    challenge_window_seconds: int = Field(default=3600, ge=0)
    fee_bps: int = Field(default=250, ge=0, le=1000)
    min_reputation: float = Field(default=0.0, ge=0, le=1)
    min_stake_micros: int = Field(default=0, ge=0)

    max_log_bytes_per_job: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_output_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)

    loop_interval_seconds: float = Field(default=1.0, gt=0)
    match_batch_size: int = Field(default=100, ge=1)
    explain_max_providers: int = Field(default=2000, ge=1)
    utilization_window_seconds: int = Field(default=3600, ge=60)
    background: bool = Field(default=True, description="run the background loops in-process")

    @property
    def outputs_dir(self) -> Path:
        """Where content-addressed output archives live."""
        return self.data_dir / "outputs"
