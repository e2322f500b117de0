"""Initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-01-01

Migrations are self-contained: they never import ``aiops.store.schema``, whose classes will
change after this revision was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)  # aiops.store.schema.UTCDateTime stores into this
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "detector",
        sa.Column("id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("interval_seconds", sa.Integer(), nullable=False),
        sa.Column("training_window_seconds", sa.Integer(), nullable=True),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("status_changed_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('training', 'running', 'paused')", name=op.f("ck_detector_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detector")),
    )
    op.create_table(
        "detector_datasource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("step_seconds", sa.Integer(), nullable=False),
        sa.Column("lookback_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_detector_datasource_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detector_datasource")),
        sa.UniqueConstraint(
            "detector_id", "name", name=op.f("uq_detector_datasource_detector_id_name")
        ),
    )
    op.create_table(
        "model_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("series_key", sa.Text(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("trained_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_model_state_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_state")),
        sa.UniqueConstraint(
            "detector_id", "series_key", name=op.f("uq_model_state_detector_id_series_key")
        ),
    )
    op.create_table(
        "checkpoint",
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_checkpoint_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("detector_id", name=op.f("pk_checkpoint")),
    )
    op.create_table(
        "event",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("series_key", sa.Text(), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("ts", TS, nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("expected", sa.Double(), nullable=True),
        sa.Column("lower", sa.Double(), nullable=True),
        sa.Column("upper", sa.Double(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("model_kind", sa.String(64), nullable=True),
        sa.Column("params_hash", sa.String(64), nullable=True),
        sa.Column("trained_at", TS, nullable=True),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_event_severity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event")),
        sa.UniqueConstraint(
            "type",
            "detector_id",
            "series_key",
            "ts",
            name=op.f("uq_event_type_detector_id_series_key_ts"),
        ),
        sqlite_autoincrement=True,  # ids are never reused, even after deletes
    )
    op.create_index(op.f("ix_event_detector_id_id"), "event", ["detector_id", "id"])
    op.create_index(op.f("ix_event_type_id"), "event", ["type", "id"])
    op.create_table(
        "collector_status",
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_run_at", TS, nullable=True),
        sa.Column("last_success_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", TS, nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("series", sa.Integer(), nullable=False),
        sa.Column("buffered", sa.Integer(), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.Column("skip_reason", sa.Text(), nullable=True),
        sa.Column("skipped_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "state IN ('ok', 'failed', 'never_run', 'skipped')",
            name=op.f("ck_collector_status_state"),
        ),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_collector_status_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("detector_id", name=op.f("pk_collector_status")),
    )
    op.create_table(
        "log_report",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("templates", JSON, nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_report")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_log_report_source_id"), "log_report", ["source", "id"])
    op.create_table(
        "miner_state",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_miner_state")),
    )
    op.create_table(
        "backfill_window",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("backfill_id", sa.String(64), nullable=False),
        sa.Column("detector_id", sa.String(63), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'done', 'failed')",
            name=op.f("ck_backfill_window_status"),
        ),
        sa.ForeignKeyConstraint(
            ["detector_id"],
            ["detector.id"],
            ondelete="CASCADE",
            name=op.f("fk_backfill_window_detector_id_detector"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backfill_window")),
        sa.UniqueConstraint(
            "backfill_id",
            "detector_id",
            "window_start",
            name=op.f("uq_backfill_window_backfill_id_detector_id_window_start"),
        ),
    )


def downgrade() -> None:
    for table in (
        "backfill_window",
        "miner_state",
        "log_report",
        "collector_status",
        "event",
        "checkpoint",
        "model_state",
        "detector_datasource",
        "detector",
    ):
        op.drop_table(table)
