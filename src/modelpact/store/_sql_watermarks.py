"""Watermark keys and marked queries over SQL (both sealed by the caller: opaque text here)."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from modelpact.errors import AlreadyExists, InvalidInput
from modelpact.store._schema import watermark_keys, watermark_marks
from modelpact.store._sql_session import Session
from modelpact.store.records import MarkRecord, require_aware

__all__ = ["SqlWatermarkRepository"]


def _mark(row: sa.Row[Any]) -> MarkRecord:
    return MarkRecord(
        partner_id=row.partner_id,
        charter_id=row.charter_id,
        model=row.model,
        version=row.version,
        rows=row.rows,
        sealed=row.sealed,
        created_at=row.created_at,
    )


class SqlWatermarkRepository:
    """:class:`~modelpact.store.interfaces.WatermarkRepository` over SQL."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def key(self, partner_id: str) -> str | None:
        row = self._session.execute(
            sa.select(watermark_keys.c.sealed).where(watermark_keys.c.partner_id == partner_id)
        ).first()
        return None if row is None else str(row.sealed)

    def add_key(self, partner_id: str, sealed: str, at: datetime) -> None:
        if not sealed:
            raise InvalidInput("a sealed key must not be empty")
        require_aware(at, "at")
        if self.key(partner_id) is not None:
            raise AlreadyExists(f"partner {partner_id} already has a watermark key")
        self._session.execute(
            sa.insert(watermark_keys).values(partner_id=partner_id, sealed=sealed, created_at=at)
        )

    def partners(self) -> builtins.list[str]:
        rows = self._session.execute(
            sa.select(watermark_keys.c.partner_id).order_by(
                self._session.by_code_point(watermark_keys.c.partner_id)
            )
        )
        return [str(row.partner_id) for row in rows]

    def add_marks(self, record: MarkRecord) -> None:
        self._session.execute(
            sa.insert(watermark_marks).values(
                partner_id=record.partner_id,
                charter_id=record.charter_id,
                model=record.model,
                version=record.version,
                rows=record.rows,
                sealed=record.sealed,
                created_at=record.created_at,
            )
        )

    def marks(self, partner_id: str, model: str | None = None) -> builtins.list[MarkRecord]:
        query = sa.select(watermark_marks).where(watermark_marks.c.partner_id == partner_id)
        if model is not None:
            query = query.where(watermark_marks.c.model == model)
        rows = self._session.execute(query.order_by(watermark_marks.c.id))
        return [_mark(row) for row in rows]

    def destroy(self, partner_id: str) -> int:
        gone = self._session.execute(
            sa.select(sa.func.coalesce(sa.func.sum(watermark_marks.c.rows), 0)).where(
                watermark_marks.c.partner_id == partner_id
            )
        ).scalar_one()
        self._session.execute(
            sa.delete(watermark_marks).where(watermark_marks.c.partner_id == partner_id)
        )
        self._session.execute(
            sa.delete(watermark_keys).where(watermark_keys.c.partner_id == partner_id)
        )
        return int(gone)
