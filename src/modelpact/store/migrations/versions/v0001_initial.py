"""Initial schema: partners, models and their versions, charters, events.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("public_key", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_partners"),
        sa.UniqueConstraint("public_key", name="uq_partners_public_key"),
        sa.CheckConstraint(
            "status IN ('active', 'suspended', 'revoked')", name="ck_partners_status"
        ),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("served_version", sa.String(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("name", name="pk_models"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", _Id, nullable=False, autoincrement=True),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("artifact_key", sa.String(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("signature_bundle", sa.LargeBinary(), nullable=False),
        sa.Column("card", sa.Text(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.ForeignKeyConstraint(["model"], ["models.name"], name="fk_model_versions_model_models"),
        sa.UniqueConstraint("model", "version", name="uq_model_versions_model_version"),
    )
    op.create_table(
        "charters",
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        _time("applied_at"),
        sa.PrimaryKeyConstraint("charter_id", "version", name="pk_charters"),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name="fk_charters_partner_id_partners"
        ),
        sa.CheckConstraint(
            "status IN ('active', 'superseded', 'terminated')", name="ck_charters_status"
        ),
    )
    op.create_index("ix_charters_partner_id", "charters", ["partner_id"])
    op.create_table(
        "events",
        sa.Column("seq", _Id, nullable=False, autoincrement=False),
        _time("at"),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
    )
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_subject", "events", ["subject"])


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("charters")
    op.drop_table("model_versions")
    op.drop_table("models")
    op.drop_table("partners")
