"""The signed charter: the envelope owner and partner pass to each other.

A charter binds only once both parties have signed the same bytes: the owner
signs first (:meth:`SignedCharter.sign_by_owner`), the partner reviews and
countersigns (:meth:`SignedCharter.countersign`).  Both sign the RFC 8785
canonical JSON of the charter document (:func:`charter_bytes`), Ed25519, with the
key the charter itself names for their role, so a signature by anyone else is
refused however valid it is.  The envelope is JSON::

    {"format": "modelpact-signed-charter/v1",
     "charter": {...the charter document...},
     "digest": "sha256:<hex of the canonical bytes>",
     "signatures": [{"role": "owner", "key": "ed25519:...", "signature": "<base64>"},
                    {"role": "partner", "key": "ed25519:...", "signature": "<base64>"}]}

:meth:`SignedCharter.from_json` checks the envelope's shape and that the charter
body still has the digest it was signed under; the ``verify_*`` methods check the
signatures themselves and raise :class:`SignatureInvalid` naming the party.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

from modelpact.charter.canonical import charter_bytes, charter_digest
from modelpact.charter.lint import lint_charter
from modelpact.charter.model import Charter
from modelpact.charter.parse import charter_from_document
from modelpact.crypto import SigningKey, VerifyKey, canonical_json, constant_time_equal
from modelpact.errors import (
    AlreadyExists,
    CharterInvalid,
    InvalidInput,
    SignatureInvalid,
    Tampered,
    quote_untrusted,
)

__all__ = ["SIGNED_CHARTER_FORMAT", "Role", "SignedCharter"]

SIGNED_CHARTER_FORMAT = "modelpact-signed-charter/v1"

Role = Literal["owner", "partner"]

_ENVELOPE_FIELDS = ("format", "charter", "digest", "signatures")
_SIGNATURE_FIELDS = ("role", "key", "signature")
_SIGNATURE_BYTES = 64
_MAX_ENVELOPE_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SignedCharter:
    """A charter with the owner's signature and, once countersigned, the partner's.

    Holding one does not mean its signatures are good: call :meth:`verify_complete`
    before acting on it (``from_json`` checks shape and digest, not signatures).
    """

    charter: Charter
    owner_signature: bytes
    partner_signature: bytes | None = None

    # -- making -----------------------------------------------------------------------------

    @classmethod
    def sign_by_owner(cls, charter: Charter, key: SigningKey) -> SignedCharter:
        """The owner's signature over ``charter``; refuses any key but ``charter.owner.key``.

        Also refuses a charter with lint errors (e.g. overlapping grants): what is
        signed must be unambiguous.
        """
        _require_party(charter, "owner", key.verify_key)
        _require_no_lint_errors(charter)
        return cls(charter, key.sign(charter_bytes(charter)))

    def countersign(self, key: SigningKey) -> SignedCharter:
        """The partner's signature, after checking the owner's; only ``charter.partner.key``."""
        if self.partner_signature is not None:
            raise AlreadyExists(
                f"{self.charter.ref} is already countersigned",
                hint="a change needs a new charter version, signed again by both",
            )
        self.verify_owner()
        _require_party(self.charter, "partner", key.verify_key)
        _require_no_lint_errors(self.charter)
        return SignedCharter(self.charter, self.owner_signature, key.sign(self.signed_bytes))

    # -- checking ---------------------------------------------------------------------------

    def verify_owner(self) -> None:
        """Raise :class:`SignatureInvalid` unless the owner's signature verifies."""
        _verify(self.charter, "owner", self.owner_signature, self.signed_bytes)

    def verify_partner(self) -> None:
        """Raise :class:`SignatureInvalid` unless the partner's signature is there and verifies."""
        if self.partner_signature is None:
            raise SignatureInvalid(
                f"{self.charter.ref} is missing the partner's signature",
                hint=f"the partner countersigns with its key {self.charter.partner.key}",
            )
        _verify(self.charter, "partner", self.partner_signature, self.signed_bytes)

    def verify_complete(self) -> None:
        """Both signatures present and valid: the charter binds both parties."""
        self.verify_owner()
        self.verify_partner()

    # -- reading ----------------------------------------------------------------------------

    @property
    def signed_bytes(self) -> bytes:
        """What both parties sign: :func:`charter_bytes` of the charter."""
        return charter_bytes(self.charter)

    @property
    def digest(self) -> str:
        return charter_digest(self.charter)

    @property
    def is_countersigned(self) -> bool:
        """A partner signature is present (whether it verifies is :meth:`verify_partner`)."""
        return self.partner_signature is not None

    # -- the envelope -----------------------------------------------------------------------

    def to_json(self) -> str:
        """The envelope as pretty JSON: fields in a fixed order, so equal values give equal text."""
        signatures = [_signature_entry("owner", self.charter.owner.key, self.owner_signature)]
        if self.partner_signature is not None:
            signatures.append(
                _signature_entry("partner", self.charter.partner.key, self.partner_signature)
            )
        envelope = {
            "format": SIGNED_CHARTER_FORMAT,
            "charter": self.charter.to_document(),
            "digest": self.digest,
            "signatures": signatures,
        }
        return json.dumps(envelope, indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<signed charter>") -> SignedCharter:
        """Read an envelope strictly; signatures are checked by the ``verify_*`` methods.

        Raises :class:`InvalidInput` for a malformed envelope, :class:`CharterInvalid`
        for a charter body that fails the schema, :class:`Tampered` when the body
        does not match its digest, and :class:`SignatureInvalid` when a signature
        names a key that is not the charter's key for that role.
        """
        envelope = _load_json(text, source)
        _exact_fields(envelope, _ENVELOPE_FIELDS, source)
        if envelope["format"] != SIGNED_CHARTER_FORMAT:
            raise InvalidInput(
                f"{source} is not a modelpact signed charter "
                f"(format {_short(envelope['format'])}, expected {SIGNED_CHARTER_FORMAT!r})"
            )
        signatures = _read_signatures(envelope["signatures"], source)
        if not isinstance(envelope["digest"], str):
            raise InvalidInput(f"{source}: digest must be a string 'sha256:<hex>'")
        body = envelope["charter"]
        charter = charter_from_document(body, source=f"{source} charter")

        signed = charter_bytes(charter)
        if canonical_json(body) != signed or not constant_time_equal(
            envelope["digest"], charter_digest(charter)
        ):
            raise Tampered(
                f"{source}: charter body was changed after signing (digest mismatch)",
                hint="ask the owner for the signed file again; do not edit it by hand",
            )
        for role, (key, _) in signatures.items():
            _require_party(charter, role, VerifyKey.decode(key))
        if "owner" not in signatures:
            raise InvalidInput(f"{source} has no owner signature")
        partner = signatures.get("partner")
        return cls(charter, signatures["owner"][1], None if partner is None else partner[1])


# -- private ------------------------------------------------------------------------------------


def _party_key(charter: Charter, role: Role) -> VerifyKey:
    return charter.owner.verify_key if role == "owner" else charter.partner.verify_key


def _require_party(charter: Charter, role: Role, key: VerifyKey) -> None:
    expected = _party_key(charter, role)
    if key != expected:
        raise SignatureInvalid(
            f"signed by the wrong party: {key.encode()} is not the {role} key "
            f"of {charter.ref} ({expected.encode()})"
        )


def _require_no_lint_errors(charter: Charter) -> None:
    errors = tuple(f for f in lint_charter(charter) if f.severity == "error")
    if errors:
        raise CharterInvalid(
            f"{charter.ref} has errors and must not be signed",
            findings=tuple(str(f) for f in errors),
        )


def _verify(charter: Charter, role: Role, signature: bytes, data: bytes) -> None:
    try:
        _party_key(charter, role).verify(signature, data)
    except SignatureInvalid:
        raise SignatureInvalid(
            f"the {role}'s signature on {charter.ref} does not verify",
            hint="the charter or the signature was changed after signing",
        ) from None


def _signature_entry(role: Role, key: str, signature: bytes) -> dict[str, str]:
    return {"role": role, "key": key, "signature": base64.b64encode(signature).decode("ascii")}


def _load_json(text: str, source: str) -> dict[str, Any]:
    if len(text) > _MAX_ENVELOPE_CHARS:
        raise InvalidInput(f"{source} is over {_MAX_ENVELOPE_CHARS // 1024} KiB")
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source} is not JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise InvalidInput(f"{source} is nested too deeply") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{source} is not a JSON object")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InvalidInput(f"duplicate JSON key {_short(key)} in a signed charter")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a JSON number")


def _exact_fields(value: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise InvalidInput(f"{where}: unknown field {_short(unknown[0])} in the envelope")
    missing = [k for k in fields if k not in value]
    if missing:
        raise InvalidInput(f"{where}: field {missing[0]!r} is missing from the envelope")


def _read_signatures(value: Any, source: str) -> dict[Role, tuple[str, bytes]]:
    if not isinstance(value, list):
        raise InvalidInput(f"{source}: signatures must be a list")
    out: dict[Role, tuple[str, bytes]] = {}
    for index, entry in enumerate(value):
        where = f"{source}: signatures[{index}]"
        if not isinstance(entry, dict):
            raise InvalidInput(f"{where} must be an object")
        _exact_fields(entry, _SIGNATURE_FIELDS, where)
        role = entry["role"]
        if role not in ("owner", "partner"):
            raise InvalidInput(f"{where}: role must be 'owner' or 'partner', not {_short(role)}")
        if role in out:
            raise InvalidInput(f"{where}: a second {role} signature")
        key = entry["key"]
        if not isinstance(key, str):
            raise InvalidInput(f"{where}: key must be a string ed25519:<base64>")
        try:
            VerifyKey.decode(key)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc.summary}") from None
        out[role] = (key, _decode_signature(entry["signature"], where))
    return out


def _decode_signature(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: signature must be a base64 string")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: signature is not valid base64") from None
    if len(raw) != _SIGNATURE_BYTES or base64.b64encode(raw).decode("ascii") != value:
        raise InvalidInput(f"{where}: an Ed25519 signature is {_SIGNATURE_BYTES} bytes in base64")
    return raw


def _short(value: object) -> str:
    return quote_untrusted(str(value), limit=40)
