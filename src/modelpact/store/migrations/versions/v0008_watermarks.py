"""Output protections: each partner's sealed watermark keys, the sealed queries its watermark
marked, and the privacy budget it has spent on each noised grant (in micro-epsilon).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "watermark_keys",
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_watermark_keys_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("partner_id", name=op.f("pk_watermark_keys")),
    )
    op.create_table(
        "watermark_marks",
        sa.Column("id", _Id, nullable=False, autoincrement=True),
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rows >= 1", name=op.f("ck_watermark_marks_rows")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_watermark_marks")),
    )
    op.create_index(
        op.f("ix_watermark_marks_partner_id"), "watermark_marks", ["partner_id"], unique=False
    )
    op.create_table(
        "privacy_spend",
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("spent >= 0", name=op.f("ck_privacy_spend_spent")),
        sa.PrimaryKeyConstraint("partner_id", "charter_id", "model", name=op.f("pk_privacy_spend")),
    )


def downgrade() -> None:
    op.drop_table("privacy_spend")
    op.drop_index(op.f("ix_watermark_marks_partner_id"), table_name="watermark_marks")
    op.drop_table("watermark_marks")
    op.drop_table("watermark_keys")
