"""The audit log's hot path: one raw driver connection that appends batches and commits.

The group-commit writer spends its time on per-statement overhead, not on the
database: every batch is BEGIN, read the size, two INSERTs, COMMIT.  Going
through SQLAlchemy's pooled connections and savepoints for that costs several
times what SQLite itself needs, so this appender keeps one DBAPI connection of
its own and issues exactly those statements.  Semantics are those of
``uow.audit`` (sequencer lock, durable commit, gap-free indexes); any driver
error becomes :class:`~modelpact.errors.StorageUnavailable`, and the caller
(the log) stops for good.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

import sqlalchemy as sa

from modelpact.errors import StorageUnavailable
from modelpact.store._sql_audit import _INSERT_ENTRY, _INSERT_NODE, LOCK_TIMEOUT_MS, _bind_time
from modelpact.store._sql_audit import _POSTGRES_LOCK as _REPOSITORY_LOCK
from modelpact.store.records import AuditEntryRecord

__all__ = ["SqlAuditAppender"]

#: The repository's lock statement (timeout, durable commit, advisory lock), bound for the driver.
_POSTGRES_LOCK = str(_REPOSITORY_LOCK).replace(":lock_timeout", f"'{LOCK_TIMEOUT_MS}ms'")

Batch = tuple[Sequence[AuditEntryRecord], Sequence[tuple[int, int, bytes]]]


class _Reader:
    """Node lookups inside the appender's open transaction (a ``NodeReader``)."""

    def __init__(self, cursor: Any, mark: str) -> None:
        self._cursor = cursor
        self._mark = mark

    def nodes(self, ids: Collection[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        found: dict[tuple[int, int], bytes] = {}
        leaves = sorted({i for level, i in ids if level == 0})
        inner = sorted({(level, i) for level, i in ids if level > 0})
        if leaves:
            marks = ",".join([self._mark] * len(leaves))
            self._cursor.execute(
                f"SELECT idx, leaf_hash FROM audit_entries WHERE idx IN ({marks})",  # noqa: S608 - marks only
                leaves,
            )
            found.update(((0, int(i)), bytes(h)) for i, h in self._cursor.fetchall())
        if inner:
            clauses = " OR ".join(["(level = ? AND idx = ?)"] * len(inner))
            query = f"SELECT level, idx, hash FROM audit_nodes WHERE {clauses}"  # noqa: S608
            params = [value for pair in inner for value in pair]
            self._cursor.execute(query.replace("?", self._mark), params)
            found.update(((int(lv), int(i)), bytes(h)) for lv, i, h in self._cursor.fetchall())
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

    def append(self, build: Callable[[int, _Reader], Batch]) -> int:
        """Lock, read the size, let ``build`` make the rows for it, insert, commit durably.

        Returns the new size.  On any failure the transaction is rolled back and
        :class:`StorageUnavailable` raised.
        """
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
            if entries and entries[0].idx != size:
                raise StorageUnavailable("audit batch does not start at the end of the log")
            rows = [
                (r.idx, r.leaf_hash, r.entry, _bind_time(r.appended_at, self._sqlite))
                for r in entries
            ]
            cursor.executemany(_INSERT_ENTRY.replace("?", mark), rows)
            if nodes:
                cursor.executemany(_INSERT_NODE.replace("?", mark), list(nodes))
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
