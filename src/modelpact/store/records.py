"""Plain records the store keeps: what a row holds, nothing of what it means.

Every time is a timezone-aware :class:`~datetime.datetime`; the store returns
them in UTC.  JSON documents (a model card, an event's detail, a signed charter
envelope) are kept as the exact text given, never parsed or re-serialised, so a
signature over that text still verifies after a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelpact.errors import InvalidInput

__all__ = [
    "CHARTER_STATUSES",
    "PARTNER_STATUSES",
    "CharterRecord",
    "EventRecord",
    "ModelRecord",
    "ModelVersionRecord",
    "PartnerRecord",
    "require_aware",
]

PARTNER_STATUSES = frozenset({"active", "suspended", "revoked"})
CHARTER_STATUSES = frozenset({"active", "superseded", "terminated"})


def require_aware(value: datetime, name: str) -> None:
    """Raise :class:`InvalidInput` unless ``value`` is a timezone-aware datetime."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be a timezone-aware datetime",
            hint="pass datetime.now(timezone.utc) or another aware time",
        )


def _require_status(value: str, allowed: frozenset[str], what: str) -> None:
    if value not in allowed:
        raise InvalidInput(f"{what} status must be one of {', '.join(sorted(allowed))}: {value!r}")


@dataclass(frozen=True, slots=True)
class PartnerRecord:
    """A partner organisation: its id, display name and Ed25519 public key text."""

    id: str
    name: str
    public_key: str
    status: str  # "active" | "suspended" | "revoked"
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        _require_status(self.status, PARTNER_STATUSES, "partner")
        require_aware(self.created_at, "created_at")
        require_aware(self.updated_at, "updated_at")


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """A named model and the version it serves (``None`` before one is chosen)."""

    name: str
    served_version: str | None
    created_at: datetime

    def __post_init__(self) -> None:
        require_aware(self.created_at, "created_at")


@dataclass(frozen=True, slots=True)
class ModelVersionRecord:
    """One immutable version of a model: where its sealed artifact lives and how to open it."""

    model: str
    version: str
    digest: str
    size: int
    artifact_key: str
    wrapped_key: bytes
    signature_bundle: bytes
    card: str  # JSON text
    created_at: datetime

    def __post_init__(self) -> None:
        if self.size < 0:
            raise InvalidInput(f"artifact size cannot be negative: {self.size}")
        require_aware(self.created_at, "created_at")


@dataclass(frozen=True, slots=True)
class CharterRecord:
    """One version of a charter as applied: the signed envelope text and its digest."""

    charter_id: str
    version: int
    partner_id: str
    envelope: str  # the signed JSON document, byte for byte
    digest: str
    status: str  # "active" | "superseded" | "terminated"
    applied_at: datetime

    def __post_init__(self) -> None:
        _require_status(self.status, CHARTER_STATUSES, "charter")
        require_aware(self.applied_at, "applied_at")


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the event log; ``seq`` counts 1, 2, 3, … in commit order."""

    seq: int
    at: datetime
    actor: str
    kind: str
    subject: str
    detail: str  # JSON text

    def __post_init__(self) -> None:
        require_aware(self.at, "at")
