"""The charter: the collaboration agreement as code, pure (no I/O, no clock).

- :mod:`~modelpact.charter.model` — the typed, immutable :class:`Charter`;
- :mod:`~modelpact.charter.parse` — YAML in, with findings at the line to fix
  (:func:`load_charter`, :func:`check_charter`);
- :mod:`~modelpact.charter.lint` — risks the schema accepts (:data:`RULES`);
- :mod:`~modelpact.charter.canonical` — the bytes that are signed, the digest,
  readable YAML out;
- :mod:`~modelpact.charter.signed` — :class:`SignedCharter`, the envelope
  signed by the owner and countersigned by the partner;
- :mod:`~modelpact.charter.diff` — what changed between two versions.

Turning a charter into Cedar policies is :mod:`modelpact.policy`'s job, one layer up.
"""

from modelpact.charter.canonical import charter_bytes, charter_digest, to_yaml
from modelpact.charter.diff import diff_charters, diff_documents
from modelpact.charter.findings import CharterReport, FieldPath, Finding, LineMap, format_path
from modelpact.charter.lint import RULES, Concern, LintRule, lint_charter
from modelpact.charter.model import (
    SLUG_PATTERN,
    Action,
    AttestationPins,
    Charter,
    ExitTerms,
    ExtractionMonitor,
    Grant,
    IncidentResponse,
    Limits,
    OutputKind,
    OutputPolicy,
    Owner,
    PartnerParty,
    Protections,
    Response,
    Validity,
    parse_duration,
)
from modelpact.charter.parse import (
    MAX_CHARTER_BYTES,
    charter_from_document,
    check_charter,
    load_charter,
    schema_findings,
)
from modelpact.charter.signed import SIGNED_CHARTER_FORMAT, Role, SignedCharter

__all__ = [
    "MAX_CHARTER_BYTES",
    "RULES",
    "SIGNED_CHARTER_FORMAT",
    "SLUG_PATTERN",
    "Action",
    "AttestationPins",
    "Charter",
    "CharterReport",
    "Concern",
    "ExitTerms",
    "ExtractionMonitor",
    "FieldPath",
    "Finding",
    "Grant",
    "IncidentResponse",
    "Limits",
    "LineMap",
    "LintRule",
    "OutputKind",
    "OutputPolicy",
    "Owner",
    "PartnerParty",
    "Protections",
    "Response",
    "Role",
    "SignedCharter",
    "Validity",
    "charter_bytes",
    "charter_digest",
    "charter_from_document",
    "check_charter",
    "diff_charters",
    "diff_documents",
    "format_path",
    "lint_charter",
    "load_charter",
    "parse_duration",
    "schema_findings",
    "to_yaml",
]
