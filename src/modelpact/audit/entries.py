"""What the audit log records: one strict, versioned schema per entry type.

Entries are stored and hashed as RFC 8785 canonical JSON, so the same entry
always has the same leaf hash, and a verifier can re-encode what it reads to
check it was stored in normal form.  They carry identifiers, decisions,
reasons and SHA-256 digests of inputs and outputs — never raw partner inputs,
model outputs or secrets.  ``schema`` names the entry type and its version;
a change to a type's fields is a new version, and old versions stay readable.

Encoding is on every audited request's path, so it avoids the generic
canonicaliser: each schema declares its fields in code-point order of their
JSON names, holds only strings, integers within 2^53, booleans, arrays of
strings and objects with sorted ASCII keys, and leaves out what is unset — for
such values pydantic's own JSON serialiser already writes RFC 8785 bytes.
A property test holds the two equal for every schema, and anything the fast
path cannot write (a lone surrogate, say) goes through :func:`canonical_json`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic_core import PydanticSerializationError

from modelpact.crypto import canonical_json
from modelpact.errors import InvalidInput, Tampered

__all__ = [
    "PRUNE_ACTION",
    "TERMINATE_ACTION",
    "AccessEntry",
    "AdminEntry",
    "AuditEntry",
    "Digest",
    "ExportEntry",
    "IncidentEntry",
    "OutputEntry",
    "PrunedEntry",
    "SessionEntry",
    "decode_entry",
    "encode_entry",
]

#: The admin entry that says which entries were pruned, and why.
PRUNE_ACTION = "log.prune"
#: The admin entry of a charter's termination (subject ``<charter>@v<n>``): what a prune's
#: retention counts from, and what an exit report proves is in the log.
TERMINATE_ACTION = "charter.terminate"
#: ``sha256:<64 lower-case hex>``: the only way content appears in the log.
Digest = Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]
Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
Reason = Annotated[str, Field(min_length=1, max_length=500)]
#: JSON numbers hold integers exactly up to 2^53; RFC 8785 writes nothing larger.
Count = Annotated[int, Field(ge=0, le=2**53 - 1)]
#: A measured number as a decimal string: exact, and written the same by every encoder.
Measure = Annotated[str, Field(pattern=r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?(e[-+][0-9]+)?$")]
#: Administrative detail: flat, JSON-scalar values only (ids, digests, counts, flags).
Scalar = str | Annotated[int, Field(ge=-(2**53) + 1, le=2**53 - 1)] | bool | None
DetailKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class _Entry(BaseModel):
    # Subclasses declare their fields sorted by JSON name (see the module docstring).
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("time", check_fields=False)
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)


class AdminEntry(_Entry):
    """A change made by the owner: a model registered, a partner suspended, a charter applied."""

    action: Annotated[str, Field(pattern=r"^[a-z]+(\.[a-z_]+)+$")]
    actor: Name
    detail: dict[DetailKey, Scalar] = Field(default_factory=dict)
    schema_: Literal["admin/v1"] = Field(default="admin/v1", alias="schema")
    subject: Name
    time: AwareDatetime
    type: Literal["admin"] = "admin"

    @field_validator("detail")
    @classmethod
    def _sorted(cls, value: dict[str, Any]) -> dict[str, Any]:
        return dict(sorted(value.items()))  # keys are ASCII: code-point order is RFC 8785's


class AccessEntry(_Entry):
    """A partner's request and the policy's answer, allowed or denied, with its reasons."""

    action: Name
    actor: Name
    charter: Name
    decision: Literal["allow", "deny"]
    input_digest: Digest | None = None
    model: Name
    output_digest: Digest | None = None
    purpose: Name
    reasons: tuple[Reason, ...]
    rows: Count = 0
    schema_: Literal["access/v1"] = Field(default="access/v1", alias="schema")
    subject: Name
    time: AwareDatetime
    type: Literal["access"] = "access"
    version: Name


class OutputEntry(_Entry):
    """How an answer was shaped before it left: the output policy and protections applied."""

    actor: Name
    output_digest: Digest
    request: Count = Field(description="log index of the access entry")
    schema_: Literal["output/v1"] = Field(default="output/v1", alias="schema")
    subject: Name
    time: AwareDatetime
    transformations: tuple[Name, ...]
    type: Literal["output"] = "output"


class ExportEntry(_Entry):
    """An attempt to take something out: an artifact, a log export, evidence for an auditor."""

    actor: Name
    allowed: bool
    digest: Digest | None = None
    reasons: tuple[Reason, ...] = ()
    schema_: Literal["export/v1"] = Field(default="export/v1", alias="schema")
    subject: Name
    time: AwareDatetime
    type: Literal["export"] = "export"
    what: Name


class IncidentEntry(_Entry):
    """A monitor's alarm and the response the charter prescribes for it, with the evidence.

    ``actor`` is the partner; ``subject`` what the response applies to
    (``partner/charter/model``); ``statistic`` and ``threshold`` are decimal strings
    (exact in any JSON reader); ``window`` how many queries (or days) the statistic
    covers; ``step`` how far along the charter's escalation ladder this response is.
    """

    actor: Name
    charter: Name
    detail: Reason
    detector: Name
    model: Name
    response: Literal["alert", "throttle", "harden", "suspend", "revoke"]
    schema_: Literal["incident/v1"] = Field(default="incident/v1", alias="schema")
    severity: Literal["info", "warning", "critical"]
    statistic: Measure
    step: Count
    subject: Name
    threshold: Measure
    time: AwareDatetime
    type: Literal["incident"] = "incident"
    window: Count


class SessionEntry(_Entry):
    """A partner proving who it is: a session opened or refused, a token refused or closed,
    an attestation fetched, an encryption context uploaded (``context``), a dashboard
    sign-in link issued (``dashboard``).

    ``actor`` is the partner the request claimed to be (``unknown`` when it
    named none); ``subject`` the session's token id (``sha256:`` of the token,
    never the token) or what was asked for.
    """

    action: Literal["open", "authenticate", "attest", "close", "context", "dashboard"]
    actor: Name
    charter: Name | None = None
    decision: Literal["allow", "deny"]
    purpose: Name | None = None
    reasons: tuple[Reason, ...] = ()
    schema_: Literal["session/v1"] = Field(default="session/v1", alias="schema")
    subject: Name
    time: AwareDatetime
    type: Literal["session"] = "session"


class PrunedEntry(_Entry):
    """What stands where an entry was once the retention period of its charter ended.

    The log keeps the entry's leaf hash (so the tree, every checkpoint and every other
    entry's proof are unchanged) and replaces its payload with this marker: ``actor``
    and ``charter`` as the entry named them, ``prune`` the index of the ``log.prune``
    entry that says why and how many, ``time`` when it was pruned.  Its bytes do not
    hash to the leaf: a verifier counts it as pruned (see :mod:`modelpact.audit.bundle`),
    never as changed.  It is written only by :func:`modelpact.audit.log.prune_within`.
    """

    actor: Name
    charter: Name
    prune: Count = Field(description="log index of the log.prune entry")
    schema_: Literal["pruned/v1"] = Field(default="pruned/v1", alias="schema")
    time: AwareDatetime
    type: Literal["pruned"] = "pruned"


ENTRY_TYPES: tuple[type[BaseModel], ...] = (
    AdminEntry,
    AccessEntry,
    OutputEntry,
    ExportEntry,
    IncidentEntry,
    SessionEntry,
    PrunedEntry,
)
AuditEntry = Annotated[
    AdminEntry
    | AccessEntry
    | OutputEntry
    | ExportEntry
    | IncidentEntry
    | SessionEntry
    | PrunedEntry,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[AuditEntry] = TypeAdapter(AuditEntry)


def encode_entry(entry: AuditEntry) -> bytes:
    """The canonical bytes that are stored and hashed into the log."""
    try:
        return entry.__pydantic_serializer__.to_json(entry, by_alias=True, exclude_none=True)
    except PydanticSerializationError:  # not plain UTF-8 (a lone surrogate): the full path
        return slow_encode_entry(entry)


def slow_encode_entry(entry: AuditEntry) -> bytes:
    """The same bytes through the generic RFC 8785 canonicaliser (the reference)."""
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
