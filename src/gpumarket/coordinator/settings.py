"""Typed coordinator configuration from ``GPUMARKET_*`` environment variables and CLI flags.

A wrong setting is the operator's to fix, found before the coordinator serves anything:
:func:`load_settings` turns every problem into one :class:`~gpumarket.errors.ConfigurationError`
naming the variables, never a traceback nor, later, a client's 4xx.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Self

import limits
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from gpumarket.errors import ConfigurationError

_PRIVATE_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_CHAIN_TRIO = ("chain_rpc_url", "chain_deployment", "chain_key")
_DEPLOYMENT_KEYS = ("chain_id", "token", "market", "block")


class CoordinatorSettings(BaseSettings):
    """Every knob of the coordinator, with defaults that run on one machine out of the box."""

    # a refused value is never echoed: the key, the admin token and the database password are
    # settings too
    model_config = SettingsConfigDict(
        env_prefix="GPUMARKET_", env_file=None, extra="ignore", hide_input_in_errors=True
    )

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
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="assignments that ended in a provider fault before the job FAILS with a "
        "refund (a provider too busy to start it does not count)",
    )
    excluded_retry_seconds: float = Field(
        default=60.0,
        ge=0,
        description="a job a provider failed waits this long for another provider; then, if "
        "none can take it, the providers that failed it are tried again (up to max_attempts)",
    )
    long_poll_max_seconds: float = Field(default=30.0, description="cap on ?wait= of long-polls")
    shutdown_grace_seconds: int = Field(
        default=5,
        ge=1,
        description="on SIGTERM, how long open requests (long-polls, log streams) may go on "
        "before they are closed (providers poll again, the SDK resumes a log stream)",
    )
    challenge_window_seconds: int = Field(
        default=3600, ge=0, description="COMMITTED -> SETTLED after this unless challenged"
    )
    fee_bps: int = Field(default=250, ge=0, le=1000, description="protocol fee, basis points")
    min_reputation: float = Field(default=0.0, ge=0, le=1, description="matching floor")
    explore_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="share of matches that try newcomers first, so a new provider is chosen "
        "and earns a score instead of never being picked",
    )
    sampling_rate_min: float = Field(
        default=0.048,
        ge=0,
        le=1,
        description="the re-run probability p of a sampled job on a provider with a perfect "
        "score (derived from the payoff condition in docs/protocol.md)",
    )
    sampling_rate_new: float = Field(
        default=0.055,
        ge=0,
        le=1,
        description="p for a newcomer; p falls from it to sampling_rate_min as the score rises "
        "(kept low enough that the newcomers explore_share sends them keep the market's "
        "re-run overhead under 5 %: bench/economics.py)",
    )
    sampling_rate_suspect: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="p for a provider with a failed re-run not yet outweighed by "
        "suspect_clear_passes passed ones",
    )
    suspect_clear_passes: int = Field(
        default=20, ge=1, description="passed re-runs that clear one failed re-run's suspicion"
    )
    liveness_sampling: bool = Field(
        default=True,
        description="draw the optimistic jobs that are not deterministic, run by newcomer or "
        "suspect providers, for a liveness re-run elsewhere (with the provider's sampling "
        "rate, paid from the verification pool): a job that did not really run costs the "
        "provider score, never stake",
    )
    known_answer_share: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="share of a suspect provider's work that is a replay of an already "
        "verified job, its known answer compared directly; every newcomer gets its first at "
        "once (one run from the pool per new provider); 0 turns known-answer checks off",
    )
    verification_premium_bps: int = Field(
        default=1000,
        ge=0,
        le=10_000,
        description="what a sampled job pays into the verification pool, in basis points of "
        "its amount (a redundant job pays it too, plus its amount once per replica; on-chain: "
        "the contract's terms set it)",
    )
    verification_queue_seconds: int = Field(
        default=600,
        ge=10,
        description="how long a re-run may wait for a provider; a sampled job's window is "
        "extended by this plus its max_duration_seconds",
    )
    min_stake_micros: int = Field(
        default=0,
        ge=0,
        description="matching floor on free stake (on-chain: defaults to the contract's minimum)",
    )
    stake_multiple: int = Field(
        default=0,
        ge=0,
        le=255,
        description="a result locks max(min_stake_micros, this x its amount) of its provider's "
        "stake; matching asks for that much free stake (on-chain: the contract's terms)",
    )

    max_log_bytes_per_job: int = Field(
        default=16 * 1024 * 1024, ge=1024, description="log cap per job"
    )
    max_output_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=1024, description="output archive cap per job"
    )

    max_request_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=64 * 1024,
        description="cap on a request body (a job spec with its inline inputs); the output "
        "upload has max_output_bytes, a log batch max_log_batch_bytes",
    )
    max_log_batch_bytes: int = Field(
        default=16 * 1024 * 1024, ge=64 * 1024, description="cap on one log append request"
    )
    max_json_depth: int = Field(
        default=32, ge=8, le=256, description="JSON bodies nesting deeper are refused unparsed"
    )
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a connection that does not finish its headers is closed"
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="a request body that stops arriving this long: 408"
    )
    rate_limit_auth: str | None = Field(
        default="60/minute",
        description="sign-in challenges and registrations per client address ('' for none)",
    )
    rate_limit_match: str | None = Field(
        default="300/minute", description="match explanations per client address"
    )
    rate_limit_submit: str | None = Field(
        default="3000/minute", description="job submissions per client address"
    )
    public_metrics: bool = Field(
        default=False,
        description="serve /metrics without the admin token (market figures become public)",
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
    settlement_lease_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="how long the replica running the money loops (finalizer, refunder, event "
        "follower, resume) holds that duty without renewing it; another replica takes over "
        "within this plus a third of it after the holder dies",
    )

    chain_rpc_url: str | None = Field(
        default=None, description="EVM JSON-RPC URL; set it (and the two below) to settle on-chain"
    )
    chain_deployment: Path | None = Field(
        default=None, description="deployment file written by `gpumarket chain deploy|devnet`"
    )
    chain_key: SecretStr | None = Field(
        default=None,
        description="hex private key holding the coordinator (and arbiter) role on the market",
    )
    chain_public_rpc_url: str | None = Field(
        default=None, description="RPC URL told to wallets (defaults to chain_rpc_url)"
    )
    chain_receipt_timeout_seconds: float = Field(
        default=60.0, gt=0, description="wait for a transaction's receipt before retrying later"
    )
    finalize_batch_size: int = Field(
        default=50, ge=1, le=200, description="jobs per finalizeMany transaction"
    )
    chain_batch_size: int = Field(
        default=50,
        ge=1,
        le=200,
        description="orders per openMany and claims per commitMany (those that arrive while "
        "one waits for its block go out together)",
    )

    @field_validator("rate_limit_auth", "rate_limit_match", "rate_limit_submit")
    @classmethod
    def _rate_rule(cls, rule: str | None) -> str | None:
        if rule:
            try:
                limits.parse(rule)
            except ValueError as exc:
                raise ValueError(
                    f"{rule!r} is not a rate such as '60/minute' or '10 per second'"
                ) from exc
        return rule or None

    @field_validator("db_url")
    @classmethod
    def _database_url(cls, url: str) -> str:
        try:
            make_url(url)
        except ArgumentError as exc:
            raise ValueError(  # not echoed: it may hold a password
                "not a database URL gpumarket can use; use sqlite:///path.db or "
                "postgresql+psycopg://user:password@host/dbname"
            ) from exc
        return url

    @model_validator(mode="after")
    def _chain_settings(self) -> Self:
        """On-chain settlement needs its three settings together (with some missing the
        coordinator would settle off-chain, or not start, without saying why), a key shaped
        like one (never echoed) and a deployment file it can read."""
        given = [name for name in _CHAIN_TRIO if getattr(self, name) is not None]
        if given and len(given) < len(_CHAIN_TRIO):
            missing = [f"GPUMARKET_{n.upper()}" for n in _CHAIN_TRIO if n not in given]
            raise ValueError(
                "on-chain settlement needs GPUMARKET_CHAIN_RPC_URL, GPUMARKET_CHAIN_DEPLOYMENT "
                f"and GPUMARKET_CHAIN_KEY together; missing: {', '.join(missing)}"
            )
        if self.chain_key is not None and not _PRIVATE_KEY.fullmatch(
            self.chain_key.get_secret_value()
        ):
            raise ValueError(
                "GPUMARKET_CHAIN_KEY is not a private key: write 64 hex digits (0x optional)"
            )
        if self.chain_deployment is not None:
            _check_deployment(self.chain_deployment)
        return self

    @property
    def chain_configured(self) -> bool:
        """Whether jobs are paid through the market contract."""
        return self.chain_rpc_url is not None

    @property
    def outputs_dir(self) -> Path:
        """Where content-addressed output archives live."""
        return self.data_dir / "outputs"


def _check_deployment(path: Path) -> None:
    """Refuse a deployment file that cannot be read or is not one (``gpumarket chain deploy``
    writes it); the on-chain backend parses the addresses at start-up."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"cannot read the deployment file {path}: {exc}") from exc
    absent = [k for k in _DEPLOYMENT_KEYS if not isinstance(data, dict) or k not in data]
    if absent:
        raise ValueError(
            f"{path} is not a deployment file (no {', '.join(absent)}): write it with "
            "`gpumarket chain deploy` or `gpumarket chain devnet`"
        )


def _problems(exc: ValidationError) -> str:
    """A validation error in one line, each problem under the variable that sets it."""
    lines = []
    for error in exc.errors():
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        loc = error.get("loc") or ()
        lines.append(f"GPUMARKET_{str(loc[0]).upper()}: {message}" if loc else message)
    return "; ".join(lines)


def load_settings(**overrides: Any) -> CoordinatorSettings:
    """The coordinator's settings from ``GPUMARKET_*`` and ``overrides`` (None values are left
    out: an unset flag falls back to the environment), or a
    :class:`~gpumarket.errors.ConfigurationError` that says which variables are wrong and why:
    what every way of starting the coordinator reads its configuration with."""
    try:
        return CoordinatorSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigurationError(f"bad coordinator configuration: {_problems(exc)}") from exc
