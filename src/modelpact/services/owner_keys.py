"""The owner's signing-key handover: rotate the key, and say which keys signed this log.

:func:`rotate_owner_key` replaces ``keys/owner-ed25519.pem`` by a new key, in steps that
are each safe to interrupt (running it again finishes what was started):

1. the new key is written to ``keys/owner-ed25519.next.pem`` (0600), and the handover,
   signed by the old and the new key (:mod:`modelpact.audit.handover`), to
   ``keys/owner-handover.pending.json`` with the log's size at that moment, after a
   checkpoint by the old key closes its era;
2. ``keys/owner-ed25519.pub`` is replaced by the new key: from now until step 5 the
   workspace does not open (its ``.pub`` and its private key differ), so no other
   process signs a checkpoint with the old key over the handover;
3. the handover is appended to the log (unless a previous run did: the entries since the
   recorded size are searched), and this process signs with the new key only;
4. the handover is added to ``keys/owner-handovers.json``, the workspace's index of its
   handovers (each with its log index; every read of the index checks each handover
   against the entry at its index);
5. the new key file is renamed over the old one (the old private key file is gone);
6. the pending file is removed and a checkpoint by the new key is signed.

After an interruption in steps 2-5, :func:`finish_key_swap` (the CLI runs it before
opening the workspace) renames the new key into place so the workspace opens, and
:func:`rotate_owner_key` then appends the handover if it is not in the log yet.

Stop the gateway before rotating and start it again after: a running gateway holds the
key it started with, and any checkpoint it signed after the handover would (rightly) be
refused by every verifier.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpact.audit.handover import (
    KeyChain,
    SignedHandover,
    follow_handovers,
    handover_entry,
    handover_from_entry,
    sign_handover,
)
from modelpact.audit.log import append_within
from modelpact.audit.tree import inclusion_proof
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import InvalidInput, ModelpactError, NotFound, StorageUnavailable, Tampered
from modelpact.services.workspace import OWNER_KEY, OWNER_PUB, Workspace
from modelpact.store import CheckpointRecord

__all__ = [
    "HANDOVERS_FILE",
    "NEXT_KEY",
    "PENDING_FILE",
    "HandoverProof",
    "OwnerRotation",
    "finish_key_swap",
    "handover_evidence",
    "handover_proofs",
    "is_owner_key",
    "owner_key_chain",
    "rotate_owner_key",
]

NEXT_KEY = "keys/owner-ed25519.next.pem"
PENDING_FILE = "keys/owner-handover.pending.json"
HANDOVERS_FILE = "keys/owner-handovers.json"
_INDEX_FORMAT = "modelpact-owner-handovers/v1"
_PENDING_FORMAT = "modelpact-owner-handover-pending/v1"
_MAX_INDEX = 1 << 20


@dataclass(frozen=True, slots=True)
class OwnerRotation:
    """What :func:`rotate_owner_key` did: the keys, the handover's log index, the checkpoint."""

    old_key: VerifyKey
    new_key: VerifyKey
    index: int
    checkpoint: CheckpointRecord
    resumed: bool


@dataclass(frozen=True, slots=True)
class HandoverProof:
    """A handover entry's stored bytes, where it is, and its inclusion proof in ``size``."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]


def _replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to a temporary file, fsync, and rename it over ``path`` (atomic)."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_json(path: Path, what: str) -> object | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_INDEX:
        raise InvalidInput(f"{path} is larger than {_MAX_INDEX} bytes")
    try:
        document: object = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise Tampered(f"{path} is not the JSON {what} modelpact wrote") from None
    return document


def finish_key_swap(root: Path) -> bool:
    """Complete a rotation interrupted between its two renames; True when it did.

    Only files move here: the next key replaces the private key when the ``.pub``
    file already names it (the handover is in the log by then).
    """
    root = root.expanduser().absolute()
    next_path = root / NEXT_KEY
    if not next_path.exists():
        return False
    try:
        published = (root / OWNER_PUB).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    if published != SigningKey.load(next_path).verify_key.encode():
        return False
    try:
        os.replace(next_path, root / OWNER_KEY)
        _fsync_folder(root / "keys")
    except OSError as exc:
        raise StorageUnavailable(f"cannot replace the owner key: {exc.strerror}") from None
    return True


# -- the index of handovers ---------------------------------------------------------------


def _listed(ws: Workspace) -> list[tuple[int, SignedHandover]]:
    path = ws.root / HANDOVERS_FILE
    document = _read_json(path, "index of owner-key handovers")
    if document is None:
        return []
    if (
        not isinstance(document, dict)
        or document.get("format") != _INDEX_FORMAT
        or not isinstance(document.get("handovers"), list)
    ):
        raise Tampered(f"{path} is not an index of owner-key handovers")
    listed = []
    for item in document["handovers"]:
        if not isinstance(item, dict) or type(item.get("index")) is not int:
            raise Tampered(f"{path} lists a handover without its log index")
        listed.append((item["index"], SignedHandover.from_document(item.get("handover"))))
    return listed


def _write_index(ws: Workspace, listed: Sequence[tuple[int, SignedHandover]]) -> None:
    document = {
        "format": _INDEX_FORMAT,
        "origin": ws.log_origin,
        "handovers": [{"index": i, "handover": h.to_document()} for i, h in listed],
    }
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    _replace_file(ws.root / HANDOVERS_FILE, text.encode("ascii"), mode=0o644)


def owner_key_chain(ws: Workspace, *, against_log: bool = True) -> KeyChain:
    """Every owner key that signed this workspace's log, in order, checked against the log.

    Each handover the index lists must be the entry at its log index (unless
    ``against_log`` is False: the signatures alone, each handover signed by its
    successor up to the key held now, say which keys were this workspace's); the chain
    must verify (:func:`~modelpact.audit.handover.follow_handovers`) and end at the key
    the workspace holds now.  Anything else raises :class:`Tampered`.
    """
    listed = _listed(ws)
    current = ws.owner_verify_key
    if listed and against_log:
        with ws.store.unit_of_work(read_only=True) as uow:
            for index, handover in listed:
                try:
                    stored = handover_from_entry(uow.audit.entry(index).entry)
                except (NotFound, InvalidInput):
                    stored = None
                if stored != handover:
                    raise Tampered(
                        f"{ws.root / HANDOVERS_FILE} lists a handover at entry {index} "
                        "that the audit log does not hold",
                        hint="restore the workspace's keys folder and database from one backup",
                    )
    chain = follow_handovers(current, listed, origin=ws.log_origin)
    if chain.current != current:
        raise Tampered(
            "the owner key in use is not the last one the workspace's handovers name",
            hint="a gateway started before a rotation must be restarted; an interrupted "
            "rotation is finished by 'modelpact keys rotate-owner'",
        )
    return chain


def is_owner_key(ws: Workspace, key: VerifyKey) -> bool:
    """Whether ``key`` is this workspace's owner key now or was before a handover.

    Charters signed by an earlier owner key stay valid after a rotation; new ones are
    signed by the current key.
    """
    if key == ws.owner_verify_key:
        return True
    try:  # no database read: callers may hold a unit of work
        return key in owner_key_chain(ws, against_log=False)
    except ModelpactError:
        return False  # fail closed: a chain that does not check vouches for no old key


def handover_proofs(ws: Workspace, size: int) -> list[HandoverProof]:
    """The handovers in the first ``size`` entries, each with its inclusion proof there."""
    chain = owner_key_chain(ws)
    proofs = []
    with ws.store.unit_of_work(read_only=True) as uow:
        for index in chain.boundaries:
            if index >= size:
                break
            entry = uow.audit.entry(index).entry
            proofs.append(
                HandoverProof(index, entry, tuple(inclusion_proof(index, size, uow.audit)))
            )
    return proofs


def handover_evidence(ws: Workspace, size: int) -> dict[str, list[dict[str, object]]]:
    """``{"handovers": [...]}`` for a document proved against the checkpoint of ``size``
    (each handover's index, base64 entry and inclusion proof); ``{}`` when there are none.

    An exit report carries it, so a partner who knows only its charter's owner key can
    follow the handovers to the key that signed the report.
    """
    proofs = handover_proofs(ws, size)
    if not proofs:
        return {}
    return {
        "handovers": [
            {
                "index": p.index,
                "entry": base64.b64encode(p.entry).decode("ascii"),
                "proof": [base64.b64encode(h).decode("ascii") for h in p.proof],
            }
            for p in proofs
        ]
    }


# -- rotating -------------------------------------------------------------------------------


def _load_pending(ws: Workspace) -> tuple[int, SignedHandover] | None:
    path = ws.root / PENDING_FILE
    document = _read_json(path, "pending handover")
    if document is None:
        return None
    if (
        not isinstance(document, dict)
        or document.get("format") != _PENDING_FORMAT
        or type(document.get("from_size")) is not int
    ):
        raise Tampered(f"{path} is not a pending owner-key handover")
    return document["from_size"], SignedHandover.from_document(document.get("handover"))


def _save_pending(ws: Workspace, from_size: int, handover: SignedHandover) -> None:
    document = {
        "format": _PENDING_FORMAT,
        "from_size": from_size,
        "handover": handover.to_document(),
    }
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    _replace_file(ws.root / PENDING_FILE, text.encode("ascii"), mode=0o600)


def _append_once(ws: Workspace, from_size: int, handover: SignedHandover) -> int:
    """The log index of ``handover``: found among the entries since ``from_size``, or
    appended now."""
    with ws.store.unit_of_work() as uow:
        size = uow.audit.size()
        for record in uow.audit.entries(min(from_size, size), size):
            with contextlib.suppress(InvalidInput):
                if handover_from_entry(record.entry) == handover:
                    return record.idx
        now = ws.clock()
        return append_within(uow, [handover_entry(handover, time=now)], now=now)[0].index


def _hold_key(ws: Workspace, key: SigningKey) -> None:
    # The workspace caches its owner key.  From the moment the handover is in the log,
    # this process signs with the new key only: a checkpoint by the old key of a tree
    # holding its handover would be refused by every verifier.
    ws.use_owner_key(key)


def rotate_owner_key(ws: Workspace) -> OwnerRotation:
    """Hand the log over to a new owner key (or finish a handover that was interrupted)."""
    root = ws.root
    next_path = root / NEXT_KEY
    pending = _load_pending(ws)
    current = ws.owner_key()
    resumed = pending is not None or next_path.exists()
    if pending is not None and pending[1].statement.new_key == current.verify_key:
        from_size, handover = pending  # the key files were swapped; the rest is left
        new = current
    else:
        if next_path.exists():
            new = SigningKey.load(next_path)
        else:
            new = SigningKey.generate()
            new.save(next_path)
        if pending is not None:
            from_size, handover = pending
            statement = handover.statement
            if statement.old_key != current.verify_key or statement.new_key != new.verify_key:
                raise Tampered(
                    f"{root / PENDING_FILE} hands over between other keys than this "
                    "workspace's key and its next key",
                    hint="restore the keys folder from a backup",
                )
        else:
            ws.checkpoint()  # the old key's last tree head, before the handover
            with ws.store.unit_of_work(read_only=True) as uow:
                from_size = uow.audit.size()
            handover = sign_handover(current, new, origin=ws.log_origin, time=ws.clock())
            _save_pending(ws, from_size, handover)
        # From here until the new key replaces the old one, the workspace does not open
        # (its .pub names the new key): no other process signs with the old key.
        published = (new.verify_key.encode() + "\n").encode("ascii")
        _replace_file(root / OWNER_PUB, published, mode=0o644)
    handover.verify()
    index = _append_once(ws, from_size, handover)
    _hold_key(ws, new)
    listed = _listed(ws)
    if all(i != index for i, _ in listed):
        _write_index(ws, [*listed, (index, handover)])
    finish_key_swap(root)  # the new key file replaces the old (whose file is then gone)
    if SigningKey.load(root / OWNER_KEY).verify_key != new.verify_key:
        raise Tampered("the owner key on disk is not the one the handover names")
    (root / PENDING_FILE).unlink(missing_ok=True)
    checkpoint = ws.checkpoint()
    return OwnerRotation(handover.statement.old_key, new.verify_key, index, checkpoint, resumed)
