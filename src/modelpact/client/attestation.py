"""Checking a gateway's attestation before sending it any data.

:func:`check_attestation` holds a signed document to: the workspace key's
signature over its RFC 8785 bytes, the partner's own fresh nonce, a recent
``issued_at``, the partner's charter (and, given the countersigned charter, its
version and digest), and the charter's ``attestation`` pins — the serving code
and dependency digests, and each pinned model version's artifact digest.  Any
mismatch raises :class:`~modelpact.errors.AttestationFailed` naming it.

The built-in provider is a *software* measurement: the gateway measuring itself.
It catches a changed deployment (new code, new dependencies, a swapped model);
it cannot catch an owner who would sign a false document.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime, timedelta

from modelpact.charter import AttestationPins, Charter, charter_digest
from modelpact.crypto import VerifyKey, constant_time_equal
from modelpact.errors import AttestationFailed, SignatureInvalid
from modelpact.wire import AttestationDocument, SignedAttestation, attestation_message

__all__ = ["DEFAULT_MAX_AGE", "check_attestation", "new_nonce"]

#: How old (or, clocks apart, how far ahead) a document may be when it is checked.
DEFAULT_MAX_AGE = timedelta(minutes=2)


def new_nonce() -> str:
    """A fresh attestation nonce: 32 random bytes, base64url without padding."""
    return secrets.token_urlsafe(32)


def check_attestation(
    signed: SignedAttestation,
    *,
    nonce: str,
    owner_key: VerifyKey,
    charter_id: str,
    now: datetime,
    countersigned: Charter | None = None,
    pins: AttestationPins | None = None,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> AttestationDocument:
    """The document, once everything the partner expects holds; else AttestationFailed.

    ``pins`` default to ``countersigned.attestation`` when a charter is given.
    """
    document = signed.document
    try:
        signature = base64.b64decode(signed.signature, validate=True)
        owner_key.verify(signature, attestation_message(document))
    except (binascii.Error, ValueError, SignatureInvalid):
        raise AttestationFailed(
            "the attestation is not signed by the owner's workspace key"
        ) from None
    if not constant_time_equal(document.nonce, nonce):
        raise AttestationFailed("the attestation answers another nonce (a replayed document)")
    issued = datetime.strptime(document.issued_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    if abs(now - issued) > max_age:
        raise AttestationFailed(
            f"the attestation was issued at {document.issued_at}, more than "
            f"{max_age.total_seconds():g} s from this machine's clock",
            hint="check both clocks (NTP); a stale document may be a replay",
        )
    if document.charter.charter != charter_id:
        raise AttestationFailed(
            f"the attestation is for charter {document.charter.charter}, not {charter_id}"
        )
    if countersigned is not None:
        expected = charter_digest(countersigned)
        if document.charter.version != countersigned.version or not constant_time_equal(
            document.charter.digest, expected
        ):
            raise AttestationFailed(
                f"the gateway serves {document.charter.charter}@v{document.charter.version} "
                f"({document.charter.digest}), not the charter this partner countersigned "
                f"({countersigned.ref}, {expected})",
                hint="if you countersigned that version, use your copy of it "
                "(modelpact partner session --charter FILE); otherwise ask the owner why",
            )
        if pins is None:
            pins = countersigned.attestation
    if pins is not None:
        _check_pins(document, pins)
    return document


def _check_pins(document: AttestationDocument, pins: AttestationPins) -> None:
    measured = document.measurement
    for name, pinned, found in (
        ("serving code", pins.code, measured.code),
        ("dependency set", pins.dependencies, measured.dependencies),
    ):
        if pinned is not None and not constant_time_equal(pinned, found):
            raise AttestationFailed(f"the {name} measures {found}, not the pinned {pinned}")
    pinned_models = {ref.partition("@")[0] for ref in pins.models}
    for model in document.models:
        if model.model not in pinned_models:
            continue
        ref = f"{model.model}@{model.version}"
        expected = pins.models.get(ref)
        if expected is None:
            raise AttestationFailed(f"the gateway serves {ref}, which the charter does not pin")
        if not constant_time_equal(expected, model.artifact):
            raise AttestationFailed(
                f"{ref} is {model.artifact}, not the pinned {expected} (a swapped artifact)"
            )
