"""Incident triage: a detector's log source for triage (``detector.triage``, a JSON
``aiops.triage.TriageLink``) and each incident's triage report or error (``incident_triage``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("detector") as batch:
        batch.add_column(sa.Column("triage", JSON, nullable=True))
    op.create_table(
        "incident_triage",
        sa.Column("incident_id", BIG_ID, autoincrement=False, nullable=False),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("report", JSON, nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_incident_triage_status")
        ),
        sa.PrimaryKeyConstraint("incident_id", name=op.f("pk_incident_triage")),
    )


def downgrade() -> None:
    op.drop_table("incident_triage")
    with op.batch_alter_table("detector") as batch:
        batch.drop_column("triage")
