"""Per-detector transform steps (``detector.transforms``, a JSON list of
``aiops.transform`` steps) and the flows' own metrics (``flow_metric``: counters the flows add
to and gauges they set, one row per name and label set, read by the API's ``/metrics``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("detector") as batch:
        batch.add_column(sa.Column("transforms", JSON, nullable=True))
    op.create_table(
        "flow_metric",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("labels_key", sa.String(500), nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('counter', 'gauge')", name=op.f("ck_flow_metric_kind")),
        sa.PrimaryKeyConstraint("name", "labels_key", name=op.f("pk_flow_metric")),
    )


def downgrade() -> None:
    op.drop_table("flow_metric")
    with op.batch_alter_table("detector") as batch:
        batch.drop_column("transforms")
