"""The audit log: entries (Merkle leaves), hashes of complete subtrees, checkpoints.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-15
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# An INTEGER primary key is SQLite's rowid: the entries need no second B-tree.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # No index beyond the primary keys: these tables grow with traffic; fixed-width
    # columns first, so PostgreSQL pads less (audit_nodes keys on (level, idx) all
    # the same).  op.f() marks
    # the check constraint names as final, so they match _schema.py (0001's got the
    # naming convention's prefix twice, e.g. ck_partners_ck_partners_status).
    op.create_table(
        "audit_entries",
        sa.Column("idx", _Id, nullable=False, autoincrement=False),
        sa.Column("appended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_audit_entries"),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_audit_entries_idx")),
        sa.CheckConstraint("length(leaf_hash) = 32", name=op.f("ck_audit_entries_leaf_hash")),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("idx", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("level", sa.SmallInteger(), nullable=False, autoincrement=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name="pk_audit_nodes"),
        sa.CheckConstraint(
            "level BETWEEN 1 AND 62 AND idx >= 0", name=op.f("ck_audit_nodes_position")
        ),
        sa.CheckConstraint("length(hash) = 32", name=op.f("ck_audit_nodes_hash")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", _Id, nullable=False, autoincrement=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name="pk_audit_checkpoints"),
        sa.CheckConstraint("size >= 0", name=op.f("ck_audit_checkpoints_size")),
        sa.CheckConstraint("length(root) = 32", name=op.f("ck_audit_checkpoints_root")),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_nodes")
    op.drop_table("audit_entries")
