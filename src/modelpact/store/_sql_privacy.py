"""Privacy budgets spent, over SQL: one conditional upsert, as the daily quota's."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from modelpact.errors import InvalidInput
from modelpact.store._schema import privacy_spend
from modelpact.store._sql_session import Session

__all__ = ["SqlPrivacyRepository"]


class SqlPrivacyRepository:
    """:class:`~modelpact.store.interfaces.PrivacyRepository` over SQL."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def spend(
        self, partner_id: str, charter_id: str, model: str, cost: int, limit: int
    ) -> int | None:
        for name, value in (("cost", cost), ("limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{name} must be a non-negative integer: {value!r}")
        if cost > limit:
            return None
        dialect_insert = (
            postgresql.insert if self._session.dialect == "postgresql" else sqlite.insert
        )
        insert = dialect_insert(privacy_spend).values(
            partner_id=partner_id, charter_id=charter_id, model=model, spent=cost
        )
        total = privacy_spend.c.spent + insert.excluded.spent
        statement = insert.on_conflict_do_update(
            index_elements=[privacy_spend.c.partner_id, privacy_spend.c.charter_id,
                            privacy_spend.c.model],
            set_={"spent": total},
            where=total <= limit,
        )  # fmt: skip
        row = self._session.execute(statement.returning(privacy_spend.c.spent)).first()
        return None if row is None else int(row.spent)

    def spent(self, partner_id: str, charter_id: str, model: str) -> int:
        row = self._session.execute(
            sa.select(privacy_spend.c.spent).where(
                privacy_spend.c.partner_id == partner_id,
                privacy_spend.c.charter_id == charter_id,
                privacy_spend.c.model == model,
            )
        ).first()
        return 0 if row is None else int(row.spent)
