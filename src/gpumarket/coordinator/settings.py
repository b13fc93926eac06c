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

    challenge_ttl_seconds: int = Field(
        default=300, description="how long a sign-in challenge lives"
    )
    heartbeat_interval_seconds: float = Field(default=10.0, description="asked of providers")
    provider_offline_after_seconds: float = Field(
        default=45.0, description="no heartbeat for this long: offline, no new jobs"
    )
    assignment_ack_seconds: float = Field(
        default=60.0, description="an assignment not acknowledged by then goes back to the queue"
    )
    lease_seconds: float = Field(
        default=90.0, description="a running job whose provider is silent this long is requeued"
    )
    max_attempts: int = Field(default=3, ge=1, description="assignments before a job FAILS")
    long_poll_max_seconds: float = Field(default=30.0, description="cap on ?wait= of long-polls")
    challenge_window_seconds: int = Field(
        default=3600, ge=0, description="COMMITTED -> SETTLED after this unless challenged"
    )
    fee_bps: int = Field(default=250, ge=0, le=1000, description="protocol fee, basis points")
    min_reputation: float = Field(default=0.0, ge=0, le=1, description="matching floor")
    min_stake_micros: int = Field(default=0, ge=0, description="matching floor on stake")

    max_log_bytes_per_job: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="log cap per job"
    )
    max_output_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1024, description="output archive cap per job"
    )

    loop_interval_seconds: float = Field(
        default=1.0, gt=0, description="tick of the background pipelines"
    )
    match_batch_size: int = Field(default=100, ge=1, description="jobs per pipeline batch")
    explain_max_providers: int = Field(
        default=2000, ge=1, description="providers examined by a why-no-match explanation"
    )
    utilization_window_seconds: int = Field(
        default=3600, ge=60, description="window of the utilization statistic"
    )
    background: bool = Field(default=True, description="run the background loops in-process")

    @property
    def outputs_dir(self) -> Path:
        """Where content-addressed output archives live."""
        return self.data_dir / "outputs"
