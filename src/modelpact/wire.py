"""The gateway's HTTP API as data: what partners send and receive, shared by gateway and SDK.

Pure pydantic, no I/O, so the partner SDK can import it with no server
installed.  The one thing both sides must build byte for byte is what a partner
signs to open a session: :func:`session_message`, RFC 8785 canonical JSON of a
typed document naming the gateway (``audience``), the partner, charter and
purpose, the server's one-time ``nonce`` and the partner's clock.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from modelpact.crypto import canonical_json
from modelpact.errors import InvalidInput

__all__ = [
    "ATTESTATION_TYPE",
    "CIPHERTEXTS_MEDIA_TYPE",
    "NONCE_PATTERN",
    "PARTNER_KEY_ROTATION_TYPE",
    "PROBLEM_BASE",
    "SESSION_MESSAGE_TYPE",
    "AttestationDocument",
    "AttestedCharter",
    "AttestedModel",
    "Challenge",
    "ChallengeRequest",
    "CheckpointDocument",
    "ConsistencyProof",
    "EncryptedPredictResponse",
    "EncryptionContext",
    "HandoverChain",
    "HandoverEvidence",
    "InclusionProof",
    "PartnerKeyRotated",
    "PartnerKeyRotation",
    "PredictRequest",
    "PredictResponse",
    "PrivacyBudget",
    "Problem",
    "Receipt",
    "ServingMeasurement",
    "SessionGrant",
    "SessionRequest",
    "SignedAttestation",
    "attestation_message",
    "instant",
    "pack_ciphertexts",
    "partner_key_rotation_message",
    "session_message",
    "unpack_ciphertexts",
]

SESSION_MESSAGE_TYPE = "modelpact-session-request/v1"
#: Problem ``type`` URIs are this plus the error kind (``denied``, ``quota-exhausted``...).
PROBLEM_BASE = "https://modelpact.dev/problems/"

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
B64 = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=+/-]+$")]


ATTESTATION_TYPE: Final = "modelpact-attestation/v1"
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
#: A partner's attestation nonce: 22 to 128 base64url characters (128 to 768 bits).
NONCE_PATTERN = r"^[A-Za-z0-9_-]{22,128}$"
Nonce = Annotated[str, Field(pattern=NONCE_PATTERN)]
Instant = Annotated[str, Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")]

#: A feature: a JSON number (strict: no strings or booleans coerced into numbers).
Feature = Annotated[float, Field(strict=True)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChallengeRequest(_Wire):
    partner: Slug


class Challenge(_Wire):
    """A one-time nonce the partner signs over to prove it holds its key."""

    audience: str
    nonce: B64
    expires_at: AwareDatetime


class SessionRequest(_Wire):
    partner: Slug
    charter: Slug
    purpose: Slug
    nonce: B64
    signed_at: AwareDatetime
    signature: B64 = Field(description="Ed25519 over session_message(...), base64")


class SessionGrant(_Wire):
    """A session token bound to one charter and one purpose.  Shown once, stored hashed."""

    token: str
    partner: str
    charter: str
    charter_version: int
    purpose: str
    expires_at: AwareDatetime
    max_batch_rows: int | None = Field(
        default=None, description="the charter's rows per request (the SDK splits by it)"
    )


class PredictRequest(_Wire):
    rows: Annotated[list[list[Feature]], Field(min_length=1)]
    version: str | None = Field(default=None, description="default: the version being served")


class Receipt(_Wire):
    """Where the request's audit entry landed; provable once a checkpoint covers ``index``."""

    index: int
    leaf_hash: B64
    log_origin: str


class PredictResponse(_Wire):
    model: str
    version: str
    outputs: list[dict[str, object]]
    receipt: Receipt


#: The body of an encrypted prediction: ciphertexts, each a 4-byte big-endian length and
#: that many bytes of a serialised TenSEAL CKKS vector.  Binary: base64 in JSON would add a
#: third to the largest thing this API carries.
CIPHERTEXTS_MEDIA_TYPE: Final = "application/vnd.modelpact.ciphertexts"
_LENGTH = struct.Struct(">I")


def pack_ciphertexts(blobs: Sequence[bytes]) -> bytes:
    """The body :data:`CIPHERTEXTS_MEDIA_TYPE` names."""
    return b"".join(_LENGTH.pack(len(b)) + b for b in blobs)


def unpack_ciphertexts(body: bytes, *, most: int) -> list[bytes]:
    """The ciphertexts of a :data:`CIPHERTEXTS_MEDIA_TYPE` body, at most ``most`` of them;
    :class:`InvalidInput` for an empty, truncated or overlong body."""
    blobs: list[bytes] = []
    at = 0
    while at < len(body):
        if len(blobs) == most:
            raise InvalidInput(f"more than {most} ciphertexts in one request")
        if at + _LENGTH.size > len(body):
            raise InvalidInput("the ciphertexts body ends inside a length")
        (size,) = _LENGTH.unpack_from(body, at)
        at += _LENGTH.size
        if size == 0 or at + size > len(body):
            raise InvalidInput("a ciphertext in the body is empty or cut short")
        blobs.append(body[at : at + size])
        at += size
    if not blobs:
        raise InvalidInput("no ciphertexts in the request body")
    return blobs


class EncryptionContext(_Wire):
    """A session's public CKKS context as the gateway checked and holds it."""

    digest: Digest = Field(description="sha256 of the serialised context; requests name it")
    degree: int = Field(description="the ring degree N; a ciphertext holds N/2 values")
    primes: list[int] = Field(description="bit sizes of the coefficient modulus primes")
    scale_bits: int
    slots: int


class EncryptedPredictResponse(_Wire):
    """Scores the gateway computed and cannot read, and what the partner applies after
    decrypting them (``link`` over the score columns, ``labels`` naming them)."""

    model: str
    version: str
    packing: Literal["batch", "rows"]
    rows: int
    columns: int = Field(description="score columns per row (1 for a binary classifier)")
    link: Literal["sigmoid", "softmax", "identity"]
    labels: list[str | int] | None
    context: Digest
    scores: list[str] = Field(
        description="base64 ciphertexts: batch, one per score column holding every row in "
        "its slots; rows, one per row holding column c in coefficient c x features"
    )
    receipt: Receipt


class PrivacyBudget(_Wire):
    """What is left of a partner's privacy budget on a noised grant."""

    charter: str
    model: str
    epsilon: float = Field(description="each answered row's privacy loss")
    budget: float | None = Field(description="the charter's total; null: unlimited")
    spent: float
    left: float | None = Field(description="budget - spent; null: unlimited")


class CheckpointDocument(_Wire):
    note: str = Field(description="a C2SP signed note: origin, size, root, signature")


class InclusionProof(_Wire):
    index: int
    size: int
    leaf_hash: B64
    proof: list[B64]


class ConsistencyProof(_Wire):
    old_size: int
    new_size: int
    proof: list[B64]


class HandoverEvidence(_Wire):
    """One owner-key handover as the log holds it, and its inclusion proof."""

    index: int = Field(ge=0, description="the handover's log index")
    entry: str = Field(
        max_length=8192, pattern=r"^[A-Za-z0-9+/=]+$", description="base64 of its stored bytes"
    )
    proof: list[B64] = Field(max_length=64)


class HandoverChain(_Wire):
    """Every owner-key handover of the log, proved against ``checkpoint`` (a signed note)."""

    checkpoint: str
    handovers: list[HandoverEvidence] = Field(max_length=1000)


PARTNER_KEY_ROTATION_TYPE = "modelpact-partner-key-rotation/v1"
#: Domain separation for a partner's key rotation: no other signed message starts so.
_ROTATION_PREFIX = b"modelpact partner-key rotation v1\n"
PublicKeyText = Annotated[str, Field(pattern=r"^ed25519:[A-Za-z0-9+/]{43}=$")]


class PartnerKeyRotation(_Wire):
    """A partner moving to ``new_key``, signed by its enrolled key AND by the new key
    over :func:`partner_key_rotation_message` (with a fresh gateway challenge)."""

    partner: Slug
    old_key: PublicKeyText
    new_key: PublicKeyText
    nonce: B64
    signed_at: AwareDatetime
    old_signature: B64
    new_signature: B64


class PartnerKeyRotated(_Wire):
    """The gateway's answer: the key now enrolled, what was revoked, where it is logged."""

    partner: str
    key: str
    sessions_revoked: int
    entry: int


class Problem(_Wire):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    title: str
    status: int
    detail: str
    reasons: list[str] | None = None
    retry_after: float | None = None


class ServingMeasurement(_Wire):
    """Digests of the serving code and of its installed dependency set (see
    :mod:`modelpact.runtime.measurement`)."""

    code: Digest
    dependencies: Digest
    python: str = Field(max_length=32)


class AttestedCharter(_Wire):
    charter: Slug
    version: int = Field(ge=1)
    digest: Digest


class AttestedModel(_Wire):
    """A model version the session may use: its artifact's digest as verified when the
    gateway loaded it, and the digest of its signed manifest (the model-signing bundle)."""

    model: Slug
    version: str = Field(max_length=64)
    artifact: Digest
    manifest: Digest


class AttestationDocument(_Wire):
    """What the gateway says it runs, for one partner's nonce.

    ``provider`` names who measured: ``software`` is the gateway measuring itself,
    signed by the workspace key; it is not a hardware quote.
    """

    type: Literal["modelpact-attestation/v1"] = ATTESTATION_TYPE
    provider: Literal["software"] = "software"
    nonce: Nonce
    issued_at: Instant
    measurement: ServingMeasurement
    charter: AttestedCharter
    models: tuple[AttestedModel, ...]
    isolation: dict[str, str] = Field(max_length=16)


class SignedAttestation(_Wire):
    document: AttestationDocument
    signature: B64 = Field(description="Ed25519 by the workspace key over attestation_message")


def attestation_message(document: AttestationDocument) -> bytes:
    """The exact bytes the workspace key signs: RFC 8785 canonical JSON of the document."""
    return canonical_json(document.model_dump(mode="json"))


def instant(value: datetime) -> str:
    """``value`` as the wire writes instants: UTC, microseconds, ``Z``."""
    return _instant(value)


def session_message(
    *, audience: str, partner: str, charter: str, purpose: str, nonce: str, signed_at: datetime
) -> bytes:
    """The exact bytes a partner signs to open a session (and the gateway verifies)."""
    document: dict[str, str] = {
        "type": SESSION_MESSAGE_TYPE,
        "audience": audience,
        "partner": partner,
        "charter": charter,
        "purpose": purpose,
        "nonce": nonce,
        "signed_at": _instant(signed_at),
    }
    return canonical_json(document)


def partner_key_rotation_message(
    *, audience: str, partner: str, old_key: str, new_key: str, nonce: str, signed_at: datetime
) -> bytes:
    """The exact bytes both of a partner's keys sign to rotate (and the gateway verifies)."""
    document: dict[str, str] = {
        "type": PARTNER_KEY_ROTATION_TYPE,
        "audience": audience,
        "partner": partner,
        "old_key": old_key,
        "new_key": new_key,
        "nonce": nonce,
        "signed_at": _instant(signed_at),
    }
    return _ROTATION_PREFIX + canonical_json(document)


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
