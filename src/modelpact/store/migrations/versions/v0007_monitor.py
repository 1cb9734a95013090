"""The extraction monitor: training summaries, detector state and responses in force.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

``training_summaries`` holds the training-distribution summary registered with a model
version; ``monitor_states`` the detectors' state per partner, charter and model, so it
survives a restart; ``protections`` the response in force (throttle, harden, ...) after
monitor alarms.  Writes to ``protections`` move the state counter: a gateway applies a
new response from the very next request.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["downgrade", "upgrade"]

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "training_summaries",
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model", "version"],
            ["model_versions.model", "model_versions.version"],
            name=op.f("fk_training_summaries_model_version_model_versions"),
        ),
        sa.PrimaryKeyConstraint("model", "version", name=op.f("pk_training_summaries")),
    )
    op.create_table(
        "monitor_states",
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "partner_id", "charter_id", "model", name=op.f("pk_monitor_states")
        ),
    )
    op.create_table(
        "protections",
        sa.Column("partner_id", sa.String(), nullable=False),
        sa.Column("charter_id", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("response", sa.String(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.CheckConstraint("step >= 1", name=op.f("ck_protections_step")),
        sa.CheckConstraint(
            "response IN ('alert', 'throttle', 'harden', 'suspend', 'revoke')",
            name=op.f("ck_protections_response"),
        ),
        sa.PrimaryKeyConstraint("partner_id", "charter_id", "model", name=op.f("pk_protections")),
    )


def downgrade() -> None:
    op.drop_table("protections")
    op.drop_table("monitor_states")
    op.drop_table("training_summaries")
