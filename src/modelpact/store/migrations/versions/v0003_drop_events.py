"""Drop the events table: administrative events now go to the audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-02-01

The upgrade discards whatever rows ``events`` still holds.  The downgrade
recreates the table empty, exactly as 0001 made it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.drop_index("ix_events_subject", table_name="events")
    op.drop_index("ix_events_kind", table_name="events")
    op.drop_table("events")


def downgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", _Id, nullable=False, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
    )
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_subject", "events", ["subject"])
