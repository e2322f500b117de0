"""Mark events found by a backfill, so the live feed and alerts can leave them out.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("backfill_id", sa.String(64), nullable=True))
        batch.create_index(op.f("ix_event_backfill_id"), ["backfill_id"])


def downgrade() -> None:
    with op.batch_alter_table("event") as batch:
        batch.drop_index(op.f("ix_event_backfill_id"))
        batch.drop_column("backfill_id")
