"""The extraction monitor's rows over SQL: training summaries, detector state, responses."""

from __future__ import annotations

import builtins
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from modelpact.errors import InvalidInput, NotFound
from modelpact.store._schema import model_versions, monitor_states, protections, training_summaries
from modelpact.store._sql_session import Session
from modelpact.store._sql_state import SqlStateRepository
from modelpact.store.records import MonitorStateRecord, ProtectionRecord

__all__ = ["SqlMonitorRepository"]

_KEY = ("partner_id", "charter_id", "model")


def _key(table: sa.Table, partner_id: str, charter_id: str, model: str) -> list[Any]:
    """The conditions that pick one partner's, charter's and model's row of ``table``."""
    return [
        table.c.partner_id == partner_id,
        table.c.charter_id == charter_id,
        table.c.model == model,
    ]


def _protection(row: sa.Row[Any]) -> ProtectionRecord:
    return ProtectionRecord(
        partner_id=row.partner_id,
        charter_id=row.charter_id,
        model=row.model,
        step=row.step,
        response=row.response,
        since=row.since,
        evidence=row.evidence,
    )


class SqlMonitorRepository:
    """:class:`~modelpact.store.interfaces.MonitorRepository` over SQL."""

    def __init__(self, session: Session, state: SqlStateRepository) -> None:
        self._session = session
        self._state = state

    def _upsert(self, table: sa.Table, keys: tuple[str, ...], values: dict[str, Any]) -> None:
        insert = (postgresql.insert if self._session.dialect == "postgresql" else sqlite.insert)(
            table
        ).values(**values)
        self._session.execute(
            insert.on_conflict_do_update(
                index_elements=[table.c[k] for k in keys],
                set_={k: insert.excluded[k] for k in values if k not in keys},
            )
        )

    # -- training summaries ----------------------------------------------------------------

    def put_summary(self, model: str, version: str, summary: str) -> None:
        if not isinstance(summary, str) or not summary:
            raise InvalidInput("a training summary must be non-empty JSON text")
        found = self._session.execute(
            sa.select(model_versions.c.id).where(
                model_versions.c.model == model, model_versions.c.version == version
            )
        ).first()
        if found is None:
            raise NotFound(f"model {model} has no version {version}")
        self._upsert(
            training_summaries,
            ("model", "version"),
            {"model": model, "version": version, "summary": summary},
        )

    def summary(self, model: str, version: str) -> str | None:
        row = self._session.execute(
            sa.select(training_summaries.c.summary).where(
                training_summaries.c.model == model, training_summaries.c.version == version
            )
        ).first()
        return None if row is None else str(row.summary)

    # -- detector state --------------------------------------------------------------------

    def state(self, partner_id: str, charter_id: str, model: str) -> MonitorStateRecord | None:
        row = self._session.execute(
            sa.select(monitor_states).where(*_key(monitor_states, partner_id, charter_id, model))
        ).first()
        if row is None:
            return None
        return MonitorStateRecord(
            row.partner_id, row.charter_id, row.model, row.state, row.updated_at
        )

    def save_state(self, record: MonitorStateRecord) -> None:
        self._upsert(
            monitor_states,
            _KEY,
            {
                "partner_id": record.partner_id,
                "charter_id": record.charter_id,
                "model": record.model,
                "state": record.state,
                "updated_at": record.updated_at,
            },
        )

    def delete_state(self, partner_id: str, charter_id: str, model: str) -> bool:
        result = self._session.execute(
            sa.delete(monitor_states).where(*_key(monitor_states, partner_id, charter_id, model))
        )
        return bool(result.rowcount)

    # -- responses in force ----------------------------------------------------------------

    def protection(self, partner_id: str, charter_id: str, model: str) -> ProtectionRecord | None:
        row = self._session.execute(
            sa.select(protections).where(*_key(protections, partner_id, charter_id, model))
        ).first()
        return None if row is None else _protection(row)

    def set_protection(self, record: ProtectionRecord) -> None:
        self._upsert(
            protections,
            _KEY,
            {
                "partner_id": record.partner_id,
                "charter_id": record.charter_id,
                "model": record.model,
                "step": record.step,
                "response": record.response,
                "since": record.since,
                "evidence": record.evidence,
            },
        )
        self._state.bump()

    def clear_protection(self, partner_id: str, charter_id: str, model: str) -> bool:
        result = self._session.execute(
            sa.delete(protections).where(*_key(protections, partner_id, charter_id, model))
        )
        if result.rowcount:
            self._state.bump()
        return bool(result.rowcount)

    def protections(self) -> builtins.list[ProtectionRecord]:
        rows = self._session.execute(
            sa.select(protections).order_by(
                self._session.by_code_point(protections.c.partner_id),
                self._session.by_code_point(protections.c.charter_id),
                self._session.by_code_point(protections.c.model),
            )
        )
        return [_protection(row) for row in rows]
