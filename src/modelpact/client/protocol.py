"""What both SDK clients share and that needs no I/O: signing, parsing, checking.

The sync and async clients differ only in how they send a request; everything
they decide — what to sign, how a problem maps to an error, whether a proof
holds — lives here once.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from modelpact.audit.checkpoint import Checkpoint, open_checkpoint
from modelpact.audit.tree import verify_inclusion
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import (
    AuditUnavailable,
    BudgetExhausted,
    ContextNeeded,
    Denied,
    Expired,
    InvalidInput,
    ModelpactError,
    NotFound,
    ProofInvalid,
    QuotaExhausted,
    ServerError,
    StorageUnavailable,
    Tampered,
    Unauthenticated,
)
from modelpact.wire import (
    PROBLEM_BASE,
    Challenge,
    InclusionProof,
    PartnerKeyRotation,
    PredictResponse,
    Receipt,
    SessionGrant,
    SessionRequest,
    partner_key_rotation_message,
    session_message,
)

__all__ = [
    "Identity",
    "Prediction",
    "as_rows",
    "check_inclusion",
    "error_from",
    "open_log_checkpoint",
    "renew_due",
]

#: Renew a session this many seconds before it expires rather than be refused mid-batch.
RENEW_MARGIN = 5.0


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the partner is and what it asks for: its key, charter and purpose."""

    partner: str
    key: SigningKey
    charter: str
    purpose: str

    def session_request(self, challenge: Challenge, now: datetime | None = None) -> SessionRequest:
        """Sign the server's challenge (proof of possession of the partner's key)."""
        signed_at = now or datetime.now(UTC)
        message = session_message(
            audience=challenge.audience,
            partner=self.partner,
            charter=self.charter,
            purpose=self.purpose,
            nonce=challenge.nonce,
            signed_at=signed_at,
        )
        signature = base64.b64encode(self.key.sign(message)).decode("ascii")
        return SessionRequest(
            partner=self.partner,
            charter=self.charter,
            purpose=self.purpose,
            nonce=challenge.nonce,
            signed_at=signed_at,
            signature=signature,
        )

    def with_key(self, key: SigningKey) -> Identity:
        """The same partner, charter and purpose, signing with ``key``."""
        return Identity(partner=self.partner, key=key, charter=self.charter, purpose=self.purpose)

    def rotation_request(
        self, challenge: Challenge, new_key: SigningKey, now: datetime | None = None
    ) -> PartnerKeyRotation:
        """Sign the move to ``new_key`` with the current key AND the new one (both prove)."""
        signed_at = now or datetime.now(UTC)
        old_text, new_text = self.key.verify_key.encode(), new_key.verify_key.encode()
        message = partner_key_rotation_message(
            audience=challenge.audience,
            partner=self.partner,
            old_key=old_text,
            new_key=new_text,
            nonce=challenge.nonce,
            signed_at=signed_at,
        )
        return PartnerKeyRotation(
            partner=self.partner,
            old_key=old_text,
            new_key=new_text,
            nonce=challenge.nonce,
            signed_at=signed_at,
            old_signature=base64.b64encode(self.key.sign(message)).decode("ascii"),
            new_signature=base64.b64encode(new_key.sign(message)).decode("ascii"),
        )


@dataclass(frozen=True, slots=True)
class Prediction:
    """The shaped outputs, one per row, and the receipt of the request's audit entry."""

    model: str
    version: str
    outputs: list[dict[str, Any]]
    receipt: Receipt

    @classmethod
    def from_wire(cls, response: PredictResponse) -> Prediction:
        return cls(response.model, response.version, list(response.outputs), response.receipt)


def renew_due(grant: SessionGrant | None, now: datetime | None = None) -> bool:
    """Whether to open a new session before the next request."""
    if grant is None:
        return True
    remaining = (grant.expires_at - (now or datetime.now(UTC))).total_seconds()
    return remaining < RENEW_MARGIN


def as_rows(data: Any) -> list[list[float]]:
    """Rows of features from a numpy array, a pandas frame or nested sequences.

    Refuses NaN and infinities here, before they cost a request of the quota.
    """
    if hasattr(data, "to_numpy"):  # pandas
        data = data.to_numpy()
    if hasattr(data, "tolist"):  # numpy
        data = data.tolist()
    if not isinstance(data, Sequence) or isinstance(data, str | bytes) or not data:
        raise InvalidInput("rows must be a non-empty 2-D array, frame or list of lists")
    rows: list[list[float]] = []
    for number, row in enumerate(data):
        if not isinstance(row, Sequence) or isinstance(row, str | bytes):
            raise InvalidInput(f"row {number} is not a sequence of numbers")
        values = []
        for value in row:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"row {number} holds {type(value).__name__}, not a number")
            if not math.isfinite(value):
                raise InvalidInput(f"row {number} holds a NaN or an infinity")
            values.append(float(value))
        rows.append(values)
    return rows


_BY_KIND: dict[str, type[ModelpactError]] = {
    "unauthenticated": Unauthenticated,
    "expired": Expired,
    "budget-exhausted": BudgetExhausted,
    "denied": Denied,
    "quota-exhausted": QuotaExhausted,
    "not-found": NotFound,
    "invalid-input": InvalidInput,
    "invalid-request": InvalidInput,
    "payload-too-large": InvalidInput,
    "context-needed": ContextNeeded,
    "tampered": Tampered,
    "audit-unavailable": AuditUnavailable,
    "unavailable": StorageUnavailable,
}


def error_from(response: httpx.Response) -> ModelpactError:
    """The typed error for a non-2xx response (problem+json, or anything else)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not str(body.get("type", "")).startswith(PROBLEM_BASE):
        return ServerError(f"the gateway answered HTTP {response.status_code} without a problem")
    kind = str(body["type"]).removeprefix(PROBLEM_BASE)
    detail = str(body.get("detail") or body.get("title") or kind)[:500]
    cls = _BY_KIND.get(kind, ServerError)
    if cls is QuotaExhausted:
        retry = body.get("retry_after")
        if not isinstance(retry, int | float):
            header = response.headers.get("Retry-After", "")
            retry = float(header) if header.isdigit() else None
        return QuotaExhausted(detail, retry_after=retry, hint="")
    if issubclass(cls, Denied):
        reasons = body.get("reasons") or ()
        return cls(detail, reasons=tuple(str(r) for r in reasons), hint="")
    return cls(detail, hint="")


def open_log_checkpoint(note: str, owner: VerifyKey, origin: str) -> Checkpoint:
    """The checkpoint in ``note`` once the owner's signature over it verifies."""
    return open_checkpoint(note, owner, name=origin, origin=origin)


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServerError(f"the gateway sent {what} that is not base64") from None


def check_inclusion(receipt: Receipt, proof: InclusionProof, checkpoint: Checkpoint) -> None:
    """Raise ProofInvalid unless ``receipt``'s entry is in the tree ``checkpoint`` signs."""
    if proof.index != receipt.index or proof.size != checkpoint.size:
        raise ProofInvalid(
            f"the gateway proved entry {proof.index} in a tree of {proof.size}, not entry "
            f"{receipt.index} in the checkpoint of size {checkpoint.size}"
        )
    leaf = _unb64(receipt.leaf_hash, "a leaf hash")
    if _unb64(proof.leaf_hash, "a leaf hash") != leaf:
        raise ProofInvalid(f"entry {receipt.index} in the log is not the one the receipt names")
    hashes = [_unb64(h, "a proof hash") for h in proof.proof]
    verify_inclusion(receipt.index, checkpoint.size, leaf, hashes, checkpoint.root)


def unb64_list(items: Iterable[str]) -> list[bytes]:
    return [_unb64(item, "a proof hash") for item in items]
