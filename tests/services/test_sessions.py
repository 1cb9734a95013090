"""Sessions over a real workspace: challenges, proofs of key, tokens checked on every request."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from modelpact.crypto import SigningKey
from modelpact.errors import Denied, Expired, InvalidInput, Unauthenticated
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.sessions import TOKEN_PREFIX, ActiveSession, SessionDesk, token_id
from modelpact.store import CharterRecord
from modelpact.store._schema import session_challenges
from modelpact.store._schema import sessions as sessions_table
from modelpact.store.sql import create_store_engine
from modelpact.wire import (
    Challenge,
    PartnerKeyRotation,
    SessionGrant,
    SessionRequest,
    session_message,
)
from tests.factories import FROM, UNTIL
from tests.services.conftest import START, FixedClock
from tests.services.test_charters import PARTNER, envelope

AUDIENCE = "modelpact/test/gateway"
CHARTER = "northwind-acme"
PURPOSE = "fraud-screening"
GLOBEX = SigningKey.generate()
STRANGER = SigningKey.generate()


@pytest.fixture
def ready(workspace: Workspace, onnx_bytes: bytes) -> Workspace:
    """acme (with an applied charter) and globex (with none) enrolled; the model registered."""
    ModelRegistry(workspace).add("fraud-detector", onnx_bytes, version="1.0.0", source="m.onnx")
    partners = PartnerDirectory(workspace)
    partners.enrol("acme", PARTNER.verify_key.encode())
    partners.enrol("globex", GLOBEX.verify_key.encode())
    CharterDesk(workspace).apply(envelope(workspace), source="e.json")
    return workspace


@pytest.fixture
def desk(ready: Workspace) -> SessionDesk:
    return SessionDesk(ready, audience=AUDIENCE)


def sign(
    challenge: Challenge,
    *,
    key: SigningKey = PARTNER,
    partner: str = "acme",
    charter: str = CHARTER,
    purpose: str = PURPOSE,
    signed_at: datetime | None = None,
    audience: str | None = None,
) -> SessionRequest:
    """What the partner SDK sends: the challenge signed with ``key``."""
    when = signed_at or START
    message = session_message(
        audience=audience or challenge.audience,
        partner=partner,
        charter=charter,
        purpose=purpose,
        nonce=challenge.nonce,
        signed_at=when,
    )
    return SessionRequest(
        partner=partner,
        charter=charter,
        purpose=purpose,
        nonce=challenge.nonce,
        signed_at=when,
        signature=base64.b64encode(key.sign(message)).decode("ascii"),
    )


def open_session(desk: SessionDesk, clock: FixedClock, **changes: object) -> SessionGrant:
    partner = str(changes.get("partner", "acme"))
    request = sign(desk.challenge(partner), signed_at=clock(), **changes)  # type: ignore[arg-type]
    return desk.open(request)


def apply_version(ws: Workspace, version: int, **changes: object) -> None:
    CharterDesk(ws).apply(envelope(ws, version, **changes), source=f"v{version}.json")


def rows_of(ws: Workspace, table: sa.Table) -> list[dict[str, object]]:
    engine = create_store_engine(ws.database_url)
    try:
        with engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(sa.select(table))]
    finally:
        engine.dispose()


# --- the happy path ---------------------------------------------------------------------


def test_challenge_open_authenticate(desk: SessionDesk, clock: FixedClock) -> None:
    challenge = desk.challenge("acme")
    assert challenge.audience == AUDIENCE
    assert challenge.expires_at == START + timedelta(seconds=60)
    assert len(base64.urlsafe_b64decode(challenge.nonce + "=")) == 32

    grant = desk.open(sign(challenge, signed_at=clock()))
    assert grant.token.startswith(TOKEN_PREFIX)
    assert len(base64.urlsafe_b64decode(grant.token[len(TOKEN_PREFIX) :] + "=")) == 32
    assert (grant.partner, grant.charter, grant.charter_version, grant.purpose) == (
        "acme",
        CHARTER,
        1,
        PURPOSE,
    )
    assert grant.expires_at == START + timedelta(minutes=15)  # the charter's session_ttl

    clock.advance(minutes=14)
    session = desk.authenticate(grant.token)
    assert session == ActiveSession(
        token_id="sha256:" + hashlib.sha256(grant.token.encode()).hexdigest(),
        partner="acme",
        charter=CHARTER,
        charter_version=1,
        purpose=PURPOSE,
        expires_at=grant.expires_at,
    )
    assert session.token_id == token_id(grant.token)
    charter = desk.charter(session)
    assert (charter.ref, charter.purposes) == (f"{CHARTER}@v1", (PURPOSE,))


def test_only_the_token_hash_is_stored(desk: SessionDesk, clock: FixedClock) -> None:
    grant = open_session(desk, clock)
    (row,) = rows_of(desk._ws, sessions_table)
    assert row["token_hash"] == hashlib.sha256(grant.token.encode()).digest()
    assert grant.token not in repr(row)
    assert grant.token[len(TOKEN_PREFIX) :] not in repr(row)


def test_the_session_ends_with_its_ttl(desk: SessionDesk, clock: FixedClock) -> None:
    grant = open_session(desk, clock)
    clock.advance(minutes=15)
    with pytest.raises(Unauthenticated, match="expired"):
        desk.authenticate(grant.token)


def test_the_charter_sets_the_ttl(ready: Workspace, clock: FixedClock) -> None:
    apply_version(ready, 2, limits={"session_ttl": "90s"})
    grant = open_session(SessionDesk(ready, audience=AUDIENCE), clock)
    assert (grant.charter_version, grant.expires_at) == (2, START + timedelta(seconds=90))


def test_challenges_are_issued_for_any_well_formed_id(desk: SessionDesk) -> None:
    assert desk.challenge("nobody-we-know").audience == AUDIENCE  # existence is not revealed
    for malformed in ["", "ACME", "acme/../x", "a" * 64, "acme\n"]:
        with pytest.raises(InvalidInput):
            desk.challenge(malformed)


def test_expired_challenges_are_swept(desk: SessionDesk, clock: FixedClock) -> None:
    desk.challenge("acme")
    desk.challenge("globex")
    clock.advance(minutes=2)
    desk.challenge("acme")
    assert [row["issued_at"] for row in rows_of(desk._ws, session_challenges)] == [clock()]


# --- proofs of key ----------------------------------------------------------------------


def test_a_replayed_request_is_refused(desk: SessionDesk, clock: FixedClock) -> None:
    request = sign(desk.challenge("acme"), signed_at=clock())
    desk.open(request)
    with pytest.raises(Unauthenticated, match="nonce"):
        desk.open(request)


def test_a_nonce_issued_to_another_partner_is_refused(desk: SessionDesk, clock: FixedClock) -> None:
    globex_nonce = desk.challenge("globex")
    with pytest.raises(Unauthenticated, match="nonce"):
        desk.open(sign(globex_nonce, signed_at=clock()))


def test_an_expired_nonce_is_refused(desk: SessionDesk, clock: FixedClock) -> None:
    challenge = desk.challenge("acme")
    clock.advance(seconds=60)
    with pytest.raises(Unauthenticated, match="nonce"):
        desk.open(sign(challenge, signed_at=clock()))


def test_an_unknown_nonce_is_refused(desk: SessionDesk, clock: FixedClock) -> None:
    invented = Challenge(audience=AUDIENCE, nonce="A" * 43, expires_at=START)
    with pytest.raises(Unauthenticated, match="nonce"):
        desk.open(sign(invented, signed_at=clock()))


def test_wrong_key_and_unknown_partner_get_the_same_answer(
    desk: SessionDesk, clock: FixedClock
) -> None:
    challenge = desk.challenge("acme")
    with pytest.raises(Unauthenticated) as wrong_key:
        desk.open(sign(challenge, key=STRANGER, signed_at=clock()))
    with pytest.raises(Unauthenticated) as unknown:
        desk.open(sign(desk.challenge("initech"), key=STRANGER, partner="initech"))
    assert wrong_key.value.diagnostics() == unknown.value.diagnostics()
    assert "\n" not in wrong_key.value.diagnostics()
    assert "initech" not in unknown.value.diagnostics()
    # A failed proof does not spend the nonce: the real partner can still use it.
    assert desk.open(sign(challenge, signed_at=clock())).partner == "acme"


def test_another_partners_key_does_not_prove_acme(desk: SessionDesk, clock: FixedClock) -> None:
    with pytest.raises(Unauthenticated, match="proof of key"):
        desk.open(sign(desk.challenge("acme"), key=GLOBEX, signed_at=clock()))


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r.model_copy(update={"purpose": "marketing"}),
        lambda r: r.model_copy(update={"signed_at": r.signed_at + timedelta(seconds=1)}),
        lambda r: r.model_copy(update={"signature": "AAAA"}),
        lambda r: r.model_copy(update={"signature": "!" * 88}),
    ],
)
def test_a_changed_request_does_not_verify(
    desk: SessionDesk, clock: FixedClock, tamper: Callable[[SessionRequest], SessionRequest]
) -> None:
    request = sign(desk.challenge("acme"), signed_at=clock())
    with pytest.raises(Unauthenticated, match="proof of key"):
        desk.open(tamper(request))


def test_a_proof_for_another_gateway_is_refused(desk: SessionDesk, clock: FixedClock) -> None:
    request = sign(desk.challenge("acme"), audience="modelpact/other/gateway", signed_at=clock())
    with pytest.raises(Unauthenticated, match="proof of key"):
        desk.open(request)


def test_url_safe_signatures_are_accepted(desk: SessionDesk, clock: FixedClock) -> None:
    request = sign(desk.challenge("acme"), signed_at=clock())
    raw = base64.b64decode(request.signature)
    url_safe = base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
    assert desk.open(request.model_copy(update={"signature": url_safe})).partner == "acme"


@pytest.mark.parametrize("skew", [-61, 61, -3600])
def test_a_skewed_clock_is_refused(desk: SessionDesk, clock: FixedClock, skew: int) -> None:
    request = sign(desk.challenge("acme"), signed_at=clock() + timedelta(seconds=skew))
    with pytest.raises(Unauthenticated, match="from the gateway's clock"):
        desk.open(request)


@pytest.mark.parametrize("skew", [-60, 59])
def test_a_clock_within_the_skew_is_accepted(
    desk: SessionDesk, clock: FixedClock, skew: int
) -> None:
    request = sign(desk.challenge("acme"), signed_at=clock() + timedelta(seconds=skew))
    assert desk.open(request).partner == "acme"


# --- partner status ---------------------------------------------------------------------


@pytest.mark.parametrize("verb", ["suspend", "revoke"])
def test_an_inactive_partner_cannot_open_a_session(
    desk: SessionDesk, clock: FixedClock, verb: str
) -> None:
    PartnerDirectory(desk._ws).change_status("acme", verb)
    request = sign(desk.challenge("acme"), signed_at=clock())
    with pytest.raises(Denied) as raised:
        desk.open(request)
    assert not isinstance(raised.value, Unauthenticated)
    status = {"suspend": "suspended", "revoke": "revoked"}[verb]
    assert raised.value.reasons == (f"partner acme is {status}",)
    if verb == "suspend":  # the refused request spent its nonce: no replay after resuming
        PartnerDirectory(desk._ws).change_status("acme", "resume")
        with pytest.raises(Unauthenticated, match="nonce"):
            desk.open(request)


def test_suspension_takes_effect_on_the_next_request(desk: SessionDesk, clock: FixedClock) -> None:
    grant = open_session(desk, clock)
    desk.authenticate(grant.token)
    partners = PartnerDirectory(desk._ws)
    partners.change_status("acme", "suspend")
    with pytest.raises(Denied, match="suspended"):
        desk.authenticate(grant.token)
    partners.change_status("acme", "resume")
    assert desk.authenticate(grant.token).partner == "acme"
    partners.change_status("acme", "revoke")
    with pytest.raises(Denied, match="revoked") as raised:
        desk.authenticate(grant.token)
    assert raised.value.reasons == ("partner acme is revoked",)


# --- the charter ------------------------------------------------------------------------


def test_a_purpose_the_charter_does_not_list_is_denied(
    desk: SessionDesk, clock: FixedClock
) -> None:
    with pytest.raises(Denied, match="purpose marketing") as raised:
        open_session(desk, clock, purpose="marketing")
    assert not isinstance(raised.value, Unauthenticated)
    assert raised.value.reasons


def test_a_charter_of_another_partner_is_denied_like_a_missing_one(
    desk: SessionDesk, clock: FixedClock
) -> None:
    with pytest.raises(Denied) as someone_elses:
        open_session(desk, clock, partner="globex", key=GLOBEX)
    with pytest.raises(Denied) as missing:
        open_session(desk, clock, partner="globex", key=GLOBEX, charter="no-such-charter")
    assert someone_elses.value.reasons == (f"partner globex has no active charter {CHARTER}",)
    assert missing.value.reasons == ("partner globex has no active charter no-such-charter",)


def test_a_charter_not_valid_now_is_expired(ready: Workspace, clock: FixedClock) -> None:
    desk = SessionDesk(ready, audience=AUDIENCE)
    clock.now = UNTIL  # the demo charter's valid.until: its window is [from, until)
    with pytest.raises(Expired, match="not valid now"):
        open_session(desk, clock)


def test_a_session_ends_when_its_charter_does(ready: Workspace, clock: FixedClock) -> None:
    until = START + timedelta(minutes=10)
    apply_version(ready, 2, valid={"from": FROM.isoformat(), "until": until.isoformat()})
    desk = SessionDesk(ready, audience=AUDIENCE)
    grant = open_session(desk, clock)
    assert grant.expires_at == until  # capped by valid.until, not the 15 minute TTL
    clock.advance(minutes=9, seconds=59)
    assert desk.authenticate(grant.token).expires_at == until
    clock.advance(seconds=1)
    with pytest.raises(Unauthenticated, match="expired"):
        desk.authenticate(grant.token)


def test_a_new_version_that_ends_sooner_ends_the_session(
    desk: SessionDesk, clock: FixedClock
) -> None:
    grant = open_session(desk, clock)
    until = START + timedelta(minutes=5)
    apply_version(desk._ws, 2, valid={"from": FROM.isoformat(), "until": until.isoformat()})
    assert desk.authenticate(grant.token).expires_at == until
    clock.advance(minutes=5)
    with pytest.raises(Expired, match="not valid now"):
        desk.authenticate(grant.token)


def test_a_superseded_charter_carries_the_session_to_the_new_version(
    desk: SessionDesk, clock: FixedClock
) -> None:
    grant = open_session(desk, clock)
    apply_version(desk._ws, 2, purposes=[PURPOSE, "research"])
    session = desk.authenticate(grant.token)
    assert session.charter_version == 2
    assert desk.charter(session).purposes == (PURPOSE, "research")
    apply_version(desk._ws, 3, purposes=["research"])
    with pytest.raises(Denied, match="no longer lists purpose") as raised:
        desk.authenticate(grant.token)
    assert raised.value.reasons == (f"{CHARTER}@v3 no longer lists purpose {PURPOSE}",)


def test_parsed_charters_are_cached_by_version_and_digest(
    desk: SessionDesk, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    grant = open_session(desk, clock)  # parses v1 once
    reads: list[tuple[str, int]] = []  # charters parsed and verified
    original = CharterDesk.trusted

    def counting(self: CharterDesk, record: CharterRecord) -> object:
        reads.append((record.charter_id, record.version))
        return original(self, record)

    monkeypatch.setattr(CharterDesk, "trusted", counting)
    sessions = [desk.authenticate(grant.token) for _ in range(5)]
    assert desk.charter(sessions[0]) is desk.charter(sessions[-1])
    assert reads == []
    apply_version(desk._ws, 2)
    for _ in range(3):
        desk.authenticate(grant.token)
    assert reads == [(CHARTER, 2)]


# --- tokens -----------------------------------------------------------------------------


def test_a_revoked_token_is_refused(desk: SessionDesk, clock: FixedClock) -> None:
    grant = open_session(desk, clock)
    other = open_session(desk, clock)
    desk.revoke(grant.token)
    with pytest.raises(Unauthenticated, match="revoked"):
        desk.authenticate(grant.token)
    desk.revoke(grant.token)  # again: nothing more happens
    assert desk.authenticate(other.token).partner == "acme"


def test_revoking_an_unknown_token_is_refused(desk: SessionDesk) -> None:
    with pytest.raises(Unauthenticated):
        desk.revoke(TOKEN_PREFIX + "A" * 43)
    with pytest.raises(Unauthenticated):
        desk.revoke("not a token")


def test_revoke_partner_ends_every_session_of_the_partner(
    desk: SessionDesk, clock: FixedClock
) -> None:
    grants = [open_session(desk, clock) for _ in range(3)]
    assert desk.revoke_partner("acme") == 3
    assert desk.revoke_partner("acme") == 0
    for grant in grants:
        with pytest.raises(Unauthenticated, match="revoked"):
            desk.authenticate(grant.token)


def _one_char_changed(token: str) -> str:
    last = token[-1]
    return token[:-1] + ("B" if last == "A" else "A")


@pytest.mark.parametrize(
    "mangle",
    [
        _one_char_changed,
        lambda t: t[:10] + ("x" if t[10] != "x" else "y") + t[11:],
        lambda t: t[len(TOKEN_PREFIX) :],
        lambda t: t + "A",
        lambda t: t[:-1],
        lambda t: t.replace(TOKEN_PREFIX, "mpx_"),
        lambda t: "",
        lambda t: t[:-1] + "=",
        lambda t: t + "\n",
    ],
)
def test_a_tampered_token_is_refused(
    desk: SessionDesk, clock: FixedClock, mangle: Callable[[str], str]
) -> None:
    grant = open_session(desk, clock)
    tampered = mangle(grant.token)
    assert tampered != grant.token
    with pytest.raises(Unauthenticated) as raised:
        desk.authenticate(tampered)
    assert grant.token[len(TOKEN_PREFIX) + 1 : -1] not in raised.value.diagnostics()
    assert desk.authenticate(grant.token).partner == "acme"


def test_desk_settings_are_checked(ready: Workspace) -> None:
    with pytest.raises(InvalidInput):
        SessionDesk(ready, audience="")
    with pytest.raises(InvalidInput):
        SessionDesk(ready, audience=AUDIENCE, challenge_ttl=0)
    with pytest.raises(InvalidInput):
        SessionDesk(ready, audience=AUDIENCE, clock_skew=-1)


def _rotation(desk: SessionDesk, new: SigningKey, clock: FixedClock) -> PartnerKeyRotation:
    from modelpact.client.protocol import Identity

    return Identity("acme", PARTNER, CHARTER, PURPOSE).rotation_request(
        desk.challenge("acme"), new, clock()
    )


def test_a_session_opened_while_the_key_rotates_is_refused(
    desk: SessionDesk, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proof is checked in one transaction and the session stored in the next: a
    rotation committed in between (whoever held the old key may be opening it) wins."""
    new = SigningKey.generate()
    rotation = _rotation(desk, new, clock)
    opening = sign(desk.challenge("acme"), key=PARTNER)  # signed with the old key
    checked = SessionDesk._checked_charter

    def rotate_in_between(self: SessionDesk, *args: Any) -> Any:
        assert self.rotate_partner_key(rotation).partner == "acme"
        return checked(self, *args)

    monkeypatch.setattr(SessionDesk, "_checked_charter", rotate_in_between)
    with pytest.raises(Unauthenticated, match="rotated while the session was being opened"):
        desk.open(opening)
    monkeypatch.undo()
    assert desk.open(sign(desk.challenge("acme"), key=new)).partner == "acme"


def test_of_two_rotations_from_the_same_key_only_one_is_enrolled(
    desk: SessionDesk, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each proof holds when checked; the second to write finds the key it proved gone."""
    first, second = SigningKey.generate(), SigningKey.generate()
    one, two = _rotation(desk, first, clock), _rotation(desk, second, clock)
    owner_key = Workspace.owner_verify_key
    raced: list[bool] = []

    def other_rotation_first(ws: Workspace) -> Any:
        # Read between the check's transaction and the write's: the other rotation lands.
        if not raced:
            raced.append(True)
            desk.rotate_partner_key(two)
        return owner_key.fget(ws)  # type: ignore[attr-defined]

    monkeypatch.setattr(Workspace, "owner_verify_key", property(other_rotation_first))
    with pytest.raises(Unauthenticated, match="enrolled key changed since the proof"):
        desk.rotate_partner_key(one)
    assert raced
    monkeypatch.undo()
    assert PartnerDirectory(desk._ws).get("acme").public_key == second.verify_key.encode()
