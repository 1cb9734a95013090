"""The SDK's side of owner-key handovers: follow them, and carry the witness across.

The partner trusts the key its charter names.  When a checkpoint (or an attestation) is
not signed by the key the client knows, it asks the gateway for the handovers
(``GET /v1/log/handovers``) and :func:`follow_owner` checks them: each stored entry is a
handover signed by the key in force and its successor
(:func:`~modelpact.audit.handover.follow_handovers`), the checkpoint sent along is signed
by the key in force for its size, and every handover is proved included in it.

The witness keeps the last checkpoint it accepted, signed by the key of its day;
:func:`observe_across` hands it over to the next key after the same checks the witness
makes (no rollback, no fork, a valid consistency proof).  Pure: no I/O but the witness
state file.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from modelpact.audit.checkpoint import Checkpoint
from modelpact.audit.handover import KeyChain, follow_handovers, handover_from_entry
from modelpact.audit.tree import leaf_hash as hash_leaf
from modelpact.audit.tree import verify_consistency, verify_inclusion
from modelpact.audit.witness import Witness
from modelpact.crypto import VerifyKey
from modelpact.errors import (
    InvalidInput,
    LogInconsistent,
    ProofInvalid,
    ServerError,
    SignatureInvalid,
    StorageUnavailable,
)
from modelpact.wire import HandoverChain

__all__ = [
    "follow_owner",
    "observe_across",
    "origin_of",
    "trivial_chain",
    "witness_needs_proof",
]


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ServerError(f"the gateway sent {what} that is not base64") from None


def origin_of(note: str) -> str:
    """The origin line of a checkpoint note (unverified: only to name the log)."""
    return note.split("\n", 1)[0]


def trivial_chain(trusted: VerifyKey, origin: str) -> KeyChain:
    """What a client knows before it has seen any handover: the trusted key alone."""
    return KeyChain(origin, (trusted,), ())


def follow_owner(trusted: VerifyKey, document: HandoverChain, origin: str) -> KeyChain:
    """The owner keys ``trusted`` vouches for, from the gateway's handovers and proofs."""
    listed = []
    for item in document.handovers:
        blob = _unb64(item.entry, "a handover entry")
        handover = handover_from_entry(blob)
        if handover is None:
            raise ServerError(f"the gateway sent entry {item.index} as a handover; it is not one")
        listed.append((item.index, handover, blob, [_unb64(h, "a proof hash") for h in item.proof]))
    chain = follow_handovers(trusted, [(i, h) for i, h, _, _ in listed], origin=origin)
    checkpoint = chain.open_checkpoint(document.checkpoint)
    for index, _, blob, proof in listed:
        try:
            verify_inclusion(index, checkpoint.size, hash_leaf(blob), proof, checkpoint.root)
        except ProofInvalid as exc:
            raise ProofInvalid(
                f"the handover at entry {index} is not proved in the log: {exc.summary}"
            ) from None
    return chain


def _witness_of(path: Path, chain: KeyChain) -> tuple[VerifyKey, Checkpoint | None]:
    """Which key of ``chain`` signed the witness state at ``path``, and that state."""
    for key in reversed(chain.keys):
        witness = Witness(path, key, chain.origin, chain.origin)
        try:
            return key, witness.last
        except SignatureInvalid:
            continue
    raise SignatureInvalid(
        f"the witness state {path} is signed by no owner key this partner trusts",
        hint="restore the witness state from a backup",
    )


def witness_needs_proof(path: Path, chain: KeyChain, checkpoint: Checkpoint) -> int | None:
    """The size a consistency proof must start from to move the witness to ``checkpoint``."""
    _, last = _witness_of(path, chain)
    if last is not None and 0 < last.size < checkpoint.size:
        return last.size
    return None


def observe_across(
    path: Path,
    chain: KeyChain,
    note: str,
    checkpoint: Checkpoint,
    proof: Sequence[bytes] | None,
) -> None:
    """Hand ``note`` (already opened as ``checkpoint`` with ``chain``) to the witness.

    When the witness's state was signed by the key in force for the new checkpoint, the
    witness itself checks it.  Otherwise (the owner key changed in between) the same
    checks are made here and the state replaced by the new note.
    """
    key, last = _witness_of(path, chain)
    signer = chain.key_for(checkpoint.size)
    if last is None or key == signer:
        Witness(path, signer, chain.origin, chain.origin).observe(note, proof)
        return
    if checkpoint.size < last.size:
        raise LogInconsistent(
            f"rollback: a checkpoint of size {checkpoint.size} after one of size {last.size}"
        )
    if checkpoint.size == last.size and checkpoint.root != last.root:
        raise LogInconsistent(f"fork: two different roots signed for size {last.size}")
    if 0 < last.size < checkpoint.size:
        if proof is None:
            raise InvalidInput(
                f"a consistency proof from size {last.size} to {checkpoint.size} is needed"
            )
        try:
            verify_consistency(last.size, checkpoint.size, last.root, checkpoint.root, proof)
        except ProofInvalid as exc:
            raise LogInconsistent(
                f"the log grew from size {last.size} to {checkpoint.size} across an owner-key "
                f"handover without a valid consistency proof ({exc.summary})"
            ) from None
    _replace(path, note.encode("utf-8"))


def _replace(path: Path, data: bytes) -> None:
    try:
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StorageUnavailable(f"cannot write the witness state {path}: {exc}") from None
