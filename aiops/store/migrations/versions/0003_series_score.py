"""Latest score per detector and series (normal points too), for /metrics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "series_score",
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("series_key", sa.Text(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_series_score_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("detector_id", "series_key", name=op.f("pk_series_score")),
    )


def downgrade() -> None:
    op.drop_table("series_score")
