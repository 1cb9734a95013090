"""The gateway's HTTP API as data: what partners send and receive, shared by gateway and SDK.

Pure pydantic, no I/O, so the partner SDK can import it with no server
installed.  The one thing both sides must build byte for byte is what a partner
signs to open a session: :func:`session_message`, RFC 8785 canonical JSON of a
typed document naming the gateway (``audience``), the partner, charter and
purpose, the server's one-time ``nonce`` and the partner's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from modelpact.crypto import canonical_json

__all__ = [
    "PROBLEM_BASE",
    "SESSION_MESSAGE_TYPE",
    "Challenge",
    "ChallengeRequest",
    "CheckpointDocument",
    "ConsistencyProof",
    "InclusionProof",
    "PredictRequest",
    "PredictResponse",
    "Problem",
    "Receipt",
    "SessionGrant",
    "SessionRequest",
    "session_message",
]

SESSION_MESSAGE_TYPE = "modelpact-session-request/v1"
#: Problem ``type`` URIs are this plus the error kind (``denied``, ``quota-exhausted``...).
PROBLEM_BASE = "https://modelpact.dev/problems/"

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
B64 = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_=+/-]+$")]


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


class Problem(_Wire):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    title: str
    status: int
    detail: str
    reasons: list[str] | None = None
    retry_after: float | None = None


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


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
