"""The SDK's side of owner-key handovers: follow them, and carry the witness across.

The partner trusts the key its charter names.  When a checkpoint (or an attestation) is
not signed by the key the client knows, it asks the gateway for the handovers
(``GET /v1/log/handovers``) and :func:`follow_owner` checks them: each stored entry is a
handover signed by the key in force and its successor
(:func:`~modelpact.audit.handover.follow_handovers`), the checkpoint sent along is signed
by the key in force for its size, and every handover is proved included in it.

A client only ever moves forward: :func:`require_extension` refuses a chain that does
not extend the one it already follows (fewer handovers, or other ones), so a retired key
(perhaps in other hands) cannot be made current again by leaving its handover out.  A
client with a witness keeps the chain it followed beside the witness state
(:func:`owner_chain_path`, :func:`save_owner_chain`) and re-verifies it from the
charter's key at start (:func:`load_owner_chain`), so this holds across restarts.

The witness keeps the last checkpoint it accepted, signed by the key of its day;
:func:`observe_across` hands it over to the next key after the same checks the witness
makes (no rollback, no fork, a valid consistency proof).  Pure: no I/O but the witness
state file and the owner-chain file beside it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from pathlib import Path

from modelpact.audit.checkpoint import Checkpoint
from modelpact.audit.handover import KeyChain, follow_handovers, handover_from_entry
from modelpact.audit.tree import leaf_hash as hash_leaf
from modelpact.audit.tree import verify_consistency, verify_inclusion
from modelpact.audit.witness import Witness, write_atomically
from modelpact.crypto import VerifyKey
from modelpact.errors import (
    InvalidInput,
    LogInconsistent,
    ModelpactError,
    ProofInvalid,
    ServerError,
    SignatureInvalid,
    StorageUnavailable,
    Tampered,
)
from modelpact.wire import HandoverChain

__all__ = [
    "OWNER_CHAIN_FORMAT",
    "follow_owner",
    "load_owner_chain",
    "observe_across",
    "origin_of",
    "owner_chain_path",
    "require_extension",
    "save_owner_chain",
    "trivial_chain",
    "witness_needs_proof",
]

#: The ``format`` of the owner-chain file kept beside a witness state.
OWNER_CHAIN_FORMAT = "modelpact-owner-chain/v1"
_CHAIN_HINT = (
    "restore it from a backup; deleting it lets this client accept a retired owner key "
    "again until it has followed the handovers anew"
)


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


def require_extension(known: KeyChain, fetched: KeyChain, note: str) -> None:
    """Raise :class:`LogInconsistent` unless ``fetched`` extends ``known``.

    Both chains were followed from the same trusted key.  ``fetched`` extends ``known``
    when it is for the same log and holds every key of ``known`` with the same handover
    boundaries, in the same places, possibly followed by more; a chain with fewer
    handovers (a rollback: a retired key made current again) or other ones (a fork) is
    refused.  ``note`` is the checkpoint the gateway sent the chain with: the evidence.
    """
    if fetched.origin != known.origin:
        raise LogInconsistent(
            f"the gateway's handovers are for the log {fetched.origin}, not {known.origin}",
            evidence=(note,),
        )
    if len(known.keys) == 1:  # nothing retired yet: any chain through the key will do
        if known.current in fetched.keys:
            return
        raise LogInconsistent(
            f"the gateway's handovers do not pass through the owner key {known.current.encode()}",
            evidence=(note,),
        )
    count = len(known.keys)
    if fetched.keys[:count] == known.keys and fetched.boundaries[: count - 1] == known.boundaries:
        return
    if known.keys[: len(fetched.keys)] == fetched.keys and (
        known.boundaries[: len(fetched.boundaries)] == fetched.boundaries
    ):
        raise LogInconsistent(
            f"the gateway's handovers stop at the owner key {fetched.current.encode()}, but "
            f"this client has followed the log on to {known.current.encode()}: a rollback to "
            "a retired key",
            evidence=(note,),
            hint="a retired owner key may be in other hands; keep this evidence and tell the owner",
        )
    raise LogInconsistent(
        "the gateway's handovers differ from those this client followed before: a fork of the "
        "owner keys",
        evidence=(note,),
        hint="keep this evidence and tell the owner",
    )


def owner_chain_path(witness_path: Path) -> Path:
    """Where the owner keys followed are kept, beside the witness state ``witness_path``."""
    return witness_path.with_name(witness_path.name + ".owner-chain.json")


def save_owner_chain(path: Path, origin: str, document: HandoverChain) -> None:
    """Keep the handovers ``document`` proved (as the log holds them) at ``path``."""
    record = {"format": OWNER_CHAIN_FORMAT, "origin": origin} | document.model_dump(mode="json")
    data = json.dumps(record, ensure_ascii=False, sort_keys=True, indent=1) + "\n"
    _replace(path, data.encode("utf-8"), "the owner-key chain")


def load_owner_chain(path: Path, trusted: VerifyKey) -> KeyChain | None:
    """The owner keys kept at ``path``, followed anew from ``trusted``; ``None`` if none.

    The file is never taken on trust: its handovers and proofs go through
    :func:`follow_owner` again, and anything that does not verify raises
    :class:`Tampered`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise Tampered(f"the owner-key chain {path} is not UTF-8", hint=_CHAIN_HINT) from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot read the owner-key chain {path}: {exc}") from None
    try:
        record = json.loads(text)
        if not isinstance(record, dict) or record.get("format") != OWNER_CHAIN_FORMAT:
            raise InvalidInput(f"not a {OWNER_CHAIN_FORMAT} document")
        origin = record.pop("origin", None)
        record.pop("format")
        if not isinstance(origin, str):
            raise InvalidInput("the log's origin is missing")
        document = HandoverChain.model_validate(record)
        return follow_owner(trusted, document, origin)
    except ModelpactError as exc:
        raise Tampered(
            f"the owner-key chain {path} does not verify: {exc.summary}", hint=_CHAIN_HINT
        ) from None
    except ValueError:  # not JSON, or not the shape of a HandoverChain
        raise Tampered(f"the owner-key chain {path} is malformed", hint=_CHAIN_HINT) from None


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
    _replace(path, note.encode("utf-8"), "the witness state")


def _replace(path: Path, data: bytes, what: str) -> None:
    """Replace ``path`` atomically (the witness's own writer); one line naming ``what``."""
    try:
        write_atomically(path, data)
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {what} {path}: {exc}") from None
