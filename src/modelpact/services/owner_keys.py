"""The owner's signing-key handover: rotate the key, and say which keys signed this log.

:func:`rotate_owner_key` replaces ``keys/owner-ed25519.pem`` by a new key, in steps that
are each safe to interrupt (running it again finishes what was started).  The whole run
holds ``keys/owner-rotation.lock`` (``flock``): a second rotation of the same workspace
fails at once ("another owner-key rotation is running") instead of signing a second
handover from the same key, which would fork the chain for good (the log is append-only).

1. the new key is written to ``keys/owner-ed25519.next.pem`` (0600), and the handover,
   signed by the old and the new key (:mod:`modelpact.audit.handover`), to
   ``keys/owner-handover.pending.json`` with the log's size at that moment, after a
   checkpoint by the old key closes its era;
2. ``keys/owner-ed25519.pub`` is replaced by the new key: from now until step 5 the
   workspace does not open (its ``.pub`` and its private key differ), so no other
   process signs a checkpoint with the old key over the handover, nor with the new key
   before it;
3. the handover is appended to the log (unless a previous run did: the entries since the
   current key's era began are searched, under the log's append lock; a *different*
   handover from the same key there is refused with :class:`AlreadyExists`, in case
   two machines share the database), and this process signs with the new key only;
4. the handover is added to ``keys/owner-handovers.json``, the workspace's index of its
   handovers (each with its log index; every read of the index checks each handover
   against the entry at its index);
5. the new key file is renamed over the old one (the old private key file is gone);
6. the pending file is removed and a checkpoint by the new key is signed.

The new key is put in place (step 5) only once the handover is in the log: a process
that loads it (a running gateway's :meth:`Workspace.signing_key`) may sign any tree it
sees, and the new key may sign only trees that hold its handover.  After an interruption
in steps 2-5 the workspace does not open, so :func:`finish_key_swap` (the CLI runs it
before opening the workspace) opens the database alone, appends the pending handover if
it is not there yet (it carries both signatures: nothing is signed), and only then
renames the new key into place; :func:`rotate_owner_key` then finishes the rest.

Stop the gateway before rotating and start it again after: a running gateway holds the
key it started with, and any checkpoint it signed after the handover would (rightly) be
refused by every verifier.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator, Sequence
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
from modelpact.errors import (
    AlreadyExists,
    InvalidInput,
    ModelpactError,
    NotFound,
    StorageUnavailable,
    Tampered,
)
from modelpact.services.clock import Clock, system_clock
from modelpact.services.workspace import (
    OWNER_KEY,
    OWNER_PUB,
    Workspace,
    open_during_handover,
)
from modelpact.store import CheckpointRecord, UnitOfWork

__all__ = [
    "HANDOVERS_FILE",
    "NEXT_KEY",
    "PENDING_FILE",
    "ROTATION_LOCK",
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
ROTATION_LOCK = "keys/owner-rotation.lock"
_INDEX_FORMAT = "modelpact-owner-handovers/v1"
_PENDING_FORMAT = "modelpact-owner-handover-pending/v1"
_MAX_INDEX = 1 << 20
_SCAN = 4096  # entries read at a time while looking for handovers


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


@contextlib.contextmanager
def _rotation_lock(root: Path) -> Iterator[None]:
    """Hold ``keys/owner-rotation.lock`` (0600, ``flock``) or fail at once.

    Not re-entrant: a second holder, even in this process, is refused.  The file is
    never removed (removing a lock file lets two holders lock two different files).
    """
    path = root / ROTATION_LOCK
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise StorageUnavailable(f"cannot open {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StorageUnavailable(
                "another owner-key rotation is running",
                hint=f"let it finish ({path} is locked); run 'modelpact keys rotate-owner' "
                "again only if it was cut short",
            ) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot lock {path}: {exc.strerror}") from None
        yield
    finally:
        os.close(fd)  # releases the lock


def finish_key_swap(root: Path, *, clock: Clock = system_clock) -> bool:
    """Complete a rotation interrupted after it replaced the ``.pub``; True when it did.

    While the ``.pub`` names the next key and the private key is still the old one, the
    workspace does not open.  This opens the database alone, appends the pending
    handover if it is not in the log yet (it carries both signatures; nothing is signed
    here), and only then renames the next key over the old one: the new key never
    comes into use before its handover is logged.  Run it before opening the workspace;
    :func:`rotate_owner_key` finishes the rest.
    """
    root = root.expanduser().absolute()
    if not (root / NEXT_KEY).exists():
        return False  # no rotation under way (one starting now takes the lock itself)
    with _rotation_lock(root):
        return _finish_key_swap(root, clock)


def _finish_key_swap(root: Path, clock: Clock) -> bool:
    next_path = root / NEXT_KEY
    if not next_path.exists():
        return False
    try:
        published = (root / OWNER_PUB).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    new = SigningKey.load(next_path).verify_key
    if published != new.encode():
        return False  # the .pub still names the old key: the workspace opens as it is
    pending = _load_pending(root)
    if pending is None:
        raise Tampered(
            f"{root / OWNER_PUB} names the next owner key but no handover to it is pending",
            hint="restore the keys folder from a backup",
        )
    from_size, handover = pending
    old = SigningKey.load(root / OWNER_KEY).verify_key
    if handover.statement.old_key != old or handover.statement.new_key != new:
        raise Tampered(
            f"{root / PENDING_FILE} hands over between other keys than this workspace's "
            "key and its next key",
            hint="restore the keys folder from a backup",
        )
    handover.verify()
    ws = open_during_handover(root, clock=clock)
    try:
        _append_once(ws, from_size, handover)
    finally:
        ws.store.close()  # not ws.close(): nothing is signed with either key here
    _swap_keys(root)
    return True


def _swap_keys(root: Path) -> None:
    """Rename the next key over the private key, when the ``.pub`` already names it.

    Called only once the handover is in the log.
    """
    next_path = root / NEXT_KEY
    if not next_path.exists():
        return
    try:
        published = (root / OWNER_PUB).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        raise StorageUnavailable(f"cannot read {root / OWNER_PUB}") from None
    if published != SigningKey.load(next_path).verify_key.encode():
        return
    try:
        os.replace(next_path, root / OWNER_KEY)
        _fsync_folder(root / "keys")
    except OSError as exc:
        raise StorageUnavailable(f"cannot replace the owner key: {exc.strerror}") from None


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
    in force now (:meth:`Workspace.signing_key`: a rotation another process finished is
    followed; :class:`StorageUnavailable` while one is under way).  Anything else raises
    :class:`Tampered`.
    """
    listed = _listed(ws)
    current = _key_in_force(ws)
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


def _key_in_force(ws: Workspace) -> VerifyKey:
    # Re-reads the .pub: a process opened before a rotation finished elsewhere loads the
    # new key (mid-rotation, StorageUnavailable) rather than calling its index tampered.
    return ws.signing_key().verify_key


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


def _load_pending(root: Path) -> tuple[int, SignedHandover] | None:
    path = root / PENDING_FILE
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


def _logged(uow: UnitOfWork, start: int, stop: int, handover: SignedHandover) -> int | None:
    """The index of ``handover`` among the entries ``[start, stop)``, or None.

    A different handover from the same old key there is refused: two handovers from
    one key fork the chain, and every verifier would refuse both for good.
    """
    old_key = handover.statement.old_key
    for first in range(start, stop, _SCAN):
        for record in uow.audit.entries(first, min(first + _SCAN, stop)):
            try:
                logged = handover_from_entry(record.entry)
            except InvalidInput:
                continue
            if logged is None or logged.statement.old_key != old_key:
                continue
            if logged == handover:
                return record.idx
            raise AlreadyExists(
                f"the audit log already hands owner key {old_key.encode()} over to "
                f"{logged.statement.new_key.encode()} (entry {record.idx}); this "
                "rotation's handover is not appended",
                hint="another rotation ran against this database: use the keys folder of "
                f"the run that made entry {record.idx}; {NEXT_KEY} here is not the owner key",
            )
    return None


def _append_once(ws: Workspace, from_size: int, handover: SignedHandover) -> int:
    """The log index of ``handover``: found in the log, or appended now.

    The entries since the old key's era began (after the handover to it that the index
    lists, else from the first; at the latest from ``from_size``) are searched; those
    appended since the first look are searched again under the append lock, so the
    search and the append are one step for every other appender.
    """
    era = [i + 1 for i, h in _listed(ws) if h.statement.new_key == handover.statement.old_key]
    start = min(from_size, era[-1] if era else 0)
    with ws.store.unit_of_work(read_only=True) as uow:
        seen = uow.audit.size()
        found = _logged(uow, min(start, seen), seen, handover)
    if found is not None:
        return found
    with ws.store.unit_of_work() as uow:
        uow.audit.lock_for_append()  # two rotations sharing a database: one goes first
        size = uow.audit.size()
        found = _logged(uow, min(seen, size), size, handover)
        if found is not None:
            return found
        now = ws.clock()
        return append_within(uow, [handover_entry(handover, time=now)], now=now)[0].index


def _hold_key(ws: Workspace, key: SigningKey) -> None:
    # The workspace caches its owner key.  From the moment the handover is in the log,
    # this process signs with the new key only: a checkpoint by the old key of a tree
    # holding its handover would be refused by every verifier.
    ws.use_owner_key(key)


def rotate_owner_key(ws: Workspace) -> OwnerRotation:
    """Hand the log over to a new owner key (or finish a handover that was interrupted).

    :class:`StorageUnavailable` at once if another rotation of the workspace is running.
    """
    with _rotation_lock(ws.root):
        return _rotate(ws)


def _rotate(ws: Workspace) -> OwnerRotation:
    root = ws.root
    next_path = root / NEXT_KEY
    pending = _load_pending(root)
    try:
        current = ws.signing_key()  # re-reads the .pub: a rotation finished elsewhere is seen
    except StorageUnavailable:
        current = ws.owner_key()  # the .pub names the next key: resumed below
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
    _swap_keys(root)  # only now, the handover logged: the new key file replaces the old
    if SigningKey.load(root / OWNER_KEY).verify_key != new.verify_key:
        raise Tampered("the owner key on disk is not the one the handover names")
    (root / PENDING_FILE).unlink(missing_ok=True)
    checkpoint = ws.checkpoint()
    return OwnerRotation(handover.statement.old_key, new.verify_key, index, checkpoint, resumed)
