"""Partner sessions: a one-time challenge, a signed proof of key, a short-lived bearer token.

1. :meth:`SessionDesk.challenge` issues a random nonce for a partner id (any
   well-formed id: the answer never tells whether that partner exists).
2. The partner signs :func:`modelpact.wire.session_message` — this gateway's
   audience, its id, charter, purpose, the nonce and its clock — with its
   enrolled Ed25519 key; :meth:`SessionDesk.open` checks the proof, consumes the
   nonce (once, across every gateway sharing the database), then the partner's
   status and the charter, and issues a token bound to one charter and one
   purpose.  Only the token's SHA-256 is stored.
3. :meth:`SessionDesk.authenticate` runs on every request and re-reads what may
   have changed since: revocation, the partner's status, the charter's active
   version, its validity window and purposes.  Given a
   :class:`~modelpact.services.state_cache.StateCache`, the rows are kept until
   the store's change counter moves, which every such change does in its own
   transaction; expiry and validity are checked against the clock every time.
   Either way a suspension, a revocation or an expiry takes effect on the very
   next request.  Parsed, verified charters are cached by id, version and digest.

Refusals: :class:`~modelpact.errors.Unauthenticated` when the caller has not
shown who it is (bad proof, used nonce, unknown, revoked or expired token);
:class:`~modelpact.errors.Denied` (with ``reasons``) when it has, but may not
go on; :class:`~modelpact.errors.Expired` when the charter is outside its window.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from modelpact import wire
from modelpact.charter import SLUG_PATTERN, Charter
from modelpact.crypto import SigningKey, VerifyKey, sha256_hex
from modelpact.errors import (
    Denied,
    Expired,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    Unauthenticated,
    quote_untrusted,
)
from modelpact.services.charters import CharterDesk
from modelpact.services.events import record_event
from modelpact.services.state_cache import StateCache, StateView, active_record
from modelpact.services.workspace import Workspace
from modelpact.store import (
    ChallengeRecord,
    CharterRecord,
    PartnerRecord,
    SessionRecord,
    UnitOfWork,
)

__all__ = ["TOKEN_PREFIX", "ActiveSession", "SessionDesk", "token_id"]

#: Every session token starts with this, so a leaked one is easy to recognise and scan for.
TOKEN_PREFIX = "mpt_"  # noqa: S105 - a prefix, not a secret
_TOKEN = re.compile(r"mpt_[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url, no padding
_PARTNER = re.compile(SLUG_PATTERN)
_RANDOM_BYTES = 32
_SIGNATURE_BYTES = 64
_SWEEP_EVERY = timedelta(minutes=1)
_CACHED_CHARTERS = 256
# Verifies no real signature: an unknown partner costs the same verification as a known one.
_NOBODY = SigningKey.generate().verify_key

_BAD_PROOF = "the proof of key does not verify"
_BAD_PROOF_HINT = (
    "sign modelpact.wire.session_message(...) for this gateway's audience "
    "with the partner's enrolled Ed25519 key"
)
_NOT_A_SESSION = "that is not a valid session token"
_NEW_SESSION = "open a new session"


_ROTATE_HINT = (
    "sign modelpact.wire.partner_key_rotation_message(...) for this gateway's audience with "
    "the enrolled key and with the new key ('modelpact partner rotate-key' does)"
)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signature_bytes(text: str) -> bytes | None:
    """The 64 signature bytes from base64 (standard or URL-safe, padded or not), or None."""
    stripped = text.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == _SIGNATURE_BYTES else None


def _digest(token: str) -> bytes:
    return bytes.fromhex(sha256_hex(token.encode("utf-8")))


def _token_hash(token: str) -> bytes | None:
    """SHA-256 of a well-formed token, or None for anything this desk cannot have issued."""
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        return None
    return _digest(token)


def token_id(token: str) -> str:
    """``sha256:<hex>`` of a token: names a session in logs without revealing the token."""
    return "sha256:" + _digest(token).hex()


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A session checked just now: who, under which charter version, for what, until when."""

    token_id: str  # "sha256:<hex>" of the token: safe to put in the audit log
    partner: str
    charter: str
    charter_version: int
    purpose: str
    expires_at: datetime


def _denied(reason: str, *, hint: str | None = None) -> Denied:
    return Denied(reason, reasons=(reason,), hint=hint)


class SessionDesk:
    """Issues challenges, opens sessions on a proof of key, and checks tokens on each request.

    One desk serves every request of a gateway process; it is thread-safe.
    ``audience`` names this gateway in what partners sign, so a proof made for
    one gateway cannot open a session at another.  ``cache``: keep the rows
    :meth:`authenticate` reads (when given a unit of work) until the store's
    change counter moves.
    """

    def __init__(
        self,
        workspace: Workspace,
        *,
        audience: str,
        challenge_ttl: int = 60,
        clock_skew: int = 60,
        cache: StateCache | None = None,
    ) -> None:
        if not isinstance(audience, str) or not audience.strip():
            raise InvalidInput("a session desk needs an audience (the gateway's name)")
        if challenge_ttl <= 0:
            raise InvalidInput(f"challenge_ttl must be positive seconds: {challenge_ttl}")
        if clock_skew < 0:
            raise InvalidInput(f"clock_skew cannot be negative: {clock_skew}")
        self._ws = workspace
        self._cache = cache
        self.audience = audience
        self._challenge_ttl = timedelta(seconds=challenge_ttl)
        self._clock_skew = timedelta(seconds=clock_skew)
        self._lock = threading.Lock()
        self._last_sweep: datetime | None = None
        self._charters: dict[tuple[str, int], tuple[str, Charter]] = {}

    # -- challenges ------------------------------------------------------------------------

    def challenge(self, partner: str) -> wire.Challenge:
        """A fresh nonce for ``partner`` to sign, valid ``challenge_ttl`` seconds, used once."""
        if not isinstance(partner, str) or not _PARTNER.fullmatch(partner):
            raise InvalidInput(f"partner id {quote_untrusted(str(partner))} is not a slug")
        now = self._ws.clock()
        record = ChallengeRecord(
            nonce=_b64url(secrets.token_bytes(_RANDOM_BYTES)),
            partner_id=partner,
            issued_at=now,
            expires_at=now + self._challenge_ttl,
        )
        with self._ws.store.unit_of_work() as uow:
            uow.sessions.add_challenge(record)
            if self._sweep_due(now):
                uow.sessions.delete_expired_challenges(now)
        return wire.Challenge(
            audience=self.audience, nonce=record.nonce, expires_at=record.expires_at
        )

    def _sweep_due(self, now: datetime) -> bool:
        """True at most once a minute (and again if the clock was set back)."""
        with self._lock:
            last = self._last_sweep
            if last is not None and last <= now < last + _SWEEP_EVERY:
                return False
            self._last_sweep = now
            return True

    # -- opening a session -----------------------------------------------------------------

    def open(self, request: wire.SessionRequest) -> wire.SessionGrant:
        """Check the proof of key, consume the nonce, check partner and charter; issue a token.

        The nonce is spent as soon as the proof holds, even if the session is
        then refused: a signed request can never be replayed, not even after
        the reason for its refusal has gone.
        """
        now = self._ws.clock()
        message = wire.session_message(
            audience=self.audience,
            partner=request.partner,
            charter=request.charter,
            purpose=request.purpose,
            nonce=request.nonce,
            signed_at=request.signed_at,
        )
        signature = _signature_bytes(request.signature)
        if signature is None:
            raise Unauthenticated(_BAD_PROOF, hint=_BAD_PROOF_HINT)
        with self._ws.store.unit_of_work() as uow:
            partner = self._proven_partner(uow, request.partner, signature, message)
            self._spend_challenge(uow, partner.id, request.nonce, request.signed_at, now, "request")
            record = active_record(uow, request.charter, partner.id)
        # The nonce is spent (committed); every refusal from here on leaves it spent.
        charter = self._checked_charter(partner, request.charter, record, now)
        if request.purpose not in charter.purposes:
            raise _denied(
                f"{charter.ref} does not list purpose {request.purpose}",
                hint=f"its purposes are: {', '.join(charter.purposes)}",
            )
        token = TOKEN_PREFIX + _b64url(secrets.token_bytes(_RANDOM_BYTES))
        expires_at = now + timedelta(seconds=charter.limits.session_ttl_seconds)
        if charter.valid.until is not None:
            expires_at = min(expires_at, charter.valid.until)
        with self._ws.store.unit_of_work() as uow:
            # The proof was checked in the transaction before.  Holding the partner's row,
            # check that the key it proved is still enrolled and the partner still active:
            # a rotation or suspension that revokes the partner's sessions either commits
            # first (and is seen here) or waits for this session (and revokes it too).
            current = uow.partners.lock(partner.id)
            if current.public_key != partner.public_key:
                raise Unauthenticated(
                    "the partner's key was rotated while the session was being opened",
                    hint="sign a new challenge with the enrolled key",
                )
            if current.status != "active":
                raise _denied(f"partner {partner.id} is {current.status}")
            uow.sessions.add(
                SessionRecord(
                    token_hash=_digest(token),
                    partner_id=partner.id,
                    charter_id=charter.charter,
                    charter_version=charter.version,
                    purpose=request.purpose,
                    issued_at=now,
                    expires_at=expires_at,
                )
            )
        return wire.SessionGrant(
            token=token,
            partner=partner.id,
            charter=charter.charter,
            charter_version=charter.version,
            purpose=request.purpose,
            expires_at=expires_at,
            max_batch_rows=charter.limits.max_batch_rows,
        )

    @staticmethod
    def _proven_partner(
        uow: UnitOfWork, partner_id: str, signature: bytes, message: bytes
    ) -> PartnerRecord:
        """The partner whose enrolled key made ``signature``.

        An unknown partner and a bad signature cost the same work (a lookup and
        one verification) and get the same answer.
        """
        partner: PartnerRecord | None
        try:
            partner = uow.partners.get(partner_id)
        except NotFound:
            partner = None
        key = _NOBODY if partner is None else VerifyKey.decode(partner.public_key)
        try:
            key.verify(signature, message)
        except SignatureInvalid:
            partner = None
        if partner is None:
            raise Unauthenticated(_BAD_PROOF, hint=_BAD_PROOF_HINT)
        return partner

    def _spend_challenge(
        self,
        uow: UnitOfWork,
        partner: str,
        nonce: str,
        signed_at: datetime,
        now: datetime,
        what: str,
    ) -> None:
        """A proven signature's freshness: signed near the gateway's clock, over a nonce
        issued to ``partner`` and not used before (spent now, with ``uow``)."""
        if abs(now - signed_at) > self._clock_skew:
            raise Unauthenticated(
                f"the {what} was signed at {signed_at.isoformat()}, more than "
                f"{self._clock_skew.total_seconds():g} s from the gateway's clock",
                hint="set the partner machine's clock right (NTP) and sign again",
            )
        if uow.sessions.consume_challenge(nonce, partner, now) is None:
            raise Unauthenticated(
                "the challenge nonce is unknown, expired, already used or not this partner's",
                hint="ask for a new challenge and sign it at once",
            )

    def _checked_charter(
        self, partner: PartnerRecord, charter_id: str, record: CharterRecord | None, now: datetime
    ) -> Charter:
        """The charter, if the partner is active and the charter active and in its window."""
        if partner.status != "active":
            raise _denied(f"partner {partner.id} is {partner.status}")
        if record is None:
            raise _denied(f"partner {partner.id} has no active charter {charter_id}")
        charter = self._parsed(record)
        if not charter.valid.contains(now):
            raise Expired(
                f"{charter.ref} is not valid now ({now.isoformat(timespec='seconds')})",
                hint="its validity window is closed or not yet open",
            )
        return charter

    # -- on every request ------------------------------------------------------------------

    def authenticate(self, token: str, uow: UnitOfWork | None = None) -> ActiveSession:
        """The session ``token`` opens, checked against the current state of everything.

        One unit of work (``uow`` when given) reads the session, its partner and its
        charter's active version (or, with a cache, only the change counter when nothing
        changed); a charter superseded since the session opened carries the session on as
        long as the new version still lists its purpose.
        """
        token_hash = _token_hash(token)
        if token_hash is None:
            raise Unauthenticated(_NOT_A_SESSION, hint=_NEW_SESSION)
        if uow is None:
            with self._ws.store.unit_of_work(read_only=True) as own:
                return self.authenticate(token, own)
        view = StateView.direct(uow) if self._cache is None else self._cache.view(uow)
        now = self._ws.clock()
        try:
            session = view.session(token_hash)
        except NotFound:
            raise Unauthenticated(_NOT_A_SESSION, hint=_NEW_SESSION) from None
        if session.revoked_at is not None:
            raise Unauthenticated("the session was revoked", hint=_NEW_SESSION)
        if now >= session.expires_at:
            raise Unauthenticated("the session expired", hint=_NEW_SESSION)
        partner = view.partner(session.partner_id)
        record = view.active_charter(session.charter_id, session.partner_id)
        charter = self._checked_charter(partner, session.charter_id, record, now)
        if session.purpose not in charter.purposes:
            raise _denied(f"{charter.ref} no longer lists purpose {session.purpose}")
        expires_at = session.expires_at
        if charter.valid.until is not None:
            expires_at = min(expires_at, charter.valid.until)
        return ActiveSession(
            token_id="sha256:" + token_hash.hex(),
            partner=session.partner_id,
            charter=charter.charter,
            charter_version=charter.version,
            purpose=session.purpose,
            expires_at=expires_at,
        )

    def charter(self, session: ActiveSession) -> Charter:
        """The typed charter version ``session`` runs under (as :meth:`authenticate` found it)."""
        cached = self._charters.get((session.charter, session.charter_version))
        if cached is not None:
            return cached[1]
        record, charter = CharterDesk(self._ws).get(session.charter, session.charter_version)
        self._remember(record, charter)
        return charter

    def kept_charter(self, session: ActiveSession) -> Charter | None:
        """:meth:`charter` if it is in memory (as after :meth:`authenticate`), else None."""
        cached = self._charters.get((session.charter, session.charter_version))
        return None if cached is None else cached[1]

    def _parsed(self, record: CharterRecord) -> Charter:
        """The verified charter ``record`` holds; parsed and re-verified once per digest."""
        cached = self._charters.get((record.charter_id, record.version))
        if cached is not None and cached[0] == record.digest:
            return cached[1]
        # The record was read in the caller's unit of work; verifying it reads nothing more.
        charter = CharterDesk(self._ws).trusted(record)
        self._remember(record, charter)
        return charter

    def _remember(self, record: CharterRecord, charter: Charter) -> None:
        with self._lock:
            if len(self._charters) >= _CACHED_CHARTERS:
                self._charters.pop(next(iter(self._charters)))
            self._charters[(record.charter_id, record.version)] = (record.digest, charter)

    # -- revocation ------------------------------------------------------------------------

    def revoke(self, token: str) -> None:
        """End the session ``token`` opens; revoking it again does nothing."""
        token_hash = _token_hash(token)
        if token_hash is None:
            raise Unauthenticated(_NOT_A_SESSION)
        with self._ws.store.unit_of_work() as uow:
            try:
                uow.sessions.revoke(token_hash, self._ws.clock())
            except NotFound:
                raise Unauthenticated(_NOT_A_SESSION) from None

    # -- key rotation ----------------------------------------------------------------------

    def rotate_partner_key(self, request: wire.PartnerKeyRotation) -> wire.PartnerKeyRotated:
        """Enrol the partner's new key, once its enrolled key and the new key both signed.

        Both signatures cover :func:`~modelpact.wire.partner_key_rotation_message` with
        this gateway's audience and a fresh challenge nonce (spent here, as for a
        session), so a rotation can be neither replayed nor made with the new key alone.
        In the transaction that enrols the key, every open session of the partner is
        revoked (whoever held the old key may have opened them) and the rotation, with
        both signatures, is appended to the audit log.  A revoked partner cannot rotate.
        """
        now = self._ws.clock()
        message = wire.partner_key_rotation_message(
            audience=self.audience,
            partner=request.partner,
            old_key=request.old_key,
            new_key=request.new_key,
            nonce=request.nonce,
            signed_at=request.signed_at,
        )
        old_signature = _signature_bytes(request.old_signature)
        new_signature = _signature_bytes(request.new_signature)
        if old_signature is None or new_signature is None:
            raise Unauthenticated(_BAD_PROOF, hint=_ROTATE_HINT)
        new_key = VerifyKey.decode(request.new_key)
        try:
            new_key.verify(new_signature, message)
        except SignatureInvalid:
            raise Unauthenticated(
                "the rotation is not signed by the new key", hint=_ROTATE_HINT
            ) from None
        with self._ws.store.unit_of_work() as uow:
            partner = self._proven_partner(uow, request.partner, old_signature, message)
            if request.old_key != partner.public_key:
                raise Unauthenticated(_BAD_PROOF, hint=_ROTATE_HINT)
            self._spend_challenge(
                uow, partner.id, request.nonce, request.signed_at, now, "rotation"
            )
        # The nonce is spent (committed): a refusal from here on cannot be replayed either.
        if partner.status == "revoked":
            raise _denied(f"partner {partner.id} is revoked; its key is not rotated")
        if new_key.encode() == partner.public_key or new_key == self._ws.owner_verify_key:
            raise InvalidInput("the new key must differ from the enrolled key and the owner's")
        with self._ws.store.unit_of_work() as uow:
            # The proof was checked in the transaction before: enrol only if the key it
            # proved is still the enrolled one (another rotation from it may have won).
            if not uow.partners.set_public_key(
                partner.id, new_key.encode(), now, expected=partner.public_key
            ):
                raise Unauthenticated(
                    "the enrolled key changed since the proof was checked; nothing rotated",
                    hint=_ROTATE_HINT,
                )
            revoked = uow.sessions.revoke_partner(partner.id, now)
            receipt = record_event(
                self._ws,
                uow,
                actor=partner.id,
                kind="partner.key_rotate",
                subject=partner.id,
                old_key=request.old_key,
                new_key=new_key.encode(),
                nonce=request.nonce,
                signed_at=wire.instant(request.signed_at),
                old_signature=request.old_signature,
                new_signature=request.new_signature,
                sessions_revoked=revoked,
            )
        return wire.PartnerKeyRotated(
            partner=partner.id,
            key=new_key.encode(),
            sessions_revoked=revoked,
            entry=receipt.index,
        )

    def revoke_partner(self, partner: str) -> int:
        """End every session of ``partner`` (on suspension, revocation or exit); how many."""
        with self._ws.store.unit_of_work() as uow:
            return uow.sessions.revoke_partner(partner, self._ws.clock())
