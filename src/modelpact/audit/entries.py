"""What the audit log records: one strict, versioned schema per entry type.

Entries are stored and hashed as RFC 8785 canonical JSON, so the same entry
always has the same leaf hash, and a verifier can re-encode what it reads to
check it was stored in normal form.  They carry identifiers, decisions,
reasons and SHA-256 digests of inputs and outputs — never raw partner inputs,
model outputs or secrets.  ``schema`` names the entry type and its version;
a change to a type's fields is a new version, and old versions stay readable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from modelpact.crypto import canonical_json
from modelpact.errors import InvalidInput, Tampered

__all__ = [
    "AccessEntry",
    "AdminEntry",
    "AuditEntry",
    "Digest",
    "ExportEntry",
    "IncidentEntry",
    "OutputEntry",
    "decode_entry",
    "encode_entry",
]

#: ``sha256:<64 lower-case hex>``: the only way content appears in the log.
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
#: Administrative detail: flat, JSON-scalar values only (ids, digests, counts, flags).
Scalar = str | int | bool | None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time: AwareDatetime
    actor: Name
    subject: Name

    @field_validator("time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class AdminEntry(_Entry):
    """A change made by the owner: a model registered, a partner suspended, a charter applied."""

    schema_: Literal["admin/v1"] = Field(default="admin/v1", alias="schema")
    type: Literal["admin"] = "admin"
    action: Annotated[str, Field(pattern=r"^[a-z]+(\.[a-z_]+)+$")]
    detail: dict[Annotated[str, Field(max_length=64)], Scalar] = Field(default_factory=dict)


class AccessEntry(_Entry):
    """A partner's request and the policy's answer, allowed or denied, with its reasons."""

    schema_: Literal["access/v1"] = Field(default="access/v1", alias="schema")
    type: Literal["access"] = "access"
    charter: Name
    purpose: Name
    action: Name
    model: Name
    version: Name
    decision: Literal["allow", "deny"]
    reasons: tuple[Reason, ...]
    rows: Annotated[int, Field(ge=0)] = 0
    input_digest: Digest | None = None
    output_digest: Digest | None = None


class OutputEntry(_Entry):
    """How an answer was shaped before it left: the output policy and protections applied."""

    schema_: Literal["output/v1"] = Field(default="output/v1", alias="schema")
    type: Literal["output"] = "output"
    request: Annotated[int, Field(ge=0)] = Field(description="log index of the access entry")
    transformations: tuple[Name, ...]
    output_digest: Digest


class ExportEntry(_Entry):
    """An attempt to take something out: an artifact, a log export, evidence for an auditor."""

    schema_: Literal["export/v1"] = Field(default="export/v1", alias="schema")
    type: Literal["export"] = "export"
    what: Name
    allowed: bool
    reasons: tuple[Reason, ...] = ()
    digest: Digest | None = None


class IncidentEntry(_Entry):
    """A detected anomaly and the response the charter prescribes."""

    schema_: Literal["incident/v1"] = Field(default="incident/v1", alias="schema")
    type: Literal["incident"] = "incident"
    detector: Name
    severity: Literal["info", "warning", "critical"]
    response: Name
    evidence_digest: Digest | None = None


AuditEntry = Annotated[
    AdminEntry | AccessEntry | OutputEntry | ExportEntry | IncidentEntry,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[AuditEntry] = TypeAdapter(AuditEntry)


def encode_entry(entry: AuditEntry) -> bytes:
    """The canonical bytes that are stored and hashed into the log."""
    return canonical_json(entry.model_dump(mode="json", by_alias=True, exclude_none=True))


def decode_entry(data: bytes) -> AuditEntry:
    """Parse stored bytes; refuse anything that is not a known entry in canonical form."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"audit entry is not JSON: {exc}") from None
    try:
        entry = _ADAPTER.validate_python(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        raise InvalidInput(
            f"audit entry does not match its schema at {where}: {first['msg']}"
        ) from None
    if encode_entry(entry) != data:
        raise Tampered("audit entry is not in canonical form (it was re-encoded or edited)")
    return entry
