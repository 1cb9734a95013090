"""Owner-key handovers: how a verifier that trusts one owner key comes to trust the next.

Why it exists: the owner's key signs every checkpoint, and a key must be replaceable
(lost laptop, staff change, routine rotation) without partners and auditors having to
re-learn it out of band.  A handover is a statement, RFC 8785 canonical JSON::

    {"format": "modelpact-owner-handover/v1", "origin": <log>, "old_key": "ed25519:...",
     "new_key": "ed25519:...", "time": "2026-11-26T08:40:00.000000Z"}

signed by BOTH keys over :data:`HANDOVER_PREFIX` ``+`` those bytes (the prefix keeps a
handover signature from ever being mistaken for a charter, a report or a note), and
appended to the audit log as an ``owner.key_handover`` admin entry, so checkpoints cover
it and nobody can hand the log over in secret.

A verifier starts from the key it trusts (the charter's ``owner.key``, or a pinned key)
and follows the handovers in log order (:func:`follow_handovers`): each must be signed by
the key in force and by its successor.  The old signature says "I hand over"; the new one
"I accept, and vouch for what came before", so a verifier pinned to a later key also
accepts the earlier history.  The result, a :class:`KeyChain`, says which key was in
force for a tree of each size: a key signs only trees that do not yet hold its own
handover (sizes up to the handover's index); from the handover on, its successor
signs.  So a retired key can never vouch for a log that grew after it handed over.

Pure: no store, no server; the partner SDK and offline verifiers use it as is.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelpact.audit.checkpoint import Checkpoint, open_checkpoint
from modelpact.audit.entries import AdminEntry, AuditEntry, decode_entry
from modelpact.crypto import SigningKey, VerifyKey, canonical_json
from modelpact.errors import InvalidInput, ModelpactError, SignatureInvalid, Tampered

__all__ = [
    "HANDOVER_ACTION",
    "HANDOVER_FORMAT",
    "HANDOVER_PREFIX",
    "Handover",
    "KeyChain",
    "SignedHandover",
    "follow_handovers",
    "handover_entry",
    "handover_from_entry",
    "handovers_in",
    "sign_handover",
]

HANDOVER_FORMAT = "modelpact-owner-handover/v1"
#: Domain separation: what both keys sign is this prefix and the canonical statement.
HANDOVER_PREFIX = b"modelpact owner-key handover v1\n"
#: The admin entry's action that records a handover in the log.
HANDOVER_ACTION = "owner.key_handover"
_MAX_HANDOVERS = 1000


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signature(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput(f"the handover's {what} is missing")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"the handover's {what} is not base64") from None
    if len(raw) != 64:
        raise InvalidInput(f"the handover's {what} has {len(raw)} bytes, not 64")
    return raw


@dataclass(frozen=True, slots=True)
class Handover:
    """The statement: the log ``origin`` passes from ``old_key`` to ``new_key`` at ``time``."""

    origin: str
    old_key: VerifyKey
    new_key: VerifyKey
    time: str  # an instant, YYYY-MM-DDTHH:MM:SS.ffffffZ, as signed

    def document(self) -> dict[str, str]:
        return {
            "format": HANDOVER_FORMAT,
            "origin": self.origin,
            "old_key": self.old_key.encode(),
            "new_key": self.new_key.encode(),
            "time": self.time,
        }

    def signed_bytes(self) -> bytes:
        """What both keys sign: :data:`HANDOVER_PREFIX` and the canonical statement."""
        return HANDOVER_PREFIX + canonical_json(self.document())


@dataclass(frozen=True, slots=True)
class SignedHandover:
    """A handover with the old key's and the new key's signatures."""

    statement: Handover
    old_signature: bytes
    new_signature: bytes

    def verify(self) -> None:
        """Raise :class:`SignatureInvalid` unless BOTH keys signed the statement."""
        statement = self.statement
        if statement.old_key == statement.new_key:
            raise SignatureInvalid("a handover from a key to itself hands nothing over")
        data = statement.signed_bytes()
        for key, signature, which in (
            (statement.old_key, self.old_signature, "old"),
            (statement.new_key, self.new_signature, "new"),
        ):
            try:
                key.verify(signature, data)
            except SignatureInvalid:
                raise SignatureInvalid(
                    f"the handover to {statement.new_key.encode()} is not signed by its "
                    f"{which} key {key.encode()}",
                    hint="a handover counts only when the old and the new key both signed it",
                ) from None

    def to_document(self) -> dict[str, str]:
        """The statement's fields and both signatures, flat (an admin entry's detail)."""
        return self.statement.document() | {
            "old_signature": _b64(self.old_signature),
            "new_signature": _b64(self.new_signature),
        }

    @classmethod
    def from_document(cls, document: Any) -> SignedHandover:
        """Parse :meth:`to_document`'s shape; unknown fields are refused.  Not verified."""
        if not isinstance(document, dict):
            raise InvalidInput("a handover is a JSON object")
        expected = {"format", "origin", "old_key", "new_key", "time"}
        expected |= {"old_signature", "new_signature"}
        if set(document) != expected:
            raise InvalidInput(f"a handover has exactly the fields {', '.join(sorted(expected))}")
        if document["format"] != HANDOVER_FORMAT:
            raise InvalidInput(f"not a {HANDOVER_FORMAT} statement")
        origin, time = document["origin"], document["time"]
        if not isinstance(origin, str) or not isinstance(time, str):
            raise InvalidInput("a handover's origin and time are strings")
        statement = Handover(
            origin=origin,
            old_key=VerifyKey.decode(document["old_key"]),
            new_key=VerifyKey.decode(document["new_key"]),
            time=time,
        )
        return cls(
            statement,
            _signature(document["old_signature"], "old key's signature"),
            _signature(document["new_signature"], "new key's signature"),
        )


def sign_handover(
    old: SigningKey, new: SigningKey, *, origin: str, time: datetime
) -> SignedHandover:
    """The handover of ``origin`` from ``old`` to ``new``, signed by both."""
    statement = Handover(origin, old.verify_key, new.verify_key, _instant(time))
    data = statement.signed_bytes()
    return SignedHandover(statement, old.sign(data), new.sign(data))


def handover_entry(handover: SignedHandover, *, time: datetime) -> AdminEntry:
    """The audit entry that records ``handover`` in the log."""
    return AdminEntry(
        time=time,
        actor="owner",
        subject=handover.statement.origin[:200],
        action=HANDOVER_ACTION,
        detail=dict(handover.to_document()),
    )


def handover_from_entry(entry: AuditEntry | bytes) -> SignedHandover | None:
    """The handover an entry (or its stored bytes) records; ``None`` for any other entry."""
    if isinstance(entry, bytes):
        entry = decode_entry(entry)
    if not isinstance(entry, AdminEntry) or entry.action != HANDOVER_ACTION:
        return None
    return SignedHandover.from_document(dict(entry.detail))


@dataclass(frozen=True, slots=True)
class KeyChain:
    """The owner keys of one log in order, and where each handed over.

    ``keys[i]`` signs trees of sizes up to ``boundaries[i]`` (the log index of its
    handover); the last key signs every larger tree.
    """

    origin: str
    keys: tuple[VerifyKey, ...]
    boundaries: tuple[int, ...]
    handovers: tuple[SignedHandover, ...] = ()

    @property
    def current(self) -> VerifyKey:
        """The key in force now: the one that signs new checkpoints."""
        return self.keys[-1]

    def __contains__(self, key: object) -> bool:
        return key in self.keys

    def key_for(self, size: int) -> VerifyKey:
        """The key that signs a tree of ``size`` entries."""
        for key, boundary in zip(self.keys, self.boundaries, strict=False):
            if size <= boundary:
                return key
        return self.keys[-1]

    def open_checkpoint(self, note: str) -> Checkpoint:
        """The checkpoint in ``note``, once signed by the key in force for its size.

        A checkpoint signed by a key of the chain for a tree that key no longer
        signs (it had handed over) raises :class:`SignatureInvalid`, as does one
        signed by no key of the chain.
        """
        for key in reversed(self.keys):
            try:
                checkpoint = open_checkpoint(note, key, name=self.origin, origin=self.origin)
            except SignatureInvalid:
                continue
            if self.key_for(checkpoint.size) != key:
                raise SignatureInvalid(
                    f"the checkpoint of size {checkpoint.size} is signed by {key.encode()}, "
                    f"which had handed the log over to "
                    f"{self.key_for(checkpoint.size).encode()}",
                    hint="a retired owner key signs no tree that holds its handover",
                )
            return checkpoint
        raise SignatureInvalid(
            "the checkpoint is signed by no owner key this verifier trusts",
            hint="the owner's handovers (GET /v1/log/handovers, or the log) lead to each new key",
        )


def follow_handovers(
    trusted: VerifyKey, handovers: Iterable[tuple[int, SignedHandover]], *, origin: str
) -> KeyChain:
    """The chain of owner keys of ``origin`` that ``trusted`` vouches for.

    ``handovers`` are every handover the log records, as (log index, handover), in log
    order.  Each must verify (both signatures), name ``origin``, and hand over from the
    key the previous one handed to; ``trusted`` must be one of the keys: the first
    one, or a later one (which, having signed its handover, vouches for its
    predecessors).  Anything else raises :class:`SignatureInvalid` or
    :class:`Tampered`: a verifier never skips a handover it cannot follow.
    """
    listed: Sequence[tuple[int, SignedHandover]] = list(handovers)
    if len(listed) > _MAX_HANDOVERS:
        raise InvalidInput(f"more than {_MAX_HANDOVERS} owner-key handovers")
    if not listed:
        return KeyChain(origin, (trusted,), ())
    keys = [listed[0][1].statement.old_key]
    boundaries: list[int] = []
    for index, handover in listed:
        statement = handover.statement
        if statement.origin != origin:
            raise Tampered(f"the handover at entry {index} is for another log ({statement.origin})")
        if boundaries and index <= boundaries[-1]:
            raise Tampered(f"the handover at entry {index} is out of log order")
        if statement.old_key != keys[-1]:
            raise SignatureInvalid(
                f"the handover at entry {index} is from {statement.old_key.encode()}, "
                f"not from the key in force ({keys[-1].encode()})",
                hint="every handover must continue from the key the previous one handed to",
            )
        handover.verify()
        if statement.new_key in keys:
            raise Tampered(f"the handover at entry {index} hands the log back to an earlier key")
        keys.append(statement.new_key)
        boundaries.append(index)
    if trusted not in keys:
        raise SignatureInvalid(
            f"the log's owner keys do not include the trusted key {trusted.encode()}",
            hint="the key you trust (the charter's owner key) never signed this log",
        )
    return KeyChain(origin, tuple(keys), tuple(boundaries), tuple(h for _, h in listed))


def handovers_in(entries: Iterable[tuple[int, bytes]]) -> list[tuple[int, SignedHandover]]:
    """Every handover among stored entries (index, canonical bytes), in their order.

    An entry that names the handover action but does not parse as one raises
    :class:`Tampered`.
    """
    found = []
    marker = b'"' + HANDOVER_ACTION.encode() + b'"'
    for index, blob in entries:
        if marker not in blob:
            continue
        try:
            handover = handover_from_entry(blob)
        except ModelpactError as exc:
            raise Tampered(f"entry {index} is not a readable handover: {exc.summary}") from None
        if handover is not None:
            found.append((index, handover))
    return found
