"""Partner sessions: one-time challenges, sessions keyed by token hash, daily usage.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

``session_challenges`` holds the nonces a partner signs to open a session; its
``partner_id`` has no foreign key, since a challenge is issued for any
well-formed id and must not tell whether that partner exists.  ``sessions``
keys each session by the SHA-256 of its token (the token is never stored).
``usage`` counts prediction rows and requests per partner, charter and UTC day
(``'YYYY-MM-DD'`` text); the daily quota is enforced by one conditional upsert.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "session_challenges",
        sa.Column("nonce", sa.String(), nullable=False),
        sa.Column("partner_id", sa.String(), nullable=False),
        _time("issued_at"),
        _time("expires_at"),
        _time("used_at", nullable=True),
        sa.PrimaryKeyConstraint("nonce", name="pk_session_challenges"),
    )
    op.create_table(
        "sessions",
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("charter_version", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        _time("issued_at"),
        _time("expires_at"),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("token_hash", name="pk_sessions"),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name="fk_sessions_partner_id_partners"
        ),
        sa.CheckConstraint("length(token_hash) = 32", name=op.f("ck_sessions_token_hash")),
        sa.CheckConstraint("charter_version >= 1", name=op.f("ck_sessions_charter_version")),
    )
    op.create_index("ix_sessions_partner_id", "sessions", ["partner_id"])
    op.create_table(
        "usage",
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "charter_id", "day", name="pk_usage"),
        sa.CheckConstraint("rows >= 0 AND requests >= 0", name=op.f("ck_usage_counts")),
    )


def downgrade() -> None:
    op.drop_table("usage")
    op.drop_index("ix_sessions_partner_id", table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("session_challenges")
