"""Incidents: runs of anomalous points per detector and series, with the grouping's state,
and each detector's ``resolve_after``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
DEFAULT_RESOLVE_AFTER = 20  # aiops.incidents.DEFAULT_RESOLVE_AFTER when this revision was written


def upgrade() -> None:
    with op.batch_alter_table("detector") as batch:
        batch.add_column(
            sa.Column(
                "resolve_after",
                sa.Integer(),
                nullable=False,
                server_default=sa.text(str(DEFAULT_RESOLVE_AFTER)),
            )
        )
    with op.batch_alter_table("detector") as batch:
        batch.alter_column(
            "resolve_after",
            server_default=None,
            existing_type=sa.Integer(),
            existing_nullable=False,
        )
    op.create_table(
        "incident",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("series_key", sa.Text(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("last_anomalous_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("peak_at", TS, nullable=False),
        sa.Column("peak_score", sa.Double(), nullable=True),
        sa.Column("peak_value", sa.Double(), nullable=True),
        sa.Column("peak_expected", sa.Double(), nullable=True),
        sa.Column("peak_lower", sa.Double(), nullable=True),
        sa.Column("peak_upper", sa.Double(), nullable=True),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("model_kind", sa.String(64), nullable=True),
        sa.Column("params_hash", sa.String(64), nullable=True),
        sa.Column("trained_at", TS, nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("backfill_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_incident_severity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident")),
        sa.UniqueConstraint(
            "detector_id",
            "series_key",
            "opened_at",
            name=op.f("uq_incident_detector_id_series_key_opened_at"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_incident_detector_id_id"), "incident", ["detector_id", "id"])
    op.create_index(op.f("ix_incident_resolved_at"), "incident", ["resolved_at"])
    op.create_index(op.f("ix_incident_backfill_id"), "incident", ["backfill_id"])
    op.create_table(
        "incident_state",
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("series_key", sa.Text(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_incident_state_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint(
            "detector_id", "scope", "series_key", name=op.f("pk_incident_state")
        ),
    )


def downgrade() -> None:
    op.drop_table("incident_state")
    op.drop_index(op.f("ix_incident_backfill_id"), table_name="incident")
    op.drop_index(op.f("ix_incident_resolved_at"), table_name="incident")
    op.drop_index(op.f("ix_incident_detector_id_id"), table_name="incident")
    op.drop_table("incident")
    with op.batch_alter_table("detector") as batch:
        batch.drop_column("resolve_after")
