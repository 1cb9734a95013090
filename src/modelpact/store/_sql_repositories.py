"""The SQL repositories: one unit of work's connection, seen through the store's protocols.

Writes that can collide run in a savepoint (see :mod:`._sql_session`).  Text keys
are listed in code-point order (``COLLATE "C"`` on PostgreSQL, SQLite's
binary order), the same whatever the database's collation.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from modelpact.errors import (
    AlreadyExists,
    InvalidInput,
    ModelpactError,
    NotFound,
)
from modelpact.store._schema import charters, model_versions, models, partners
from modelpact.store._sql_audit import SqlAuditRepository
from modelpact.store._sql_keys import SqlKeyRepository
from modelpact.store._sql_monitor import SqlMonitorRepository
from modelpact.store._sql_privacy import SqlPrivacyRepository
from modelpact.store._sql_session import Session
from modelpact.store._sql_sessions import SqlSessionRepository
from modelpact.store._sql_state import SqlStateRepository
from modelpact.store._sql_usage import SqlUsageRepository
from modelpact.store._sql_watermarks import SqlWatermarkRepository
from modelpact.store.records import (
    CHARTER_STATUSES,
    PARTNER_STATUSES,
    CharterRecord,
    ModelRecord,
    ModelVersionRecord,
    PartnerRecord,
    require_aware,
)

__all__ = [
    "SqlCharterRepository",
    "SqlModelRepository",
    "SqlPartnerRepository",
    "SqlUnitOfWork",
]


class SqlPartnerRepository:
    """:class:`~modelpact.store.interfaces.PartnerRepository` over SQL."""

    def __init__(self, session: Session, state: SqlStateRepository) -> None:
        self._session = session
        self._state = state

    def add(self, record: PartnerRecord) -> None:
        def duplicate() -> ModelpactError:
            if self._find(record.id) is not None:
                return AlreadyExists(f"partner {record.id!r} already exists")
            return AlreadyExists(
                f"public key of partner {record.id!r} is already registered to another partner",
                hint="each partner organisation has its own key pair",
            )

        self._session.write(
            sa.insert(partners).values(
                id=record.id,
                name=record.name,
                public_key=record.public_key,
                status=record.status,
                created_at=record.created_at,
                updated_at=record.updated_at,
            ),
            duplicate=duplicate,
        )
        self._state.bump()

    def _find(self, partner_id: str) -> PartnerRecord | None:
        row = self._session.execute(sa.select(partners).where(partners.c.id == partner_id)).first()
        return None if row is None else PartnerRecord(**row._mapping)

    def get(self, partner_id: str) -> PartnerRecord:
        found = self._find(partner_id)
        if found is None:
            raise NotFound(f"partner {partner_id!r} does not exist")
        return found

    def lock(self, partner_id: str) -> PartnerRecord:
        row = self._session.execute(
            sa.select(partners).where(partners.c.id == partner_id).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"partner {partner_id!r} does not exist")
        return PartnerRecord(**row._mapping)

    def list(self) -> builtins.list[PartnerRecord]:
        result = self._session.execute(
            sa.select(partners).order_by(self._session.by_code_point(partners.c.id))
        )
        return [PartnerRecord(**row._mapping) for row in result]

    def set_status(self, partner_id: str, status: str, at: datetime) -> None:
        if status not in PARTNER_STATUSES:
            raise InvalidInput(f"unknown partner status {status!r}")
        require_aware(at, "at")
        result = self._session.execute(
            sa.update(partners)
            .where(partners.c.id == partner_id)
            .values(status=status, updated_at=at)
        )
        if result.rowcount == 0:
            raise NotFound(f"partner {partner_id!r} does not exist")
        self._state.bump()

    def set_public_key(
        self, partner_id: str, public_key: str, at: datetime, *, expected: str
    ) -> bool:
        require_aware(at, "at")
        self.get(partner_id)  # NotFound
        # One conditional UPDATE: of two rotations from the same key, the second finds
        # the key changed (PostgreSQL re-checks the WHERE once the first commits).
        self._session.write(
            sa.update(partners)
            .where(
                partners.c.id == partner_id,
                partners.c.public_key == expected,
                partners.c.status != "revoked",
            )
            .values(public_key=public_key, updated_at=at),
            duplicate=lambda: AlreadyExists(
                f"that key is already registered to another partner than {partner_id!r}",
                hint="each partner organisation has its own key pair",
            ),
        )
        if self.get(partner_id).public_key != public_key:
            return False
        self._state.bump()
        return True


_VERSION_COLUMNS = [c for c in model_versions.c if c.name != "id"]
_MODEL_COLUMNS = [models.c.name, models.c.served_version, models.c.created_at]


def _version_record(row: sa.Row[Any]) -> ModelVersionRecord:
    values = dict(row._mapping)
    values["wrapped_key"] = bytes(values["wrapped_key"])
    values["signature_bundle"] = bytes(values["signature_bundle"])
    return ModelVersionRecord(**values)


class SqlModelRepository:
    """:class:`~modelpact.store.interfaces.ModelRepository` over SQL."""

    def __init__(self, session: Session, state: SqlStateRepository) -> None:
        self._session = session
        self._state = state

    def add_version(self, record: ModelVersionRecord, *, serve: bool) -> None:
        dialect_insert = (
            postgresql.insert if self._session.dialect == "postgresql" else sqlite.insert
        )
        statements: builtins.list[sa.Executable] = [
            dialect_insert(models)
            .values(
                name=record.model,
                served_version=None,
                created_at=record.created_at,
                updated_at=record.created_at,
            )
            .on_conflict_do_nothing(),
            sa.insert(model_versions).values(
                model=record.model,
                version=record.version,
                digest=record.digest,
                size=record.size,
                artifact_key=record.artifact_key,
                wrapped_key=record.wrapped_key,
                signature_bundle=record.signature_bundle,
                card=record.card,
                created_at=record.created_at,
            ),
        ]
        if serve:
            statements.append(
                sa.update(models)
                .where(models.c.name == record.model)
                .values(served_version=record.version, updated_at=record.created_at)
            )
        self._session.write(
            *statements,
            duplicate=lambda: AlreadyExists(
                f"model {record.model!r} already has version {record.version!r}",
                hint="versions are immutable; register the new artifact under a new version",
            ),
        )
        self._state.bump()

    def get_version(self, model: str, version: str) -> ModelVersionRecord:
        row = self._session.execute(
            sa.select(*_VERSION_COLUMNS).where(
                model_versions.c.model == model, model_versions.c.version == version
            )
        ).first()
        if row is None:
            raise NotFound(f"model {model!r} has no version {version!r}")
        return _version_record(row)

    def get_model(self, name: str) -> ModelRecord:
        row = self._session.execute(sa.select(*_MODEL_COLUMNS).where(models.c.name == name)).first()
        if row is None:
            raise NotFound(f"model {name!r} does not exist")
        return ModelRecord(**row._mapping)

    def list_models(self) -> builtins.list[ModelRecord]:
        result = self._session.execute(
            sa.select(*_MODEL_COLUMNS).order_by(self._session.by_code_point(models.c.name))
        )
        return [ModelRecord(**row._mapping) for row in result]

    def list_versions(self, model: str) -> builtins.list[ModelVersionRecord]:
        result = self._session.execute(
            sa.select(*_VERSION_COLUMNS)
            .where(model_versions.c.model == model)
            .order_by(model_versions.c.created_at, model_versions.c.id)
        )
        found = [_version_record(row) for row in result]
        if not found:
            self.get_model(model)
        return found

    def set_served(self, model: str, version: str, at: datetime) -> str | None:
        require_aware(at, "at")
        row = self._session.execute(
            sa.select(models.c.served_version).where(models.c.name == model).with_for_update()
        ).first()
        if row is None:
            raise NotFound(f"model {model!r} does not exist")
        exists = self._session.execute(
            sa.select(model_versions.c.id).where(
                model_versions.c.model == model, model_versions.c.version == version
            )
        ).first()
        if exists is None:
            raise NotFound(f"model {model!r} has no version {version!r}")
        self._session.execute(
            sa.update(models)
            .where(models.c.name == model)
            .values(served_version=version, updated_at=at)
        )
        self._state.bump()
        previous: str | None = row.served_version
        return previous


class SqlCharterRepository:
    """:class:`~modelpact.store.interfaces.CharterRepository` over SQL."""

    def __init__(self, session: Session, state: SqlStateRepository) -> None:
        self._session = session
        self._state = state

    def add(self, record: CharterRecord) -> None:
        self._session.write(
            sa.insert(charters).values(
                charter_id=record.charter_id,
                version=record.version,
                partner_id=record.partner_id,
                envelope=record.envelope,
                digest=record.digest,
                status=record.status,
                applied_at=record.applied_at,
            ),
            duplicate=lambda: AlreadyExists(
                f"charter {record.charter_id!r} already has version {record.version}",
                hint="every change to a charter is a new version",
            ),
            missing=lambda: NotFound(
                f"charter {record.charter_id!r} names partner {record.partner_id!r}, "
                "which does not exist"
            ),
        )
        self._state.bump()

    def get(self, charter_id: str, version: int) -> CharterRecord:
        row = self._session.execute(
            sa.select(charters).where(
                charters.c.charter_id == charter_id, charters.c.version == version
            )
        ).first()
        if row is None:
            raise NotFound(f"charter {charter_id!r} has no version {version}")
        return CharterRecord(**row._mapping)

    def latest(self, charter_id: str) -> CharterRecord:
        row = self._session.execute(
            sa.select(charters)
            .where(charters.c.charter_id == charter_id)
            .order_by(charters.c.version.desc())
            .limit(1)
        ).first()
        if row is None:
            raise NotFound(f"charter {charter_id!r} does not exist")
        return CharterRecord(**row._mapping)

    def current(self, charter_id: str) -> CharterRecord:
        row = self._session.execute(
            sa.select(charters)
            .where(charters.c.charter_id == charter_id)
            .order_by(
                sa.case(
                    (charters.c.status == "active", 0),
                    (charters.c.status == "terminated", 1),
                    else_=2,
                ),
                charters.c.version.desc(),
            )
            .limit(1)
        ).first()
        if row is None:
            raise NotFound(f"charter {charter_id!r} does not exist")
        return CharterRecord(**row._mapping)

    def list(self, *, partner_id: str | None = None) -> builtins.list[CharterRecord]:
        query = sa.select(charters).order_by(
            self._session.by_code_point(charters.c.charter_id), charters.c.version
        )
        if partner_id is not None:
            query = query.where(charters.c.partner_id == partner_id)
        return [CharterRecord(**row._mapping) for row in self._session.execute(query)]

    def set_status(self, charter_id: str, version: int, status: str) -> None:
        if status not in CHARTER_STATUSES:
            raise InvalidInput(f"unknown charter status {status!r}")
        result = self._session.execute(
            sa.update(charters)
            .where(charters.c.charter_id == charter_id, charters.c.version == version)
            .values(status=status)
        )
        if result.rowcount == 0:
            raise NotFound(f"charter {charter_id!r} has no version {version}")
        self._state.bump()


class SqlUnitOfWork:
    """:class:`~modelpact.store.interfaces.UnitOfWork`: eleven repositories on one transaction.

    The partner, model, charter and session repositories bump ``state`` with each write
    that changes what a request depends on.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self.state = SqlStateRepository(session)
        self.partners = SqlPartnerRepository(session, self.state)
        self.models = SqlModelRepository(session, self.state)
        self.charters = SqlCharterRepository(session, self.state)
        self.audit = SqlAuditRepository(session)
        self.sessions = SqlSessionRepository(session, self.state)
        self.usage = SqlUsageRepository(session)
        self.monitor = SqlMonitorRepository(session, self.state)
        self.watermarks = SqlWatermarkRepository(session)
        self.privacy = SqlPrivacyRepository(session)
        self.keys = SqlKeyRepository(session)
