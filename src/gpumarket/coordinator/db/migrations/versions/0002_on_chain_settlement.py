"""on-chain settlement

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gpumarket.coordinator.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_txs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block", sa.BigInteger(), nullable=True),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("at", gpumarket.coordinator.db.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_chain_txs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chain_txs")),
    )
    with op.batch_alter_table("chain_txs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_txs_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chain_job_id", sa.String(length=66), nullable=True))
        batch_op.add_column(sa.Column("chain_state", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "payment_request",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("order_signature", sa.String(length=132), nullable=True))
        batch_op.add_column(
            sa.Column(
                "pending_result",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch_op.add_column(sa.Column("chain_window_end", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("paid_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("burned_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("refund_micros", sa.BigInteger(), nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_chain_state"), ["chain_state"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_jobs_chain_job_id"), ["chain_job_id"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_jobs_chain_job_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_jobs_chain_state"))
        batch_op.drop_column("refund_micros")
        batch_op.drop_column("burned_micros")
        batch_op.drop_column("paid_micros")
        batch_op.drop_column("chain_window_end")
        batch_op.drop_column("pending_result")
        batch_op.drop_column("order_signature")
        batch_op.drop_column("payment_request")
        batch_op.drop_column("chain_state")
        batch_op.drop_column("chain_job_id")

    with op.batch_alter_table("chain_txs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_txs_job_id"))

    op.drop_table("chain_txs")
