"""A partner rotates its key: it proves the old key while registering the new one."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from modelpact.audit.entries import AdminEntry
from modelpact.client.protocol import Identity
from modelpact.crypto import SigningKey
from modelpact.errors import Unauthenticated
from modelpact.services import PartnerDirectory, Workspace
from modelpact.wire import Challenge, PartnerKeyRotation
from tests.gateway.conftest import KEYS, MODEL, client, entries, raw, run

ROW = [[0.5] * 30]


def admin(ws: Workspace, action: str) -> list[AdminEntry]:
    return [e for e in entries(ws) if isinstance(e, AdminEntry) and e.action == action]


def test_the_rotated_key_opens_sessions_and_the_old_one_no_longer_does(
    app: Any, ws: Workspace
) -> None:
    new = SigningKey.generate()

    async def scenario() -> None:
        async with client(app, ws) as before:
            grant = await before.open_session()
            result = await before.rotate_key(new)
            assert result.partner == "acme" and result.key == new.verify_key.encode()
            assert result.sessions_revoked == 1
            # The client goes on with the new key (the old session was revoked).
            assert (await before.predict(MODEL, ROW)).outputs
        async with raw(app) as http:
            stale = await http.get(
                "/v1/privacy-budget",
                params={"model": MODEL},
                headers={"Authorization": f"Bearer {grant.token}"},
            )
            assert stale.status_code == 401  # the session opened with the old key is gone
        async with client(app, ws, key=new) as after:
            assert (await after.predict(MODEL, ROW)).outputs
        async with client(app, ws) as thief:  # the old key
            with pytest.raises(Unauthenticated):
                await thief.open_session()

    run(scenario())
    assert PartnerDirectory(ws).get("acme").public_key == new.verify_key.encode()
    [entry] = admin(ws, "partner.key_rotate")
    assert entry.actor == "acme"
    assert entry.detail["old_key"] == KEYS["acme"].verify_key.encode()
    assert entry.detail["new_key"] == new.verify_key.encode()
    assert entry.detail["old_signature"] and entry.detail["new_signature"]


async def _challenge(http: Any, partner: str = "acme") -> Challenge:
    reply = await http.post("/v1/sessions/challenge", json={"partner": partner})
    return Challenge.model_validate(reply.json())


@pytest.mark.parametrize("forgery", ["old-by-stranger", "old-by-new", "new-by-old"])
def test_a_rotation_without_proof_of_both_keys_is_refused_and_audited(
    app: Any, ws: Workspace, forgery: str
) -> None:
    """Whoever holds only one of the two keys cannot move the partner to another key."""
    new, stranger = SigningKey.generate(), SigningKey.generate()
    old = KEYS["acme"]

    async def scenario() -> int:
        async with raw(app) as http:
            challenge = await _challenge(http)
            signer = {"old-by-stranger": stranger, "old-by-new": new, "new-by-old": old}[forgery]
            honest = Identity("acme", old, "northwind-acme", "fraud-screening")
            request = honest.rotation_request(challenge, new, ws.clock())
            forged_signature = base64.b64encode(
                signer.sign(_message(request, challenge.audience))
            ).decode()
            field = "new_signature" if forgery == "new-by-old" else "old_signature"
            body = request.model_copy(update={field: forged_signature})
            reply = await http.post("/v1/partner/key", json=body.model_dump(mode="json"))
            return reply.status_code

    assert run(scenario()) == 401
    assert PartnerDirectory(ws).get("acme").public_key == KEYS["acme"].verify_key.encode()
    [refused] = admin(ws, "partner.key_rotate_refused")
    assert refused.actor == "acme" and refused.detail["new_key"] == new.verify_key.encode()
    assert not admin(ws, "partner.key_rotate")


def _message(request: PartnerKeyRotation, audience: str) -> bytes:
    from modelpact.wire import partner_key_rotation_message

    return partner_key_rotation_message(
        audience=audience,
        partner=request.partner,
        old_key=request.old_key,
        new_key=request.new_key,
        nonce=request.nonce,
        signed_at=request.signed_at,
    )


def test_a_rotation_cannot_be_replayed(app: Any, ws: Workspace) -> None:
    new = SigningKey.generate()

    async def scenario() -> tuple[int, int]:
        async with raw(app) as http:
            challenge = await _challenge(http)
            identity = Identity("acme", KEYS["acme"], "northwind-acme", "fraud-screening")
            body = identity.rotation_request(challenge, new, ws.clock()).model_dump(mode="json")
            first = await http.post("/v1/partner/key", json=body)
            second = await http.post("/v1/partner/key", json=body)
            return first.status_code, second.status_code

    assert run(scenario()) == (200, 401)
    assert len(admin(ws, "partner.key_rotate")) == 1
    assert len(admin(ws, "partner.key_rotate_refused")) == 1


def test_a_rotation_to_another_partners_key_is_refused(app: Any, ws: Workspace) -> None:
    async def scenario() -> int:
        async with raw(app) as http:
            challenge = await _challenge(http)
            identity = Identity("acme", KEYS["acme"], "northwind-acme", "fraud-screening")
            body = identity.rotation_request(challenge, KEYS["globex"], ws.clock())
            reply = await http.post("/v1/partner/key", json=body.model_dump(mode="json"))
            return reply.status_code

    assert run(scenario()) == 409
    assert PartnerDirectory(ws).get("acme").public_key == KEYS["acme"].verify_key.encode()
