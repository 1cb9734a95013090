"""The audit log's hot path: one raw driver connection that appends batches and commits.

The group-commit writer spends its time on per-statement overhead, not on the
database: every batch is BEGIN, read the size, two INSERTs, COMMIT.  Going
through SQLAlchemy's pooled connections and savepoints for that costs several
times what SQLite itself needs, so this appender keeps one DBAPI connection of
its own and issues exactly those statements.  Semantics are those of
``uow.audit`` (sequencer lock, durable commit, gap-free indexes); any driver
error becomes :class:`~modelpact.errors.StorageUnavailable`, and the caller
(the log) stops for good.  Nodes are ``(level, idx)`` to the caller and subtree
positions in the table, as in :mod:`modelpact.store._sql_audit`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from modelpact.errors import StorageUnavailable
from modelpact.store._sql_audit import (
    _INSERT_ENTRY,
    _INSERT_NODE,
    LOCK_TIMEOUT_MS,
    _bind_time,
    _node_id,
    _position,
)
from modelpact.store._sql_audit import _POSTGRES_LOCK as _REPOSITORY_LOCK
from modelpact.store.records import require_aware

__all__ = ["SqlAuditAppender"]

#: The repository's lock statement (timeout, durable commit, advisory lock), bound for the driver.
_POSTGRES_LOCK = str(_REPOSITORY_LOCK).replace(":lock_timeout", f"'{LOCK_TIMEOUT_MS}ms'")

#: Rows per INSERT statement (4 columns: well inside SQLite's 32,766 and PostgreSQL's 65,535
#: bound parameters).
_ROWS_PER_STATEMENT = 128

Batch = tuple[Sequence[tuple[int, bytes, bytes]], Sequence[tuple[int, int, bytes]]]


class _Reader:
    """Node lookups inside the appender's open transaction (a ``NodeReader``)."""

    def __init__(self, cursor: Any, mark: str) -> None:
        self._cursor = cursor
        self._mark = mark

    def nodes(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        leaves = sorted({i for level, i in ids if level == 0})
        positions = sorted({_position(level, i) for level, i in ids if level > 0})
        if leaves:
            marks = ",".join([self._mark] * len(leaves))
            self._cursor.execute(
                f"SELECT idx, leaf_hash FROM audit_entries WHERE idx IN ({marks})",  # noqa: S608 - marks only
                leaves,
            )
            found.update(((0, int(i)), bytes(h)) for i, h in self._cursor.fetchall())
        if positions:
            marks = ",".join([self._mark] * len(positions))
            self._cursor.execute(
                f"SELECT pos, hash FROM audit_subtrees WHERE pos IN ({marks})",  # noqa: S608 - marks only
                positions,
            )
            found.update((_node_id(int(p)), bytes(h)) for p, h in self._cursor.fetchall())
        return found


class SqlAuditAppender:
    """Appends batches to the audit log over one dedicated connection.  Not thread-safe:
    one writer thread owns it."""

    def __init__(self, engine: sa.Engine, shown: str) -> None:
        self._shown = shown
        self._sqlite = engine.dialect.name == "sqlite"
        self._mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._errors: tuple[type[BaseException], ...] = (engine.dialect.dbapi.Error,)  # type: ignore[union-attr]
        try:
            pooled = engine.raw_connection()
            pooled.detach()  # ours alone; closed for real, never handed back to the pool
        except sa.exc.SQLAlchemyError as exc:
            raise StorageUnavailable(f"cannot connect to {shown}: {exc}") from None
        self._connection: Any = pooled.dbapi_connection
        if self._connection is None:
            raise StorageUnavailable(f"cannot connect to {shown}: no driver connection")
        if self._sqlite:
            self._connection.isolation_level = None  # explicit BEGIN IMMEDIATE below
            # The pool may hand over a connection last used by a read-only unit of work.
            self._connection.execute("PRAGMA query_only = 0")
        self._statements: dict[tuple[str, int], str] = {}

    def append(self, build: Callable[[int, _Reader], Batch], *, appended_at: datetime) -> int:
        """Lock, read the size, let ``build`` make the rows for it, insert, commit durably.

        Returns the new size.  On any failure the transaction is rolled back and
        :class:`StorageUnavailable` raised.
        """
        require_aware(appended_at, "appended_at")
        mark = self._mark
        cursor = self._connection.cursor()
        try:
            if self._sqlite:
                cursor.execute("BEGIN IMMEDIATE")
            else:
                cursor.execute(_POSTGRES_LOCK)
            cursor.execute("SELECT max(idx) FROM audit_entries")
            last = cursor.fetchone()[0]
            size = 0 if last is None else int(last) + 1
            entries, nodes = build(size, _Reader(cursor, mark))
            if entries and entries[0][0] != size:
                raise StorageUnavailable("audit batch does not start at the end of the log")
            stamp = _bind_time(appended_at, self._sqlite)
            self._insert(cursor, _INSERT_ENTRY, [(*row, stamp) for row in entries])
            self._insert(
                cursor, _INSERT_NODE, [(_position(lv, i), digest) for lv, i, digest in nodes]
            )
            if self._sqlite:
                cursor.execute("COMMIT")
            else:
                self._connection.commit()
            return size + len(entries)
        except self._errors as exc:
            self._rollback()
            raise StorageUnavailable(
                f"cannot append to the audit log in {self._shown}: {exc}".splitlines()[0]
            ) from None
        except BaseException:
            self._rollback()
            raise
        finally:
            cursor.close()

    def _insert(self, cursor: Any, statement: str, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert ``rows`` with one multi-row statement per chunk: one step per chunk
        instead of one per row (each step releases and retakes the GIL)."""
        for start in range(0, len(rows), _ROWS_PER_STATEMENT):
            chunk = rows[start : start + _ROWS_PER_STATEMENT]
            key = (statement, len(chunk))
            sql = self._statements.get(key)
            if sql is None:
                head, values = statement.split(" VALUES ")
                sql = f"{head} VALUES {', '.join([values] * len(chunk))}".replace("?", self._mark)
                self._statements[key] = sql
            cursor.execute(sql, [value for row in chunk for value in row])

    def _rollback(self) -> None:
        with contextlib.suppress(*self._errors):
            if self._sqlite:
                if self._connection.in_transaction:
                    self._connection.execute("ROLLBACK")
            else:
                self._connection.rollback()

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._connection.close()
