"""Sessions over SQL: one-time challenges and sessions keyed by the SHA-256 of their token.

Consuming a challenge is one conditional ``UPDATE … WHERE used_at IS NULL …
RETURNING``: whatever the isolation level, a second consumer (in this process or
another) finds the row already used and gets nothing back.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from modelpact.errors import AlreadyExists, NotFound
from modelpact.store._schema import session_challenges, sessions
from modelpact.store._sql_session import Session
from modelpact.store._sql_state import SqlStateRepository
from modelpact.store.records import (
    ChallengeRecord,
    SessionRecord,
    require_aware,
    require_hash,
)

__all__ = ["SqlSessionRepository"]


class SqlSessionRepository:
    """:class:`~modelpact.store.interfaces.SessionRepository` over SQL."""

    def __init__(self, session: Session, state: SqlStateRepository) -> None:
        self._session = session
        self._state = state

    # -- challenges ------------------------------------------------------------------------

    def add_challenge(self, record: ChallengeRecord) -> None:
        self._session.write(
            sa.insert(session_challenges).values(
                nonce=record.nonce,
                partner_id=record.partner_id,
                issued_at=record.issued_at,
                expires_at=record.expires_at,
                used_at=record.used_at,
            ),
            duplicate=lambda: AlreadyExists("that challenge nonce was issued before"),
        )

    def consume_challenge(
        self, nonce: str, partner_id: str, now: datetime
    ) -> ChallengeRecord | None:
        require_aware(now, "now")
        row = self._session.execute(
            sa.update(session_challenges)
            .where(
                session_challenges.c.nonce == nonce,
                session_challenges.c.partner_id == partner_id,
                session_challenges.c.used_at.is_(None),
                session_challenges.c.expires_at > now,
            )
            .values(used_at=now)
            .returning(*session_challenges.c)
        ).first()
        return None if row is None else ChallengeRecord(**row._mapping)

    def delete_expired_challenges(self, now: datetime) -> int:
        require_aware(now, "now")
        result = self._session.execute(
            sa.delete(session_challenges).where(session_challenges.c.expires_at <= now)
        )
        return result.rowcount

    # -- sessions --------------------------------------------------------------------------

    def add(self, record: SessionRecord) -> None:
        self._session.write(
            sa.insert(sessions).values(
                token_hash=record.token_hash,
                partner_id=record.partner_id,
                charter_id=record.charter_id,
                charter_version=record.charter_version,
                purpose=record.purpose,
                issued_at=record.issued_at,
                expires_at=record.expires_at,
                revoked_at=record.revoked_at,
            ),
            duplicate=lambda: AlreadyExists("a session with that token already exists"),
            missing=lambda: NotFound(
                f"a session names partner {record.partner_id!r}, which does not exist"
            ),
        )

    def get(self, token_hash: bytes) -> SessionRecord:
        require_hash(token_hash, "token_hash")
        row = self._session.execute(
            sa.select(sessions).where(sessions.c.token_hash == token_hash)
        ).first()
        if row is None:
            raise NotFound("no session has that token")
        values = dict(row._mapping)
        values["token_hash"] = bytes(values["token_hash"])
        return SessionRecord(**values)

    def revoke(self, token_hash: bytes, at: datetime) -> None:
        require_hash(token_hash, "token_hash")
        require_aware(at, "at")
        result = self._session.execute(
            sa.update(sessions)
            .where(sessions.c.token_hash == token_hash, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        if result.rowcount == 0:
            self.get(token_hash)  # NotFound if absent; otherwise it was revoked already
        else:
            self._state.bump()

    def revoke_partner(self, partner_id: str, at: datetime) -> int:
        require_aware(at, "at")
        result = self._session.execute(
            sa.update(sessions)
            .where(sessions.c.partner_id == partner_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        if result.rowcount:
            self._state.bump()
        return result.rowcount

    def revoke_charter(self, partner_id: str, charter_id: str, at: datetime) -> int:
        require_aware(at, "at")
        result = self._session.execute(
            sa.update(sessions)
            .where(
                sessions.c.partner_id == partner_id,
                sessions.c.charter_id == charter_id,
                sessions.c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        if result.rowcount:
            self._state.bump()
        return result.rowcount
