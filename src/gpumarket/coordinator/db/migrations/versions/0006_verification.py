"""verification: canonical output digests and the open reputation's counters

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_digest", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("verification", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("sampling_rate", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("premium_micros", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("window_extended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("verifies_job_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("verification_role", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("verification_runs", _JSON, nullable=True))
        batch_op.create_index(batch_op.f("ix_jobs_verification"), ["verification"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_jobs_verifies_job_id"), ["verifies_job_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_verifies_job_id_jobs"),
            "jobs",
            ["verifies_job_id"],
            ["id"],
            ondelete="CASCADE",
        )
    with op.batch_alter_table("providers", schema=None) as batch_op:
        for name in ("reruns_passed", "reruns_failed", "slashes"):
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("uptime_days", _JSON, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("providers", schema=None) as batch_op:
        for name in ("score", "uptime_days", "slashes", "reruns_failed", "reruns_passed"):
            batch_op.drop_column(name)
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_jobs_verifies_job_id_jobs"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_jobs_verifies_job_id"))
        batch_op.drop_index(batch_op.f("ix_jobs_verification"))
        for name in (
            "verification_runs",
            "verification_role",
            "verifies_job_id",
            "window_extended",
            "premium_micros",
            "sampling_rate",
            "verification",
            "output_digest",
        ):
            batch_op.drop_column(name)
