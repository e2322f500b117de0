"""Collector status: the last warning about a collection (e.g. no samples at any step although
the series has samples in the window), and when it was given.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("collector_status") as batch:
        batch.add_column(sa.Column("last_warning", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_warning_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collector_status") as batch:
        batch.drop_column("last_warning_at")
        batch.drop_column("last_warning")
