"""The narrow storage interfaces the rest of modelpact is written against.

A :class:`Store` hands out units of work; a :class:`UnitOfWork` is one
transaction holding seven repositories.  Every method raises only
:mod:`modelpact.errors` types:

- :class:`~modelpact.errors.NotFound` for a row that is not there;
- :class:`~modelpact.errors.AlreadyExists` for a second row under the same key;
- :class:`~modelpact.errors.InvalidInput` for a value the store refuses (naive
  datetime, unknown status, malformed artifact key);
- :class:`~modelpact.errors.StorageUnavailable` when the database or disk
  cannot be used.

A failed write inside a unit of work leaves the unit of work usable (the write
is undone on its own), so a caller may catch ``AlreadyExists`` and go on.
Sequences come back as plain lists, in the order each method documents.

:class:`ArtifactStore` keeps opaque blobs (sealed model artifacts) under keys
that are relative paths: segments of ``[A-Za-z0-9._-]+`` joined by ``/``, with
no ``.`` or ``..`` segment.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Protocol

from modelpact.store.records import (
    AuditEntryRecord,
    ChallengeRecord,
    CharterRecord,
    CheckpointRecord,
    MarkRecord,
    ModelRecord,
    ModelVersionRecord,
    MonitorStateRecord,
    PartnerRecord,
    ProtectionRecord,
    SessionRecord,
    UsageRecord,
    UsageTotal,
)

__all__ = [
    "ArtifactStore",
    "AuditAppender",
    "AuditNodeReader",
    "AuditRepository",
    "CharterRepository",
    "KeyRepository",
    "ModelRepository",
    "PartnerRepository",
    "SessionRepository",
    "StateRepository",
    "Store",
    "UnitOfWork",
    "UsageRepository",
]


class PartnerRepository(Protocol):
    """Partner organisations, keyed by id; a public key belongs to one partner only."""

    def add(self, record: PartnerRecord) -> None:
        """Insert; ``AlreadyExists`` if the id or the public key is already registered."""
        ...

    def get(self, partner_id: str) -> PartnerRecord:
        """The partner with this id; ``NotFound`` otherwise."""
        ...

    def lock(self, partner_id: str) -> PartnerRecord:
        """:meth:`get`, holding the partner's row until the unit of work ends (PostgreSQL:
        ``FOR UPDATE``; SQLite's unit of work holds the write lock already): a key change
        or a suspension waits for it, or it sees theirs."""
        ...

    def list(self) -> builtins.list[PartnerRecord]:
        """Every partner, by id."""
        ...

    def set_status(self, partner_id: str, status: str, at: datetime) -> None:
        """Change the status and set ``updated_at`` to ``at``; ``NotFound`` if absent."""
        ...

    def set_public_key(
        self, partner_id: str, public_key: str, at: datetime, *, expected: str
    ) -> bool:
        """Enrol a new key for the partner and set ``updated_at`` if its enrolled key is
        still ``expected`` and it is not revoked (one atomic compare-and-set); whether it
        was.  ``NotFound`` if absent, ``AlreadyExists`` if another partner holds that key."""
        ...


class ModelRepository(Protocol):
    """Models and their immutable versions, with a movable served pointer."""

    def add_version(self, record: ModelVersionRecord, *, serve: bool) -> None:
        """Insert a version, creating its model if new; with ``serve`` it becomes served.

        ``AlreadyExists`` if the model already has this version.  A new model's
        ``created_at`` is the version's.
        """
        ...

    def get_version(self, model: str, version: str) -> ModelVersionRecord:
        """One version; ``NotFound`` if the model or the version does not exist."""
        ...

    def get_model(self, name: str) -> ModelRecord:
        """One model; ``NotFound`` otherwise."""
        ...

    def list_models(self) -> builtins.list[ModelRecord]:
        """Every model, by name."""
        ...

    def list_versions(self, model: str) -> builtins.list[ModelVersionRecord]:
        """The model's versions, oldest first (ties in insertion order); ``NotFound``
        if the model does not exist."""
        ...

    def set_served(self, model: str, version: str, at: datetime) -> str | None:
        """Serve ``version`` from now on and return the version served before (or ``None``).

        ``NotFound`` if the model or that version does not exist.
        """
        ...


class CharterRepository(Protocol):
    """Charter versions, keyed by ``(charter_id, version)``."""

    def add(self, record: CharterRecord) -> None:
        """Insert; ``AlreadyExists`` on the same ``(charter_id, version)``, ``NotFound``
        if the partner does not exist."""
        ...

    def get(self, charter_id: str, version: int) -> CharterRecord:
        """One version; ``NotFound`` otherwise."""
        ...

    def latest(self, charter_id: str) -> CharterRecord:
        """The highest version of the charter, whatever its status; ``NotFound`` if none."""
        ...

    def current(self, charter_id: str) -> CharterRecord:
        """The version in force: the active one (a rollback can make an earlier version
        active again), else the terminated one, else the highest; ``NotFound`` if none."""
        ...

    def list(self, *, partner_id: str | None = None) -> builtins.list[CharterRecord]:
        """Every version of every charter (or of one partner's), by charter id then version."""
        ...

    def set_status(self, charter_id: str, version: int, status: str) -> None:
        """Change one version's status; ``NotFound`` if absent."""
        ...


class AuditRepository(Protocol):
    """The rows of a tamper-evident audit log (an RFC 9162 Merkle tree); no hashing here.

    - Entries are the leaves, at indexes 0, 1, 2, … with no gap; each keeps its
      leaf hash, which is the tree's level-0 node.
    - Nodes are the hashes of complete subtrees at level >= 1: node
      ``(level, idx)`` covers leaves ``[idx * 2**level, (idx + 1) * 2**level)``.
    - Checkpoints are signed notes of the root at one size, one per size.

    Nothing is ever deleted, and the only update is :meth:`prune` (an entry's payload
    replaced once its retention period is over; its leaf hash stays).  To append, a
    unit of work calls :meth:`lock_for_append`, reads :meth:`size`, then :meth:`append` from that
    index: the lock makes appenders in every process take turns until their
    unit of work ends.  When the unit of work's block ends, the commit is
    durable before it returns (SQLite: WAL with ``synchronous=FULL``;
    PostgreSQL: ``synchronous_commit`` at least ``local``), and a failure to
    commit raises :class:`~modelpact.errors.StorageUnavailable`, so a caller can
    refuse whatever needed the entry.
    """

    def lock_for_append(self) -> None:
        """Take the log's sequencer lock until this unit of work ends (waiting for it).

        ``StorageUnavailable`` if it cannot be had within a few seconds.
        Taking it again in the same unit of work does nothing.
        """
        ...

    def size(self) -> int:
        """The number of entries (the next index)."""
        ...

    def append(
        self, entries: Sequence[AuditEntryRecord], nodes: Sequence[tuple[int, int, bytes]]
    ) -> None:
        """Insert ``entries`` at the end of the log and new ``(level, idx, hash)`` nodes.

        ``entries`` must have consecutive indexes starting at :meth:`size`;
        nodes must have level >= 1, 32-byte hashes, and cover only leaves that
        exist once ``entries`` are in (``InvalidInput`` otherwise).
        ``AlreadyExists`` if an entry's index or a node is already there; then
        nothing of this call is written.  Takes the lock if this unit of work
        does not hold it yet.
        """
        ...

    def nodes(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """The hashes of the ``(level, idx)`` nodes that exist (level 0: leaf hashes).

        Ids that do not exist are absent from the result.
        """
        ...

    def entries(self, start: int, end: int) -> list[AuditEntryRecord]:
        """The entries with ``start <= idx < end`` that exist, by index.

        ``InvalidInput`` if ``start`` is negative or ``end < start``.
        """
        ...

    def entry(self, idx: int) -> AuditEntryRecord:
        """The entry at ``idx``; ``NotFound`` otherwise."""
        ...

    def prune(self, payloads: Mapping[int, bytes]) -> int:
        """Replace the stored payload of each entry ``idx`` with ``payloads[idx]`` (a pruned
        marker) and keep its leaf hash, so the tree, every checkpoint and every proof stay
        as they were; how many entries changed.

        ``NotFound`` if an index is not in the log (then nothing of this call is written).
        Takes the lock if this unit of work does not hold it yet.
        """
        ...

    def add_checkpoint(self, record: CheckpointRecord) -> None:
        """Insert; ``AlreadyExists`` if this size has one, ``InvalidInput`` if the log
        is smaller than ``record.size``."""
        ...

    def checkpoint(self, size: int) -> CheckpointRecord:
        """The checkpoint for ``size``; ``NotFound`` otherwise."""
        ...

    def latest_checkpoint(self) -> CheckpointRecord | None:
        """The checkpoint with the largest size, or ``None`` before the first."""
        ...

    def checkpoints(self) -> list[CheckpointRecord]:
        """Every checkpoint, by size."""
        ...


class SessionRepository(Protocol):
    """One-time challenges and the sessions they open, keyed by the SHA-256 of the token.

    Every check that must hold across processes is one conditional statement, so
    two gateways sharing a database cannot both win: a nonce is consumed at most
    once whatever the isolation level.
    """

    def add_challenge(self, record: ChallengeRecord) -> None:
        """Insert an unused challenge; ``AlreadyExists`` if the nonce was issued before."""
        ...

    def consume_challenge(
        self, nonce: str, partner_id: str, now: datetime
    ) -> ChallengeRecord | None:
        """Mark the challenge used at ``now`` and return it (with ``used_at`` set).

        ``None``, and nothing written, unless the nonce exists, was issued to
        ``partner_id``, is unused and ``now < expires_at``.  Of any number of
        concurrent calls for one nonce, at most one returns a record.
        """
        ...

    def delete_expired_challenges(self, now: datetime) -> int:
        """Delete every challenge with ``expires_at <= now``, used or not; return how many."""
        ...

    def add(self, record: SessionRecord) -> None:
        """Insert a session; ``AlreadyExists`` on the same token hash, ``NotFound`` if the
        partner does not exist."""
        ...

    def get(self, token_hash: bytes) -> SessionRecord:
        """The session with this token hash, revoked or expired ones included; ``NotFound``
        otherwise (the message never shows the hash)."""
        ...

    def revoke(self, token_hash: bytes, at: datetime) -> None:
        """Set ``revoked_at`` to ``at`` unless already revoked (the first time stays);
        ``NotFound`` if there is no such session."""
        ...

    def revoke_partner(self, partner_id: str, at: datetime) -> int:
        """Revoke every session of the partner not revoked yet; return how many."""
        ...

    def revoke_charter(self, partner_id: str, charter_id: str, at: datetime) -> int:
        """Revoke every session of the partner under one charter not revoked yet (at exit);
        return how many."""
        ...


class UsageRepository(Protocol):
    """Prediction rows and requests per partner, charter and UTC day."""

    def add_usage(
        self,
        partner_id: str,
        charter_id: str,
        day: date,
        *,
        rows: int,
        requests: int,
        limit_rows: int | None,
    ) -> bool:
        """Add ``rows`` and ``requests`` to the day's counts, unless that would take the
        day's rows past ``limit_rows`` (``None``: no limit).

        ``True`` if added; ``False``, and nothing written, if refused.  One
        conditional statement: concurrent callers in any number of processes
        never take the day's rows past the limit together.
        """
        ...

    def usage(self, partner_id: str, charter_id: str, day: date) -> UsageRecord:
        """The day's counts; zeros for a day with no usage."""
        ...

    def totals(
        self,
        *,
        partner_id: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> builtins.list[UsageTotal]:
        """Counts summed per partner and charter over days ``since <= day < until`` (each
        bound optional), optionally of one partner only; by partner id then charter id.

        Pairs with no usage in the range are absent.
        """
        ...


class MonitorRepository(Protocol):
    """The extraction monitor's rows: training summaries, detector state, responses in force.

    Setting or clearing a response moves the state counter (a request reads it);
    saving detector state does not.
    """

    def put_summary(self, model: str, version: str, summary: str) -> None:
        """Keep ``summary`` (JSON text) for a registered version, replacing any;
        ``NotFound`` for an unknown version."""
        ...

    def summary(self, model: str, version: str) -> str | None:
        """The version's training summary, or None if none was registered."""
        ...

    def state(self, partner_id: str, charter_id: str, model: str) -> MonitorStateRecord | None:
        """The detectors' saved state, or None."""
        ...

    def save_state(self, record: MonitorStateRecord) -> None:
        """Insert or replace the detectors' state."""
        ...

    def delete_state(self, partner_id: str, charter_id: str, model: str) -> bool:
        """Forget the detectors' state; whether there was one."""
        ...

    def protection(self, partner_id: str, charter_id: str, model: str) -> ProtectionRecord | None:
        """The response in force, or None."""
        ...

    def set_protection(self, record: ProtectionRecord) -> None:
        """Insert or replace the response in force (moves the state counter)."""
        ...

    def clear_protection(self, partner_id: str, charter_id: str, model: str) -> bool:
        """Lift the response in force (moves the counter if there was one); whether there was."""
        ...

    def protections(self) -> builtins.list[ProtectionRecord]:
        """Every response in force, by partner, charter and model."""
        ...


class WatermarkRepository(Protocol):
    """Each partner's sealed watermark key, and the sealed queries its watermark marked."""

    def key(self, partner_id: str) -> str | None:
        """The partner's sealed keys, or None."""
        ...

    def add_key(self, partner_id: str, sealed: str, at: datetime) -> None:
        """Keep the partner's sealed keys; ``AlreadyExists`` if it has some."""
        ...

    def partners(self) -> builtins.list[str]:
        """Every partner with a watermark key, by id."""
        ...

    def add_marks(self, record: MarkRecord) -> None:
        """Keep one request's sealed marked queries."""
        ...

    def marks(self, partner_id: str, model: str | None = None) -> builtins.list[MarkRecord]:
        """The partner's marked queries (of one model), oldest first."""
        ...

    def destroy(self, partner_id: str) -> int:
        """Delete the partner's keys and marked queries: how many marked rows went."""
        ...


class PrivacyRepository(Protocol):
    """The privacy budget each partner has spent on each noised grant, in micro-epsilon."""

    def spend(
        self, partner_id: str, charter_id: str, model: str, cost: int, limit: int
    ) -> int | None:
        """Add ``cost`` unless the total would pass ``limit``: the new total, or None (and
        nothing written).  One conditional statement: concurrent spends never pass it."""
        ...

    def spent(self, partner_id: str, charter_id: str, model: str) -> int:
        """What has been spent so far (0 if nothing)."""
        ...


class KeyRepository(Protocol):
    """The rows holding KEK-wrapped keys, read and re-wrapped by a KEK rotation.

    The ``replace_*`` methods are compare-and-set: they write only if the row still holds
    ``old``, and say whether they did.
    """

    def model_keys(self) -> builtins.list[tuple[str, str, bytes]]:
        """Every model version's ``(model, version, wrapped_key)``."""
        ...

    def replace_model_key(self, model: str, version: str, old: bytes, new: bytes) -> bool: ...

    def watermark_keys(self) -> builtins.list[tuple[str, str]]:
        """Every partner's ``(partner_id, sealed)`` watermark keys."""
        ...

    def replace_watermark_key(self, partner_id: str, old: str, new: str) -> bool: ...

    def monitor_states(self) -> builtins.list[tuple[str, str, str, str]]:
        """Every ``(partner_id, charter_id, model, state)`` the monitor saved."""
        ...

    def replace_monitor_state(
        self, partner_id: str, charter_id: str, model: str, old: str, new: str
    ) -> bool: ...


class StateRepository(Protocol):
    """A counter that every write to what a request depends on increments.

    Adding a partner or changing its status, adding a charter version or changing
    its status, adding a model version or changing the served one, and revoking
    sessions each increment it in their own transaction (adding a session, a
    challenge, usage or audit rows does not).  A reader that sees the same counter
    as before may keep what it read then; a change commits with its increment or
    not at all.
    """

    def counter(self) -> int:
        """The counter as this unit of work sees it (one read)."""
        ...

    def bump(self) -> None:
        """Increment the counter in this unit of work's transaction."""
        ...


class UnitOfWork(Protocol):
    """One transaction: everything done through these repositories commits or none does."""

    @property
    def partners(self) -> PartnerRepository: ...

    @property
    def models(self) -> ModelRepository: ...

    @property
    def charters(self) -> CharterRepository: ...

    @property
    def audit(self) -> AuditRepository: ...

    @property
    def sessions(self) -> SessionRepository: ...

    @property
    def usage(self) -> UsageRepository: ...

    @property
    def state(self) -> StateRepository: ...

    @property
    def monitor(self) -> MonitorRepository: ...

    @property
    def watermarks(self) -> WatermarkRepository: ...

    @property
    def privacy(self) -> PrivacyRepository: ...

    @property
    def keys(self) -> KeyRepository: ...


class AuditNodeReader(Protocol):
    """Subtree hashes by (level, index), read inside an append's transaction."""

    def nodes(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]: ...


class AuditAppender(Protocol):
    """The audit log writer's own connection: lock, size, insert, durable commit per batch.

    ``build(size, reader)`` returns the entry rows ``(idx, leaf_hash, entry)``
    (starting at index ``size``) and the level >= 1 nodes ``(level, idx, hash)``
    to insert; it runs under the sequencer lock.  Every row of the batch is
    stamped ``appended_at``.  Any failure rolls the batch back and raises
    ``StorageUnavailable``.
    """

    def append(
        self,
        build: Callable[
            [int, AuditNodeReader],
            tuple[Sequence[tuple[int, bytes, bytes]], Sequence[tuple[int, int, bytes]]],
        ],
        *,
        appended_at: datetime,
    ) -> int: ...

    def close(self) -> None: ...


class Store(Protocol):
    """Where records live.  Open once per process; share it between threads."""

    def audit_appender(self) -> AuditAppender:
        """A dedicated connection for one audit log writer thread."""
        ...

    def unit_of_work(self, *, read_only: bool = False) -> AbstractContextManager[UnitOfWork]:
        """A transaction: committed when the block ends normally, rolled back if it raises.

        ``read_only`` transactions read a consistent snapshot without waiting for
        writers; they must not write.  The repositories must not be used after the
        block has ended.
        """
        ...

    @property
    def embedded(self) -> bool:
        """True when a read is a local call that never waits on a network (SQLite)."""
        ...

    def state_counter(self) -> int:
        """The change counter, read on its own, as cheaply as the backend allows.

        Sees every write committed before the call.  Where :attr:`embedded`, it never
        waits for a lock: it raises :class:`~modelpact.errors.StorageUnavailable` instead.
        """
        ...

    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""
        ...


class ArtifactStore(Protocol):
    """Opaque, write-once blobs under relative path keys."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` durably and atomically; ``AlreadyExists`` if ``key`` is taken."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes under ``key``; ``NotFound`` otherwise."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` durably; ``NotFound`` if it is not there."""
        ...

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a blob."""
        ...

    def replace(self, key: str, data: bytes, *, expected: bytes) -> bool:
        """Atomically and durably put ``data`` in place of ``key``'s bytes if they still are
        ``expected``; whether it did.  Never races :meth:`delete` (for key re-wrapping)."""
        ...

    def keys(self, prefix: str) -> builtins.list[str]:
        """Every key under the folder ``prefix``, sorted; none if there is no such folder."""
        ...
