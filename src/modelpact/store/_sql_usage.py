"""Daily usage over SQL: counts per partner, charter and UTC day, and the quota check.

:meth:`SqlUsageRepository.add_usage` is one statement on both databases::

    INSERT INTO usage … VALUES (…)
    ON CONFLICT (partner_id, charter_id, day) DO UPDATE
        SET rows = usage.rows + excluded.rows, requests = usage.requests + excluded.requests
        WHERE usage.rows + excluded.rows <= :limit

PostgreSQL locks the conflicting row and evaluates the ``WHERE`` on its newest
version; SQLite runs one writer at a time.  Either way no two callers can both
pass the limit, and a refused call changes nothing (``RETURNING`` yields no
row).  A first insert over the limit is refused before the statement is sent.
"""

from __future__ import annotations

import builtins
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from modelpact.errors import InvalidInput
from modelpact.store._schema import usage
from modelpact.store._sql_session import Session
from modelpact.store.records import UsageRecord, UsageTotal, require_day

__all__ = ["SqlUsageRepository"]


def _total(row: sa.Row[Any]) -> UsageTotal:
    # PostgreSQL sums bigints as numeric (Decimal): bring them back to int.
    return UsageTotal(
        partner_id=row.partner_id,
        charter_id=row.charter_id,
        rows=int(row.rows),
        requests=int(row.requests),
        first_day=date.fromisoformat(row.first_day),
        last_day=date.fromisoformat(row.last_day),
    )


class SqlUsageRepository:
    """:class:`~modelpact.store.interfaces.UsageRepository` over SQL."""

    def __init__(self, session: Session) -> None:
        self._session = session

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
        record = UsageRecord(partner_id, charter_id, day, rows, requests)  # validates
        if limit_rows is not None:
            if not isinstance(limit_rows, int) or isinstance(limit_rows, bool) or limit_rows < 0:
                raise InvalidInput(f"limit_rows must be a non-negative integer: {limit_rows!r}")
            if rows > limit_rows:
                return False
        dialect_insert = (
            postgresql.insert if self._session.dialect == "postgresql" else sqlite.insert
        )
        insert = dialect_insert(usage).values(
            partner_id=record.partner_id,
            charter_id=record.charter_id,
            day=record.day.isoformat(),
            rows=record.rows,
            requests=record.requests,
        )
        new_rows = usage.c.rows + insert.excluded.rows
        statement = insert.on_conflict_do_update(
            index_elements=[usage.c.partner_id, usage.c.charter_id, usage.c.day],
            set_={"rows": new_rows, "requests": usage.c.requests + insert.excluded.requests},
            where=None if limit_rows is None else new_rows <= limit_rows,
        )
        # RETURNING, not rowcount: drivers disagree on the row count of an upsert.
        return self._session.execute(statement.returning(usage.c.rows)).first() is not None

    def usage(self, partner_id: str, charter_id: str, day: date) -> UsageRecord:
        empty = UsageRecord(partner_id, charter_id, day, 0, 0)  # validates
        row = self._session.execute(
            sa.select(usage.c.rows, usage.c.requests).where(
                usage.c.partner_id == partner_id,
                usage.c.charter_id == charter_id,
                usage.c.day == day.isoformat(),
            )
        ).first()
        if row is None:
            return empty
        return UsageRecord(partner_id, charter_id, day, row.rows, row.requests)

    def totals(
        self,
        *,
        partner_id: str | None = None,
        since: date | None = None,
        until: date | None = None,
    ) -> builtins.list[UsageTotal]:
        query = sa.select(
            usage.c.partner_id,
            usage.c.charter_id,
            sa.func.sum(usage.c.rows).label("rows"),
            sa.func.sum(usage.c.requests).label("requests"),
            sa.func.min(usage.c.day).label("first_day"),
            sa.func.max(usage.c.day).label("last_day"),
        ).group_by(usage.c.partner_id, usage.c.charter_id)
        if partner_id is not None:
            query = query.where(usage.c.partner_id == partner_id)
        if since is not None:
            require_day(since, "since")
            query = query.where(usage.c.day >= since.isoformat())
        if until is not None:
            require_day(until, "until")
            query = query.where(usage.c.day < until.isoformat())
        query = query.order_by(
            self._session.by_code_point(usage.c.partner_id),
            self._session.by_code_point(usage.c.charter_id),
        )
        return [_total(row) for row in self._session.execute(query)]
