"""The tables, as SQLAlchemy Core sees them at run time.

The migrations under ``migrations/versions`` create these tables; they never
import this module, so that an old migration keeps meaning what it meant when it
was written.  A change here needs a new migration (``tests/store`` checks that
the two agree).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "NAMING_CONVENTION",
    "UtcDateTime",
    "audit_checkpoints",
    "audit_entries",
    "audit_subtrees",
    "charters",
    "metadata",
    "model_versions",
    "models",
    "monitor_states",
    "partners",
    "privacy_spend",
    "protections",
    "session_challenges",
    "sessions",
    "state_changes",
    "training_summaries",
    "usage",
    "watermark_keys",
    "watermark_marks",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware datetime stored as UTC: ``timestamptz`` on PostgreSQL, UTC text on SQLite.

    SQLite has no time zones; its values are written in UTC without an offset
    (so they sort in time order) and read back with ``tzinfo=UTC``.  Callers
    check for naive datetimes before they reach this type.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

partners = sa.Table(
    "partners",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("name", sa.String(), nullable=False),
    sa.Column("public_key", sa.String(), nullable=False, unique=True),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('active', 'suspended', 'revoked')", name="status"),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(), primary_key=True),
    sa.Column("served_version", sa.String(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("model", sa.String(), sa.ForeignKey("models.name"), nullable=False),
    sa.Column("version", sa.String(), nullable=False),
    sa.Column("digest", sa.String(), nullable=False),
    sa.Column("size", sa.BigInteger(), nullable=False),
    sa.Column("artifact_key", sa.String(), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
    sa.Column("signature_bundle", sa.LargeBinary(), nullable=False),
    sa.Column("card", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("model", "version"),
)

charters = sa.Table(
    "charters",
    metadata,
    sa.Column("charter_id", sa.String(), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("partner_id", sa.String(), sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("envelope", sa.Text(), nullable=False),
    sa.Column("digest", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("applied_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('active', 'superseded', 'terminated')", name="status"),
)

# The audit log is the one table set that grows with traffic: no index beyond the
# primary keys.  On SQLite an INTEGER primary key is the rowid, so each table is one
# B-tree.  Fixed-width columns come first so PostgreSQL pads less.
#
# audit_subtrees keeps the hash of every complete subtree (level >= 1) under one
# integer, pos = (last << 6) | level, where last = ((idx + 1) << level) - 1 is the
# subtree's last leaf.  The nodes that appending a leaf completes end at that leaf,
# so they sort after every stored node: a commit writes at the B-tree's tail only.
# The 6 level bits leave 57 for the last leaf, so the log holds at most 2**57
# entries.  The repository converts to and from (level, idx) (_sql_audit.py).

audit_entries = sa.Table(
    "audit_entries",
    metadata,
    sa.Column("idx", _Id, primary_key=True, autoincrement=False),
    sa.Column("appended_at", UtcDateTime(), nullable=False),
    sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
    sa.Column("entry", sa.LargeBinary(), nullable=False),
    sa.CheckConstraint("idx >= 0", name="idx"),
    sa.CheckConstraint("length(leaf_hash) = 32", name="leaf_hash"),
)

audit_subtrees = sa.Table(
    "audit_subtrees",
    metadata,
    sa.Column("pos", _Id, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.LargeBinary(), nullable=False),
    sa.CheckConstraint("pos >= 0 AND (pos & 63) BETWEEN 1 AND 62", name="position"),
    sa.CheckConstraint("length(hash) = 32", name="hash"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("size", _Id, primary_key=True, autoincrement=False),
    sa.Column("root", sa.LargeBinary(), nullable=False),
    sa.Column("note", sa.Text(), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("size >= 0", name="size"),
    sa.CheckConstraint("length(root) = 32", name="root"),
)

# Sessions.  A challenge's partner_id has no foreign key: a challenge is issued for any
# well-formed id, so its row must not tell whether that partner exists.  A session is
# keyed by the SHA-256 of its token; the token itself is never stored.

session_challenges = sa.Table(
    "session_challenges",
    metadata,
    sa.Column("nonce", sa.String(), primary_key=True),
    sa.Column("partner_id", sa.String(), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("used_at", UtcDateTime(), nullable=True),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("token_hash", sa.LargeBinary(), primary_key=True),
    sa.Column("partner_id", sa.String(), sa.ForeignKey("partners.id"), nullable=False, index=True),
    sa.Column("charter_id", sa.String(), nullable=False),
    sa.Column("charter_version", sa.Integer(), nullable=False),
    sa.Column("purpose", sa.String(), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("revoked_at", UtcDateTime(), nullable=True),
    sa.CheckConstraint("length(token_hash) = 32", name="token_hash"),
    sa.CheckConstraint("charter_version >= 1", name="charter_version"),
)

# Usage per partner, charter and UTC day; day is 'YYYY-MM-DD' text, so it sorts by date
# and compares the same on both databases.
usage = sa.Table(
    "usage",
    metadata,
    sa.Column("partner_id", sa.String(), primary_key=True),
    sa.Column("charter_id", sa.String(), primary_key=True),
    sa.Column("day", sa.String(), primary_key=True),
    sa.Column("rows", sa.BigInteger(), nullable=False),
    sa.Column("requests", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("rows >= 0 AND requests >= 0", name="counts"),
)

# One row whose counter every write to partners, charters, models or session revocations
# increments in its own transaction: a reader that saw the same counter before may keep
# what it read then.
state_changes = sa.Table(
    "state_changes",
    metadata,
    sa.Column("id", sa.SmallInteger(), primary_key=True, autoincrement=False),
    sa.Column("counter", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("id = 1", name="one_row"),
)


# The training-distribution summary registered with a model version (JSON text), which the
# extraction monitor measures a partner's queries against.
training_summaries = sa.Table(
    "training_summaries",
    metadata,
    sa.Column("model", sa.String(), primary_key=True),
    sa.Column("version", sa.String(), primary_key=True),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(
        ["model", "version"], ["model_versions.model", "model_versions.version"]
    ),
)

# The extraction monitor's detector state per partner, charter and model (JSON text).
monitor_states = sa.Table(
    "monitor_states",
    metadata,
    sa.Column("partner_id", sa.String(), primary_key=True),
    sa.Column("charter_id", sa.String(), primary_key=True),
    sa.Column("model", sa.String(), primary_key=True),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# The response in force after monitor alarms, per partner, charter and model.
protections = sa.Table(
    "protections",
    metadata,
    sa.Column("partner_id", sa.String(), primary_key=True),
    sa.Column("charter_id", sa.String(), primary_key=True),
    sa.Column("model", sa.String(), primary_key=True),
    sa.Column("step", sa.Integer(), nullable=False),
    sa.Column("response", sa.String(), nullable=False),
    sa.Column("since", UtcDateTime(), nullable=False),
    sa.Column("evidence", sa.Text(), nullable=False),
    sa.CheckConstraint("step >= 1", name="step"),
    sa.CheckConstraint(
        "response IN ('alert', 'throttle', 'harden', 'suspend', 'revoke')", name="response"
    ),
)


# Each partner's watermark key and mark key, sealed under the workspace's KEK (JSON text).
watermark_keys = sa.Table(
    "watermark_keys",
    metadata,
    sa.Column("partner_id", sa.String(), sa.ForeignKey("partners.id"), primary_key=True),
    sa.Column("sealed", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
)

# The queries a partner's watermark marked, and the labels they got, sealed under that
# partner's mark key: what attribution replays to a suspect model.
watermark_marks = sa.Table(
    "watermark_marks",
    metadata,
    sa.Column("id", _Id, primary_key=True, autoincrement=True),
    sa.Column("partner_id", sa.String(), nullable=False, index=True),
    sa.Column("charter_id", sa.String(), nullable=False),
    sa.Column("model", sa.String(), nullable=False),
    sa.Column("version", sa.String(), nullable=False),
    sa.Column("rows", sa.Integer(), nullable=False),
    sa.Column("sealed", sa.Text(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.CheckConstraint("rows >= 1", name="rows"),
)


# The privacy budget a partner has spent on a noised grant, in micro-epsilon (integers, so
# concurrent spends add exactly); one conditional upsert never passes the charter's budget.
privacy_spend = sa.Table(
    "privacy_spend",
    metadata,
    sa.Column("partner_id", sa.String(), primary_key=True),
    sa.Column("charter_id", sa.String(), primary_key=True),
    sa.Column("model", sa.String(), primary_key=True),
    sa.Column("spent", sa.BigInteger(), nullable=False),
    sa.CheckConstraint("spent >= 0", name="spent"),
)
