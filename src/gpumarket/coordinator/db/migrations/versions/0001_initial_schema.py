"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gpumarket.coordinator.db.base

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_challenges",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("expires_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_challenges")),
    )
    op.create_table(
        "developers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_developers")),
        sa.UniqueConstraint("address", name=op.f("uq_developers_address")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_developers_api_key_hash")),
    )
    op.create_table(
        "providers",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("api_key_hash", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("registered_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.Column("last_heartbeat_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("online", sa.Boolean(), nullable=False),
        sa.Column("accepting", sa.Boolean(), nullable=False),
        sa.Column("allows_network", sa.Boolean(), nullable=False),
        sa.Column("banned", sa.Boolean(), nullable=False),
        sa.Column("ban_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.String(length=64), nullable=True),
        sa.Column("cpu_total", sa.Float(), nullable=False),
        sa.Column("memory_total_mb", sa.BigInteger(), nullable=False),
        sa.Column("disk_total_mb", sa.BigInteger(), nullable=False),
        sa.Column("cpu_reserved", sa.Float(), nullable=False),
        sa.Column("memory_reserved_mb", sa.BigInteger(), nullable=False),
        sa.Column("disk_reserved_mb", sa.BigInteger(), nullable=False),
        sa.Column("active_jobs", sa.Integer(), nullable=False),
        sa.Column(
            "gpus",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "telemetry",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("inventory_digest", sa.String(length=64), nullable=True),
        sa.Column("completed_jobs", sa.Integer(), nullable=False),
        sa.Column("failed_jobs", sa.Integer(), nullable=False),
        sa.Column("timed_out_jobs", sa.Integer(), nullable=False),
        sa.Column("disputes_lost", sa.Integer(), nullable=False),
        sa.Column("reputation", sa.Float(), nullable=False),
        sa.Column("stake_micros", sa.BigInteger(), nullable=False),
        sa.Column("earned_micros", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_providers")),
        sa.UniqueConstraint("address", name=op.f("uq_providers_address")),
        sa.UniqueConstraint("api_key_hash", name=op.f("uq_providers_api_key_hash")),
    )
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_providers_last_heartbeat_at"), ["last_heartbeat_at"], unique=False
        )

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("owner_id", sa.String(length=40), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "spec",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("spec_hash", sa.String(length=64), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("max_price_micros", sa.BigInteger(), nullable=False),
        sa.Column("escrow_micros", sa.BigInteger(), nullable=False),
        sa.Column("created_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.Column("queue_deadline_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("next_match_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("match_failures", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=40), nullable=True),
        sa.Column(
            "gpu_uuids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("offer_gpu_model", sa.String(length=64), nullable=True),
        sa.Column(
            "excluded_provider_ids",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("price_micros", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("assigned_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("lease_expires_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("started_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("finished_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("usage_seconds", sa.Float(), nullable=True),
        sa.Column("output_hash", sa.String(length=80), nullable=True),
        sa.Column("output_size", sa.BigInteger(), nullable=True),
        sa.Column("outputs_stored", sa.Boolean(), nullable=False),
        sa.Column("amount_micros", sa.BigInteger(), nullable=True),
        sa.Column("fee_micros", sa.BigInteger(), nullable=True),
        sa.Column("committed_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("challenge_deadline", gpumarket.coordinator.db.base.UTCDateTime(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("log_bytes", sa.BigInteger(), nullable=False),
        sa.Column("log_truncated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["developers.id"], name=op.f("fk_jobs_owner_id_developers")
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"], ["providers.id"], name=op.f("fk_jobs_provider_id_providers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("owner_id", "idempotency_key", name="uq_jobs_owner_idempotency"),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index("ix_jobs_owner_created", ["owner_id", "created_at"], unique=False)
        batch_op.create_index("ix_jobs_provider_state", ["provider_id", "state"], unique=False)
        batch_op.create_index(
            "ix_jobs_state_challenge", ["state", "challenge_deadline"], unique=False
        )
        batch_op.create_index("ix_jobs_state_created", ["state", "created_at"], unique=False)
        batch_op.create_index(
            "ix_jobs_state_deadline", ["state", "queue_deadline_at"], unique=False
        )
        batch_op.create_index("ix_jobs_state_lease", ["state", "lease_expires_at"], unique=False)
        batch_op.create_index("ix_jobs_state_next_match", ["state", "next_match_at"], unique=False)

    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("provider_id", sa.String(length=40), nullable=False),
        sa.Column("gpu_model", sa.String(length=64), nullable=False),
        sa.Column("vram_mb", sa.BigInteger(), nullable=False),
        sa.Column("compute_capability", sa.Float(), nullable=False),
        sa.Column("tflops", sa.Float(), nullable=True),
        sa.Column("total_count", sa.Integer(), nullable=False),
        sa.Column("reserved_count", sa.Integer(), nullable=False),
        sa.Column("price_micros", sa.BigInteger(), nullable=False),
        sa.Column("rank_price", sa.Float(), nullable=False),
        sa.Column("region", sa.String(length=64), nullable=True),
        sa.Column("updated_at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_offers_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("provider_id", "gpu_model", name=op.f("uq_offers_provider_id")),
    )
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.create_index("ix_offers_model_price", ["gpu_model", "price_micros"], unique=False)
        batch_op.create_index("ix_offers_model_rank", ["gpu_model", "rank_price"], unique=False)
        batch_op.create_index("ix_offers_price", ["price_micros"], unique=False)
        batch_op.create_index(batch_op.f("ix_offers_provider_id"), ["provider_id"], unique=False)
        batch_op.create_index("ix_offers_rank", ["rank_price"], unique=False)

    op.create_table(
        "gpu_reservations",
        sa.Column("provider_id", sa.String(length=40), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=128), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.id"],
            name=op.f("fk_gpu_reservations_job_id_jobs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_gpu_reservations_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("provider_id", "gpu_uuid", name=op.f("pk_gpu_reservations")),
    )
    with op.batch_alter_table("gpu_reservations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gpu_reservations_job_id"), ["job_id"], unique=False)

    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_job_events_job_id"), ["job_id"], unique=False)

    op.create_table(
        "job_logs",
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=8), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_logs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "seq", name=op.f("pk_job_logs")),
    )


def downgrade() -> None:
    op.drop_table("job_logs")
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_job_events_job_id"))

    op.drop_table("job_events")
    with op.batch_alter_table("gpu_reservations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gpu_reservations_job_id"))

    op.drop_table("gpu_reservations")
    with op.batch_alter_table("offers", schema=None) as batch_op:
        batch_op.drop_index("ix_offers_rank")
        batch_op.drop_index(batch_op.f("ix_offers_provider_id"))
        batch_op.drop_index("ix_offers_price")
        batch_op.drop_index("ix_offers_model_rank")
        batch_op.drop_index("ix_offers_model_price")

    op.drop_table("offers")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_state_next_match")
        batch_op.drop_index("ix_jobs_state_lease")
        batch_op.drop_index("ix_jobs_state_deadline")
        batch_op.drop_index("ix_jobs_state_created")
        batch_op.drop_index("ix_jobs_state_challenge")
        batch_op.drop_index("ix_jobs_provider_state")
        batch_op.drop_index("ix_jobs_owner_created")

    op.drop_table("jobs")
    with op.batch_alter_table("providers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_providers_last_heartbeat_at"))

    op.drop_table("providers")
    op.drop_table("developers")
    op.drop_table("auth_challenges")
