"""Partner enrolment and status: active, suspended (reversible) or revoked (final); a
partner's key rotated offline (a statement the partner signed with both keys)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta

from pydantic import ValidationError

from modelpact import wire
from modelpact.charter import SLUG_PATTERN
from modelpact.crypto import VerifyKey
from modelpact.errors import (
    AlreadyExists,
    Expired,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    quote_untrusted,
)
from modelpact.services.events import record_event
from modelpact.services.workspace import Workspace
from modelpact.store import PartnerRecord

__all__ = ["OFFLINE_AUDIENCE", "PartnerDirectory"]

#: The audience a partner names in a key rotation it hands to the owner offline.
OFFLINE_AUDIENCE = "modelpact-offline"
#: How long an offline rotation statement may travel before the owner applies it.
OFFLINE_MAX_AGE = timedelta(days=7)
_SKEW = timedelta(minutes=5)

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

    def rotate_key_offline(self, partner_id: str, statement: str, *, actor: str = "owner") -> int:
        """Enrol the new key a statement names (``modelpact partner rotate-key
        --statement-out``), once the enrolled key and the new key both signed it.

        The statement is :class:`~modelpact.wire.PartnerKeyRotation` for the audience
        :data:`OFFLINE_AUDIENCE`, signed within :data:`OFFLINE_MAX_AGE`.  It cannot be
        replayed: once applied, its old key is no longer the enrolled one.  The partner's
        sessions are revoked and the rotation (both signatures) logged with the key change.
        Returns how many sessions were revoked.
        """
        try:
            rotation = wire.PartnerKeyRotation.model_validate_json(statement)
        except ValidationError:
            raise InvalidInput(
                "not a partner key rotation statement",
                hint="the partner writes one with 'modelpact partner rotate-key --statement-out'",
            ) from None
        if rotation.partner != partner_id:
            raise InvalidInput(
                f"the statement rotates the key of {quote_untrusted(rotation.partner)}, "
                f"not of {partner_id}"
            )
        message = wire.partner_key_rotation_message(
            audience=OFFLINE_AUDIENCE,
            partner=rotation.partner,
            old_key=rotation.old_key,
            new_key=rotation.new_key,
            nonce=rotation.nonce,
            signed_at=rotation.signed_at,
        )
        new_key = VerifyKey.decode(rotation.new_key)
        ws = self._ws
        now = ws.clock()
        if not now - OFFLINE_MAX_AGE <= rotation.signed_at <= now + _SKEW:
            raise Expired(
                f"the statement was signed at {rotation.signed_at.isoformat()}; "
                f"one signed within {OFFLINE_MAX_AGE.days} days is needed",
                hint="ask the partner for a new statement",
            )
        if new_key == ws.owner_verify_key:
            raise InvalidInput("that is the owner's own key, not a partner's")
        with ws.store.unit_of_work() as uow:
            current = uow.partners.get(partner_id)
            if rotation.old_key != current.public_key:
                raise SignatureInvalid(
                    f"the statement rotates from {rotation.old_key}, not from the key "
                    f"enrolled for {partner_id}",
                    hint="it was applied already, or made with another key",
                )
            if current.status == "revoked":
                raise InvalidInput(f"partner {partner_id} is revoked; its key is not rotated")
            for key, signature in (
                (VerifyKey.decode(current.public_key), rotation.old_signature),
                (new_key, rotation.new_signature),
            ):
                try:
                    key.verify(base64.b64decode(signature, validate=True), message)
                except (binascii.Error, ValueError):
                    raise SignatureInvalid("a signature of the statement is not base64") from None
            if not uow.partners.set_public_key(
                partner_id, new_key.encode(), now, expected=current.public_key
            ):
                raise InvalidInput(f"the key of {partner_id} changed meanwhile; nothing rotated")
            revoked = uow.sessions.revoke_partner(partner_id, now)
            record_event(
                ws,
                uow,
                actor=actor,
                kind="partner.key_rotate",
                subject=partner_id,
                old_key=rotation.old_key,
                new_key=new_key.encode(),
                nonce=rotation.nonce,
                signed_at=wire.instant(rotation.signed_at),
                old_signature=rotation.old_signature,
                new_signature=rotation.new_signature,
                sessions_revoked=revoked,
                offline=True,
            )
        return revoked

    def require(self, partner_id: str) -> PartnerRecord:
        try:
            return self.get(partner_id)
        except NotFound:
            raise NotFound(
                f"no partner named {partner_id}",
                hint="enrol it with 'modelpact partner add ID --public-key KEY'",
            ) from None
