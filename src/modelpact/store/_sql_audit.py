"""The audit log's rows over SQL: :class:`SqlAuditRepository`.

One sequencer at a time
    :meth:`SqlAuditRepository.lock_for_append` serialises appenders across
    every process sharing the database.  On PostgreSQL it takes
    ``pg_advisory_xact_lock`` on a key made from the current schema, so two
    workspaces in two schemas of one database do not wait for each other; the
    lock is released when the transaction ends, after its commit is visible.
    On SQLite every unit of work begins with ``BEGIN IMMEDIATE`` and so holds
    the database's only write lock from its first statement: the lock is
    already there and the call only records that it was asked for.  Either way
    a wait longer than :data:`LOCK_TIMEOUT_MS` raises ``StorageUnavailable``
    (SQLite: ``busy_timeout`` at the start of the unit of work; PostgreSQL:
    ``lock_timeout`` for this transaction, unless the server sets a shorter
    one).

Durability
    A commit returns only once its entries would survive a crash of the
    machine: SQLite runs WAL with ``synchronous=FULL`` (the WAL is fsynced at
    every commit); on PostgreSQL the default ``synchronous_commit=on`` flushes
    the WAL before the commit returns, and :meth:`lock_for_append` raises
    ``synchronous_commit=off`` (set by a role, a database or the URL) to ``on``
    for the appending transaction.  What the server itself promises
    (``fsync=off``, a disk that lies) is the operator's to get right.  Every
    database failure while appending or committing is raised, never
    swallowed: ``AlreadyExists`` for an index or node that is taken,
    ``StorageUnavailable`` for anything else, including a failed commit
    (whose outcome, if the connection was lost, may be that it did commit:
    a caller failing closed then refuses a request whose entry may yet be in
    the log, which is the safe way round).

Subtree positions
    Callers name a node ``(level, idx)``: level 0 is leaf ``idx`` (its hash is
    the entry's ``leaf_hash``), level ``l >= 1`` the complete subtree over
    leaves ``[idx * 2**l, (idx + 1) * 2**l)``.  ``audit_subtrees`` keys the
    latter by one integer, :func:`_position`: the subtree's last leaf, then its
    level in the low 6 bits.  The nodes completed by appending a leaf end at
    that leaf, so every insert lands at the tail of the table's B-tree.  The
    last leaf gets 57 bits: a node ending at leaf :data:`MAX_LEAVES` or beyond
    is refused (``InvalidInput``), which caps the log at 2**57 entries.

Reading node hashes takes one query per :data:`IN_CHUNK` leaves and positions
(leaf hashes from ``audit_entries``, subtrees from ``audit_subtrees``, joined by
``UNION ALL``), so a proof is one round trip; each row is found through a
primary key.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from modelpact.errors import AlreadyExists, InvalidInput, ModelpactError, NotFound
from modelpact.store._schema import audit_checkpoints, audit_entries
from modelpact.store._sql_session import Session
from modelpact.store.records import (
    AuditEntryRecord,
    CheckpointRecord,
    require_hash,
)

__all__ = [
    "INSERT_CHUNK",
    "IN_CHUNK",
    "LOCK_TIMEOUT_MS",
    "MAX_LEAVES",
    "MAX_LEVEL",
    "SqlAuditRepository",
]
_INSERT_ENTRY = "INSERT INTO audit_entries (idx, leaf_hash, entry, appended_at) VALUES (?, ?, ?, ?)"
_INSERT_NODE = "INSERT INTO audit_subtrees (pos, hash) VALUES (?, ?)"


def _bind_time(value: datetime, sqlite: bool) -> datetime | str:
    """What ``UtcDateTime`` binds: UTC text on SQLite (SQLAlchemy's format), aware elsewhere."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else utc


LOCK_TIMEOUT_MS = 5000
"""How long an appender waits for the sequencer lock on PostgreSQL (SQLite: ``busy_timeout``)."""
INSERT_CHUNK = 1000
"""Rows per ``executemany`` call."""
IN_CHUNK = 500
"""Ids per ``IN`` list (well below SQLite's and PostgreSQL's parameter limits)."""
MAX_LEVEL = 62
"""The highest level a subtree's position can encode (the database refuses 0 and 63)."""
MAX_LEAVES = 2**57
"""Every stored subtree ends below this leaf: the position keeps the last leaf in 57 bits."""
_MAX_INDEX = 2**63 - 1
_LEVEL_BITS = 6
_LEVEL_MASK = (1 << _LEVEL_BITS) - 1

# One round trip: the MATERIALIZED CTE is evaluated (both settings made local to this
# transaction) before the outer SELECT asks for the lock.  A NULL key would take no lock
# (the function is STRICT), hence the coalesce.
_POSTGRES_LOCK = sa.text(
    """
    WITH settings AS MATERIALIZED (
        SELECT
            set_config(
                'lock_timeout',
                CASE current_setting('lock_timeout')
                    WHEN '0' THEN :lock_timeout ELSE current_setting('lock_timeout') END,
                true
            ) AS lock_timeout,
            set_config(
                'synchronous_commit',
                CASE current_setting('synchronous_commit')
                    WHEN 'off' THEN 'on' ELSE current_setting('synchronous_commit') END,
                true
            ) AS synchronous_commit
    )
    SELECT pg_advisory_xact_lock(
        hashtext('modelpact.audit:' || coalesce(current_schema(), ''))
    ) FROM settings
    """
)

_ENTRY_COLUMNS = (
    audit_entries.c.idx,
    audit_entries.c.leaf_hash,
    audit_entries.c.entry,
    audit_entries.c.appended_at,
)

_T = TypeVar("_T")


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _entry_record(row: sa.Row[Any]) -> AuditEntryRecord:
    return AuditEntryRecord(
        idx=int(row.idx),
        leaf_hash=bytes(row.leaf_hash),
        entry=bytes(row.entry),
        appended_at=row.appended_at,
    )


def _checkpoint_record(row: sa.Row[Any]) -> CheckpointRecord:
    return CheckpointRecord(
        size=int(row.size), root=bytes(row.root), note=row.note, issued_at=row.issued_at
    )


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_INDEX


def _position(level: int, idx: int) -> int:
    """The key of subtree ``(level, idx)`` in ``audit_subtrees``: last leaf, then level.

    Raises ``InvalidInput`` if the subtree ends at leaf :data:`MAX_LEAVES` or beyond.
    """
    last = ((idx + 1) << level) - 1
    if last >= MAX_LEAVES:
        raise InvalidInput(
            f"audit node ({level}, {idx}) ends at leaf {last}, beyond the audit log's "
            f"limit of 2**57 entries"
        )
    return (last << _LEVEL_BITS) | level


def _node_id(pos: int) -> tuple[int, int]:
    """The ``(level, idx)`` of the subtree at ``pos``: the inverse of :func:`_position`."""
    level = pos & _LEVEL_MASK
    return level, (((pos >> _LEVEL_BITS) + 1) >> level) - 1


def _check_entries(entries: Sequence[AuditEntryRecord]) -> None:
    for record in entries:
        if not isinstance(record, AuditEntryRecord):
            raise InvalidInput(f"expected an AuditEntryRecord, got {type(record).__name__}")
    first = entries[0].idx
    for offset, record in enumerate(entries):
        if record.idx != first + offset:
            raise InvalidInput(
                f"audit entries must have consecutive indexes: {record.idx} follows "
                f"{first + offset - 1}"
            )


def _check_nodes(nodes: Sequence[tuple[int, int, bytes]], size: int) -> None:
    """Refuse a node at level 0 or above MAX_LEVEL, ending at leaf MAX_LEAVES or beyond,
    or covering leaves beyond ``size``."""
    for level, idx, digest in nodes:
        if not (isinstance(level, int) and 1 <= level <= MAX_LEVEL) or not _is_index(idx):
            raise InvalidInput(
                f"an audit node must have 1 <= level <= {MAX_LEVEL} and idx >= 0: "
                f"({level!r}, {idx!r})",
                hint="level-0 hashes are the entries' leaf hashes",
            )
        _position(level, idx)  # refuses a subtree beyond the log's limit
        require_hash(digest, f"audit node ({level}, {idx}) hash")
        if (idx + 1) << level > size:
            raise InvalidInput(
                f"audit node ({level}, {idx}) covers leaves up to {((idx + 1) << level) - 1}, "
                f"but the log will have {size} entries",
                hint="store only complete subtrees",
            )


class SqlAuditRepository:
    """:class:`~modelpact.store.interfaces.AuditRepository` over SQL (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        # SQLite's unit of work holds the write lock from BEGIN IMMEDIATE on.
        self._locked = session.dialect == "sqlite"
        self._asked = False
        # The size as of the last read or append, trusted only under the lock.
        self._known_size: int | None = None

    # --- appending ------------------------------------------------------------------------

    def lock_for_append(self) -> None:
        """Hold the sequencer lock until the unit of work ends (see the module docstring)."""
        if self._asked:
            return
        if self._session.dialect == "postgresql":
            self._session.execute(
                _POSTGRES_LOCK.bindparams(lock_timeout=f"{LOCK_TIMEOUT_MS}ms")
            ).all()
        # SQLite: nothing to do; the unit of work began with BEGIN IMMEDIATE.
        self._locked = True
        self._asked = True

    def size(self) -> int:
        last = self._session.execute(sa.select(sa.func.max(audit_entries.c.idx))).scalar()
        size = 0 if last is None else int(last) + 1
        if self._locked:
            self._known_size = size
        return size

    def append(
        self, entries: Sequence[AuditEntryRecord], nodes: Sequence[tuple[int, int, bytes]]
    ) -> None:
        if not entries and not nodes:
            return
        if entries:
            _check_entries(entries)
        self.lock_for_append()
        size = self._known_size if self._known_size is not None else self.size()
        if entries:
            first = entries[0].idx
            if first < size:
                raise AlreadyExists(
                    f"audit entry {first} already exists; the log has {size} entries",
                    hint="take lock_for_append() before reading size()",
                )
            if first > size:
                raise InvalidInput(
                    f"audit entry {first} would leave a gap; the log has {size} entries"
                )
        new_size = size + len(entries)
        _check_nodes(nodes, new_size)

        def duplicate() -> ModelpactError:
            self._known_size = None  # someone wrote without the lock; read it again
            return AlreadyExists(
                "an audit entry or node being appended already exists",
                hint="take lock_for_append() before reading size()",
            )

        # Hand-written INSERTs: SQLAlchemy's per-row type processing and statement
        # compilation cost more than SQLite's own work at audit-log rates.
        sqlite = self._session.dialect == "sqlite"
        entry_rows = [
            (record.idx, record.leaf_hash, record.entry, _bind_time(record.appended_at, sqlite))
            for record in entries
        ]
        batches: list[tuple[str, Sequence[Sequence[Any]]]] = []
        batches.extend((_INSERT_ENTRY, c) for c in _chunks(entry_rows, INSERT_CHUNK))
        node_rows = [(_position(level, idx), digest) for level, idx, digest in nodes]
        batches.extend((_INSERT_NODE, c) for c in _chunks(node_rows, INSERT_CHUNK))
        self._session.write_raw(batches, duplicate=duplicate)
        self._known_size = new_size

    # --- reading --------------------------------------------------------------------------

    def nodes(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        leaves: set[int] = set()
        positions: set[int] = set()
        for level, idx in ids:
            if not _is_index(idx) or not isinstance(level, int):
                continue
            if level == 0:
                leaves.add(idx)
            elif 1 <= level <= MAX_LEVEL and (idx + 1) << level <= MAX_LEAVES:
                positions.add(_position(level, idx))
        found: dict[tuple[int, int], bytes] = {}
        # Hand-written SQL, one round trip for a proof: a proof asks ~40 ids, and compiling
        # an expression of that size through SQLAlchemy costs more than the lookups.
        leaf_chunks = list(_chunks(sorted(leaves), IN_CHUNK))
        position_chunks = list(_chunks(sorted(positions), IN_CHUNK))
        for step in range(max(len(leaf_chunks), len(position_chunks))):
            parts: list[str] = []
            params: list[int] = []
            # The first column tells a leaf index (0) from a subtree position (1).
            if step < len(leaf_chunks):
                chunk = leaf_chunks[step]
                parts.append(
                    "SELECT 0, idx, leaf_hash FROM audit_entries "  # noqa: S608 - marks only
                    f"WHERE idx IN ({','.join('?' * len(chunk))})"
                )
                params.extend(chunk)
            if step < len(position_chunks):
                chunk = position_chunks[step]
                parts.append(
                    "SELECT 1, pos, hash FROM audit_subtrees "  # noqa: S608 - marks only
                    f"WHERE pos IN ({','.join('?' * len(chunk))})"
                )
                params.extend(chunk)
            # Only "?" marks and fixed SQL are interpolated; every value is a parameter.
            for subtree, key, digest in self._session.query(" UNION ALL ".join(parts), params):
                found[_node_id(int(key)) if subtree else (0, int(key))] = bytes(digest)
        return found

    def entries(self, start: int, end: int) -> list[AuditEntryRecord]:
        if not _is_index(start) or not isinstance(end, int) or end < start:
            raise InvalidInput(
                f"an audit entry range needs 0 <= start <= end: [{start!r}, {end!r})"
            )
        if end == start:
            return []
        result = self._session.execute(
            sa.select(*_ENTRY_COLUMNS)
            .where(audit_entries.c.idx >= start, audit_entries.c.idx < min(end, _MAX_INDEX))
            .order_by(audit_entries.c.idx)
        )
        return [_entry_record(row) for row in result]

    def entry(self, idx: int) -> AuditEntryRecord:
        if _is_index(idx):
            row = self._session.execute(
                sa.select(*_ENTRY_COLUMNS).where(audit_entries.c.idx == idx)
            ).first()
            if row is not None:
                return _entry_record(row)
        raise NotFound(f"the audit log has no entry {idx!r}")

    # --- retention ------------------------------------------------------------------------

    def prune(self, payloads: Mapping[int, bytes]) -> int:
        if not payloads:
            return 0
        for idx, payload in payloads.items():
            if not _is_index(idx) or not isinstance(payload, bytes) or not payload:
                raise InvalidInput(f"cannot prune audit entry {idx!r}: give an index and bytes")
        self.lock_for_append()
        changed = 0
        for idx in sorted(payloads):  # the leaf hash is never part of the statement
            result = self._session.execute(
                sa.update(audit_entries)
                .where(audit_entries.c.idx == idx)
                .values(entry=payloads[idx])
            )
            if result.rowcount != 1:
                raise NotFound(f"the audit log has no entry {idx} to prune")
            changed += 1
        return changed

    # --- checkpoints ----------------------------------------------------------------------

    def add_checkpoint(self, record: CheckpointRecord) -> None:
        size = self.size()
        if record.size > size:
            raise InvalidInput(
                f"no checkpoint for size {record.size}: the log has only {size} entries"
            )
        self._session.write(
            sa.insert(audit_checkpoints).values(
                size=record.size, root=record.root, note=record.note, issued_at=record.issued_at
            ),
            duplicate=lambda: AlreadyExists(
                f"the audit log already has a checkpoint for size {record.size}"
            ),
        )

    def checkpoint(self, size: int) -> CheckpointRecord:
        if _is_index(size):
            row = self._session.execute(
                sa.select(audit_checkpoints).where(audit_checkpoints.c.size == size)
            ).first()
            if row is not None:
                return _checkpoint_record(row)
        raise NotFound(f"the audit log has no checkpoint for size {size!r}")

    def latest_checkpoint(self) -> CheckpointRecord | None:
        row = self._session.execute(
            sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc()).limit(1)
        ).first()
        return None if row is None else _checkpoint_record(row)

    def checkpoints(self) -> list[CheckpointRecord]:
        result = self._session.execute(
            sa.select(audit_checkpoints).order_by(audit_checkpoints.c.size)
        )
        return [_checkpoint_record(row) for row in result]
