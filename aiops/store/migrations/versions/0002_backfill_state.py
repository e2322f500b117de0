"""Backfill model state: each backfill scores with its own models, never the live ones.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "backfill_state",
        sa.Column("backfill_id", sa.String(64), nullable=False),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("states", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_backfill_state_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("backfill_id", "detector_id", name=op.f("pk_backfill_state")),
    )


def downgrade() -> None:
    op.drop_table("backfill_state")
