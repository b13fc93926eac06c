"""known answers: a verification run pinned to the provider it checks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pinned_provider_id", sa.String(length=40), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_jobs_pinned_provider_id"), ["pinned_provider_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_pinned_provider_id"))
        batch_op.drop_column("pinned_provider_id")
