"""The rows holding KEK-wrapped keys, over SQL, for a KEK rotation.

Each write is a compare-and-set (``WHERE`` the old bytes), so a row that changed since
it was read — a monitor state saved again, say — is left to the next pass rather than
overwritten.
"""

from __future__ import annotations

import builtins

import sqlalchemy as sa

from modelpact.store._schema import model_versions, monitor_states, watermark_keys
from modelpact.store._sql_session import Session

__all__ = ["SqlKeyRepository"]


class SqlKeyRepository:
    """:class:`~modelpact.store.interfaces.KeyRepository` over SQL."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def model_keys(self) -> builtins.list[tuple[str, str, bytes]]:
        rows = self._session.execute(
            sa.select(
                model_versions.c.model, model_versions.c.version, model_versions.c.wrapped_key
            ).order_by(model_versions.c.model, model_versions.c.version)
        )
        return [(str(r.model), str(r.version), bytes(r.wrapped_key)) for r in rows]

    def replace_model_key(self, model: str, version: str, old: bytes, new: bytes) -> bool:
        result = self._session.execute(
            sa.update(model_versions)
            .where(
                model_versions.c.model == model,
                model_versions.c.version == version,
                model_versions.c.wrapped_key == old,
            )
            .values(wrapped_key=new)
        )
        return bool(result.rowcount)

    def watermark_keys(self) -> builtins.list[tuple[str, str]]:
        rows = self._session.execute(
            sa.select(watermark_keys.c.partner_id, watermark_keys.c.sealed).order_by(
                watermark_keys.c.partner_id
            )
        )
        return [(str(r.partner_id), str(r.sealed)) for r in rows]

    def replace_watermark_key(self, partner_id: str, old: str, new: str) -> bool:
        result = self._session.execute(
            sa.update(watermark_keys)
            .where(watermark_keys.c.partner_id == partner_id, watermark_keys.c.sealed == old)
            .values(sealed=new)
        )
        return bool(result.rowcount)

    def monitor_states(self) -> builtins.list[tuple[str, str, str, str]]:
        rows = self._session.execute(
            sa.select(
                monitor_states.c.partner_id,
                monitor_states.c.charter_id,
                monitor_states.c.model,
                monitor_states.c.state,
            ).order_by(
                monitor_states.c.partner_id, monitor_states.c.charter_id, monitor_states.c.model
            )
        )
        return [(str(r.partner_id), str(r.charter_id), str(r.model), str(r.state)) for r in rows]

    def replace_monitor_state(
        self, partner_id: str, charter_id: str, model: str, old: str, new: str
    ) -> bool:
        result = self._session.execute(
            sa.update(monitor_states)
            .where(
                monitor_states.c.partner_id == partner_id,
                monitor_states.c.charter_id == charter_id,
                monitor_states.c.model == model,
                monitor_states.c.state == old,
            )
            .values(state=new)
        )
        return bool(result.rowcount)
