"""A change counter for what a request depends on: partners, charters, models, sessions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-15

``state_changes`` holds one row (``id = 1``) whose ``counter`` every write to
partners, charters, models or session revocations increments in the same
transaction.  A gateway keeps what it read for one counter value and reads
again once the counter moves, so a change made by any process takes effect on
the very next request.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "state_changes",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_state_changes"),
        sa.CheckConstraint("id = 1", name=op.f("ck_state_changes_one_row")),
    )
    op.bulk_insert(table, [{"id": 1, "counter": 0}])


def downgrade() -> None:
    op.drop_table("state_changes")
