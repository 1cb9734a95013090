"""Plain records the store keeps: what a row holds, nothing of what it means.

Every time is a timezone-aware :class:`~datetime.datetime`; the store returns
them in UTC.  A day of usage is a :class:`~datetime.date` (a UTC day).  JSON
documents (a model card, a signed charter envelope) are kept as the exact text
given, never parsed or re-serialised, so a signature over that text still
verifies after a round trip.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from modelpact.errors import InvalidInput

__all__ = [
    "CHARTER_STATUSES",
    "HASH_SIZE",
    "PARTNER_STATUSES",
    "RESPONSES",
    "AuditEntryRecord",
    "ChallengeRecord",
    "CharterRecord",
    "CheckpointRecord",
    "MarkRecord",
    "ModelRecord",
    "ModelVersionRecord",
    "MonitorStateRecord",
    "PartnerRecord",
    "ProtectionRecord",
    "SessionRecord",
    "UsageRecord",
    "UsageTotal",
    "require_aware",
    "require_day",
    "require_hash",
]

PARTNER_STATUSES = frozenset({"active", "suspended", "revoked"})
RESPONSES = frozenset({"alert", "throttle", "harden", "suspend", "revoke"})
CHARTER_STATUSES = frozenset({"active", "superseded", "terminated"})
HASH_SIZE = 32
"""Bytes in every hash the audit log keeps (SHA-256, as RFC 9162 uses)."""


def require_aware(value: datetime, name: str) -> None:
    """Raise :class:`InvalidInput` unless ``value`` is a timezone-aware datetime."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInput(
            f"{name} must be a timezone-aware datetime",
            hint="pass datetime.now(timezone.utc) or another aware time",
        )


def require_hash(value: bytes, name: str) -> None:
    """Raise :class:`InvalidInput` unless ``value`` is ``bytes`` of :data:`HASH_SIZE`."""
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise InvalidInput(f"{name} must be {HASH_SIZE} bytes (a SHA-256 digest)")


def _require_index(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative integer: {value!r}")


def _require_text(value: str, name: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{name} must be a non-empty string")


def require_day(value: date, name: str) -> None:
    """Raise :class:`InvalidInput` unless ``value`` is a date (and not a datetime)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a date (a UTC day), not {type(value).__name__}")


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
class AuditEntryRecord:
    """One leaf of the audit log: its 0-based index, leaf hash and canonical JSON bytes.

    The store does not hash: ``leaf_hash`` is whatever the audit log computed
    (RFC 9162: SHA-256 of ``0x00 || entry``), kept beside the entry so proofs
    need not re-read entries.
    """

    idx: int
    leaf_hash: bytes
    entry: bytes  # canonical JSON (RFC 8785), byte for byte
    appended_at: datetime

    def __post_init__(self) -> None:
        _require_index(self.idx, "audit entry index")
        require_hash(self.leaf_hash, "leaf_hash")
        if not isinstance(self.entry, bytes):
            raise InvalidInput("an audit entry must be bytes (its canonical JSON)")
        require_aware(self.appended_at, "appended_at")


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A signed statement of the log's root hash at one size: the note text, byte for byte."""

    size: int
    root: bytes
    note: str  # the signed checkpoint note
    issued_at: datetime

    def __post_init__(self) -> None:
        _require_index(self.size, "checkpoint size")
        require_hash(self.root, "root")
        require_aware(self.issued_at, "issued_at")


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """A one-time nonce issued to whoever claims to be ``partner_id``; used at most once."""

    nonce: str
    partner_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_text(self.nonce, "nonce")
        _require_text(self.partner_id, "partner_id")
        require_aware(self.issued_at, "issued_at")
        require_aware(self.expires_at, "expires_at")
        if self.expires_at <= self.issued_at:
            raise InvalidInput("a challenge must expire after it is issued")
        if self.used_at is not None:
            require_aware(self.used_at, "used_at")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as issued: the SHA-256 of its token (never the token), and what it is bound to."""

    token_hash: bytes
    partner_id: str
    charter_id: str
    charter_version: int
    purpose: str
    issued_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None

    def __post_init__(self) -> None:
        require_hash(self.token_hash, "token_hash")
        _require_text(self.partner_id, "partner_id")
        _require_text(self.charter_id, "charter_id")
        _require_text(self.purpose, "purpose")
        if (
            not isinstance(self.charter_version, int)
            or isinstance(self.charter_version, bool)
            or self.charter_version < 1
        ):
            raise InvalidInput(f"charter version must be at least 1: {self.charter_version!r}")
        require_aware(self.issued_at, "issued_at")
        require_aware(self.expires_at, "expires_at")
        if self.expires_at <= self.issued_at:
            raise InvalidInput("a session must expire after it is issued")
        if self.revoked_at is not None:
            require_aware(self.revoked_at, "revoked_at")


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What a partner used under one charter on one UTC day: prediction rows and requests."""

    partner_id: str
    charter_id: str
    day: date
    rows: int
    requests: int

    def __post_init__(self) -> None:
        _require_text(self.partner_id, "partner_id")
        _require_text(self.charter_id, "charter_id")
        require_day(self.day, "day")
        _require_index(self.rows, "rows")
        _require_index(self.requests, "requests")


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """Usage summed over days, for one partner under one charter."""

    partner_id: str
    charter_id: str
    rows: int
    requests: int
    first_day: date
    last_day: date

    def __post_init__(self) -> None:
        _require_index(self.rows, "rows")
        _require_index(self.requests, "requests")
        require_day(self.first_day, "first_day")
        require_day(self.last_day, "last_day")


@dataclass(frozen=True, slots=True)
class MonitorStateRecord:
    """The extraction monitor's detectors for one partner, charter and model, as JSON text."""

    partner_id: str
    charter_id: str
    model: str
    state: str
    updated_at: datetime

    def __post_init__(self) -> None:
        _require_text(self.partner_id, "partner_id")
        _require_text(self.charter_id, "charter_id")
        _require_text(self.model, "model")
        _require_text(self.state, "state")
        require_aware(self.updated_at, "updated_at")


@dataclass(frozen=True, slots=True)
class ProtectionRecord:
    """The response in force for one partner, charter and model after monitor alarms.

    ``step`` counts the steps taken along the charter's escalation ladder (1 is the
    first); ``evidence`` is the JSON of the alarm behind the latest one.
    """

    partner_id: str
    charter_id: str
    model: str
    step: int
    response: str
    since: datetime
    evidence: str

    def __post_init__(self) -> None:
        _require_text(self.partner_id, "partner_id")
        _require_text(self.charter_id, "charter_id")
        _require_text(self.model, "model")
        if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 1:
            raise InvalidInput(f"step must be a positive integer: {self.step!r}")
        if self.response not in RESPONSES:
            raise InvalidInput(f"unknown response {self.response!r}")
        require_aware(self.since, "since")
        _require_text(self.evidence, "evidence")


@dataclass(frozen=True, slots=True)
class MarkRecord:
    """One answered request's watermarked queries and the labels they were given, sealed.

    ``sealed`` is opaque text (sealed under the partner's mark key); ``rows`` how many.
    """

    partner_id: str
    charter_id: str
    model: str
    version: str
    rows: int
    sealed: str
    created_at: datetime

    def __post_init__(self) -> None:
        for name in ("partner_id", "charter_id", "model", "version", "sealed"):
            _require_text(getattr(self, name), name)
        if not isinstance(self.rows, int) or isinstance(self.rows, bool) or self.rows < 1:
            raise InvalidInput(f"rows must be a positive integer: {self.rows!r}")
        require_aware(self.created_at, "created_at")
