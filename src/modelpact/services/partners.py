"""Partner enrolment and status: active, suspended (reversible) or revoked (final)."""

from __future__ import annotations

import re

from modelpact.charter import SLUG_PATTERN
from modelpact.crypto import VerifyKey
from modelpact.errors import AlreadyExists, InvalidInput, NotFound
from modelpact.services.events import record_event
from modelpact.services.workspace import Workspace
from modelpact.store import PartnerRecord

__all__ = ["PartnerDirectory"]

_ID = re.compile(SLUG_PATTERN)
_MAX_NAME = 200
_TRANSITIONS = {
    "suspend": ({"active"}, "suspended"),
    "resume": ({"suspended"}, "active"),
    "revoke": ({"active", "suspended"}, "revoked"),
}


class PartnerDirectory:
    """The partners the owner has enrolled, known only by their public keys."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def enrol(
        self, partner_id: str, public_key: str, *, name: str | None = None, actor: str = "owner"
    ) -> PartnerRecord:
        if not _ID.match(partner_id):
            raise InvalidInput(f"partner id {partner_id!r} is not a lower-case slug")
        display = partner_id if name is None else name.strip()
        if not display or len(display) > _MAX_NAME or not display.isprintable():
            raise InvalidInput(
                f"partner name must be 1 to {_MAX_NAME} printable characters",
                hint="no control characters or line breaks",
            )
        key = VerifyKey.decode(public_key.strip())
        if key == self._ws.owner_verify_key:
            raise InvalidInput("that is the owner's own key, not a partner's")
        ws = self._ws
        now = ws.clock()
        record = PartnerRecord(
            id=partner_id,
            name=display,
            public_key=key.encode(),
            status="active",
            created_at=now,
            updated_at=now,
        )
        with ws.store.unit_of_work() as uow:
            for other in uow.partners.list():
                if other.public_key == record.public_key:
                    raise AlreadyExists(f"that key is already enrolled as partner {other.id}")
            uow.partners.add(record)
            record_event(
                ws, uow, actor=actor, kind="partner.add", subject=partner_id, key=record.public_key
            )
        return record

    def get(self, partner_id: str) -> PartnerRecord:
        with self._ws.store.unit_of_work() as uow:
            return uow.partners.get(partner_id)

    def all(self) -> list[PartnerRecord]:
        with self._ws.store.unit_of_work() as uow:
            return list(uow.partners.list())

    def change_status(
        self, partner_id: str, verb: str, *, actor: str = "owner", reason: str | None = None
    ) -> PartnerRecord:
        """``suspend``, ``resume`` or ``revoke``; a revoked partner stays revoked.  ``reason``
        (the dashboard asks for one) goes in the audit entry."""
        if verb not in _TRANSITIONS:
            raise InvalidInput(f"unknown partner action {verb!r}")
        allowed_from, target = _TRANSITIONS[verb]
        ws = self._ws
        with ws.store.unit_of_work() as uow:
            current = uow.partners.get(partner_id)
            if current.status not in allowed_from:
                raise InvalidInput(f"partner {partner_id} is {current.status}; cannot {verb}")
            uow.partners.set_status(partner_id, target, ws.clock())
            updated = uow.partners.get(partner_id)
            record_event(
                ws,
                uow,
                actor=actor,
                kind=f"partner.{verb}",
                subject=partner_id,
                previous=current.status,
                **({} if reason is None else {"reason": reason}),
            )
        return updated

    def require(self, partner_id: str) -> PartnerRecord:
        try:
            return self.get(partner_id)
        except NotFound:
            raise NotFound(
                f"no partner named {partner_id}",
                hint="enrol it with 'modelpact partner add ID --public-key KEY'",
            ) from None
