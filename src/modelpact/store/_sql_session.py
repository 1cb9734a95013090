"""One unit of work's connection: runs statements and turns their failures into modelpact errors.

Writes that can collide run in a savepoint, so a refused write undoes itself
and leaves the unit of work usable on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from modelpact.errors import ModelpactError, StorageUnavailable
from modelpact.store._sql_errors import DatabaseErrors, violation

__all__ = ["Rows", "Session"]

Rows = Sequence[Mapping[str, Any]]
"""Parameter sets for one statement run as ``executemany``."""


class Session:
    """One unit of work's connection: executes statements and translates their failures."""

    def __init__(self, connection: Connection, database: DatabaseErrors) -> None:
        self.connection = connection
        self.database = database
        self.dialect = connection.dialect.name
        self.active = True

    def end(self) -> None:
        """Refuse any further statement: the unit of work is over."""
        self.active = False

    def _check_active(self) -> None:
        if not self.active:
            raise StorageUnavailable(
                "this unit of work has ended", hint="open a new one with store.unit_of_work()"
            )

    def execute(self, statement: sa.Executable) -> sa.CursorResult[Any]:
        self._check_active()
        with self.database.errors():
            return self.connection.execute(statement)

    def query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """Run hand-written SQL on the hot path, skipping SQLAlchemy's statement compiler.

        ``sql`` marks parameters with ``?``; they are rewritten for the driver.  Only
        for fixed statement shapes written in this package, never for outside text.
        """
        self._check_active()
        if self.connection.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        with self.database.errors():
            return list(self.connection.exec_driver_sql(sql, tuple(params)).fetchall())

    def write_raw(
        self,
        batches: Sequence[tuple[str, Sequence[Sequence[Any]]]],
        *,
        duplicate: Callable[[], ModelpactError],
    ) -> None:
        """``write_many`` for the audit log's hot path: hand-written INSERTs, executemany.

        Same savepoint and error translation; ``?`` marks parameters as in :meth:`query`.
        """
        qmark = self.connection.dialect.paramstyle == "qmark"
        with self._savepoint(duplicate, None):
            for sql, rows in batches:
                if rows:
                    statement = sql if qmark else sql.replace("?", "%s")
                    self.connection.exec_driver_sql(statement, [tuple(r) for r in rows])

    def write(
        self,
        *statements: sa.Executable,
        duplicate: Callable[[], ModelpactError],
        missing: Callable[[], ModelpactError] | None = None,
    ) -> None:
        """Run ``statements`` in a savepoint; a failure undoes them all and nothing else."""
        with self._savepoint(duplicate, missing):
            for statement in statements:
                self.connection.execute(statement)

    def write_many(
        self,
        batches: Sequence[tuple[sa.Executable, Rows]],
        *,
        duplicate: Callable[[], ModelpactError],
    ) -> None:
        """Run each statement once per row set (``executemany``) in one savepoint.

        A failure undoes every batch and nothing else.  Empty row sets are skipped.
        """
        with self._savepoint(duplicate, None):
            for statement, rows in batches:
                if rows:
                    self.connection.execute(statement, list(rows))

    @contextmanager
    def _savepoint(
        self,
        duplicate: Callable[[], ModelpactError],
        missing: Callable[[], ModelpactError] | None,
    ) -> Iterator[None]:
        self._check_active()
        try:
            with self.connection.begin_nested():
                yield
        except sa.exc.IntegrityError as error:
            kind = violation(error)
            if kind == "unique":
                raise duplicate() from None
            if kind == "foreign_key" and missing is not None:
                raise missing() from None
            raise self.database.translate(error) from None
        except (sa.exc.SQLAlchemyError, OSError) as error:
            raise self.database.translate(error) from None

    def by_code_point(self, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
        """Order text as Python does (by code point), whatever the database's collation."""
        return column.collate("C") if self.dialect == "postgresql" else column
