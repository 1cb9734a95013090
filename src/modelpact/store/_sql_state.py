"""The change counter over SQL: one row, incremented by every write a request depends on.

The partner, charter, model and session repositories call :meth:`SqlStateRepository.bump`
in the transaction of each write that changes what a request reads (partners and their
status, charters and their status, models and their served version, session
revocations).  The increment commits or rolls back with that write; concurrent writers
queue on the row's lock, so no two commits leave the same counter.
"""

from __future__ import annotations

import sqlalchemy as sa

from modelpact.errors import StorageUnavailable
from modelpact.store._schema import state_changes
from modelpact.store._sql_session import Session

__all__ = ["SqlStateRepository"]

_MISSING = "the database has no state_changes row"
_MISSING_HINT = "the database was changed outside modelpact; restore it from a backup"
_BUMP = (
    sa.update(state_changes)
    .where(state_changes.c.id == 1)
    .values(counter=state_changes.c.counter + 1)
)


class SqlStateRepository:
    """:class:`~modelpact.store.interfaces.StateRepository` over SQL."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def counter(self) -> int:
        rows = self._session.query("SELECT counter FROM state_changes WHERE id = 1", ())
        if not rows:
            raise StorageUnavailable(_MISSING, hint=_MISSING_HINT)
        value: int = rows[0][0]
        return value

    def bump(self) -> None:
        if self._session.execute(_BUMP).rowcount != 1:
            raise StorageUnavailable(_MISSING, hint=_MISSING_HINT)
