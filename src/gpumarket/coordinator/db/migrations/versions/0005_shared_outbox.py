"""the chain outbox and the sender lease in the shared database; chain steps in job_events

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gpumarket.coordinator.db.base import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("sender", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("target", sa.String(length=42), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gas_used", sa.BigInteger(), nullable=True),
        sa.Column("block", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_outbox")),
        sa.UniqueConstraint("sender", "nonce", name="uq_outbox_sender_nonce"),
    )
    op.create_index(op.f("ix_outbox_status"), "outbox", ["status"], unique=False)
    op.create_table(
        "outbox_senders",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_outbox_senders")),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=8), server_default="job", nullable=False)
        )
        batch_op.add_column(sa.Column("tx_hash", sa.String(length=66), nullable=True))
        batch_op.add_column(sa.Column("block", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("gas_used", sa.BigInteger(), nullable=True))
    # a cleared claim was stored as the JSON value null; it is SQL NULL from now on, so that
    # "no claim recorded" is one IS NULL in every query
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE jobs SET pending_result = NULL WHERE pending_result = 'null'::jsonb")
    else:
        op.execute("UPDATE jobs SET pending_result = NULL WHERE pending_result = 'null'")


def downgrade() -> None:
    with op.batch_alter_table("job_events", schema=None) as batch_op:
        batch_op.drop_column("gas_used")
        batch_op.drop_column("block")
        batch_op.drop_column("tx_hash")
        batch_op.drop_column("kind")
    op.drop_table("leases")
    op.drop_table("outbox_senders")
    op.drop_index(op.f("ix_outbox_status"), table_name="outbox")
    op.drop_table("outbox")
