"""Detector claims: which detect-metrics run holds a detector and until when (a lease), so
several workers share the detectors with no window processed twice.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "detector_claim",
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_detector_claim_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("detector_id", name=op.f("pk_detector_claim")),
    )


def downgrade() -> None:
    op.drop_table("detector_claim")
