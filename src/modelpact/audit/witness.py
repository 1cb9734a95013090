"""A witness: remembers the log's last checkpoint and refuses any that contradicts it.

Why it exists: a signed log can still lie by showing different histories to
different people (a fork) or by going back in time (a rollback).  A witness,
run by a partner or an auditor, keeps the last checkpoint it accepted and takes
a newer one only with a consistency proof from it; so a log that forks must
sign two checkpoints that cannot both be true, and the witness keeps them.

Trust on first use: with no state yet, the first checkpoint whose signature
verifies is accepted as is.  Start a witness from a checkpoint obtained out of
band (or early in the log's life) to narrow that window.

Files, both beside each other:

- ``state_path``: the last accepted signed note, replaced atomically (write a
  temporary file, fsync, rename), and never replaced by a refused note;
- ``<state_path>.evidence.jsonl``: one JSON line per refusal, appended and
  fsynced, ``{"reason", "origin", "notes"}`` with every signed note involved.

Refusals raise :class:`~modelpact.errors.LogInconsistent` with the signed notes
as ``evidence``.  Two roots for one size are proof of a fork by themselves.  A
smaller size or a failing consistency proof is grounds to refuse but weaker
evidence: an old checkpoint can be replayed by anyone, and the proof is not
signed, so a broken relay can produce a bad one.  Ask the log for a fresh proof
between the two checkpoints; if none verifies, the log forked.

One process per state file: the witness does not lock it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from modelpact.audit.checkpoint import Checkpoint, open_checkpoint
from modelpact.audit.note import key_id
from modelpact.audit.tree import EMPTY_ROOT, verify_consistency
from modelpact.crypto import VerifyKey
from modelpact.errors import (
    InvalidInput,
    LogInconsistent,
    ProofInvalid,
    SignatureInvalid,
    StorageUnavailable,
)

__all__ = ["Witness", "write_atomically"]

_STATE_HINT = (
    "restore the witness state from a backup; deleting it makes the witness trust "
    "the next checkpoint blindly"
)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves the old or the new file, whole."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


class Witness:
    """Follows one log (``origin``, signed by ``key`` under the key name ``name``)."""

    __slots__ = ("_key", "_name", "_origin", "_state_path")

    def __init__(self, state_path: Path, key: VerifyKey, name: str, origin: str) -> None:
        key_id(name, key)  # refuses an invalid key name now rather than at first use
        Checkpoint(origin, 0, EMPTY_ROOT)  # refuses an invalid origin the same way
        self._state_path = state_path
        self._key = key
        self._name = name
        self._origin = origin

    @property
    def state_path(self) -> Path:
        """Where the last accepted signed note is kept."""
        return self._state_path

    @property
    def evidence_path(self) -> Path:
        """Where refused checkpoints are kept, with the accepted one they contradict."""
        return self._state_path.with_name(self._state_path.name + ".evidence.jsonl")

    @property
    def last(self) -> Checkpoint | None:
        """The last accepted checkpoint (re-verified from the state file), or ``None``."""
        stored = self._load()
        return stored[1] if stored else None

    def observe(self, note_text: str, proof: Sequence[bytes] | None = None) -> Checkpoint:
        """Accept the signed checkpoint ``note_text`` if it is consistent with the last one.

        ``proof`` is the consistency proof from the last accepted size to the new
        one (:func:`~modelpact.audit.tree.consistency_proof`); it is needed only
        when the log grew from a non-empty tree.  Returns the checkpoint.

        Raises :class:`SignatureInvalid` or :class:`InvalidInput` for a note that
        does not verify or is not for this log, :class:`InvalidInput` when a
        needed proof is missing, and :class:`LogInconsistent` (keeping the
        evidence) for a rollback, a fork or a failing proof.  The state changes
        only when the checkpoint is accepted.
        """
        checkpoint = open_checkpoint(note_text, self._key, name=self._name, origin=self._origin)
        stored = self._load()
        if checkpoint.size == 0 and checkpoint.root != EMPTY_ROOT:
            earlier = (stored[0],) if stored is not None else ()
            self._refuse(
                "the log signed a root other than the empty tree's for size 0",
                *earlier,
                note_text,
            )
        if stored is None:  # trust on first use
            self._store(note_text)
            return checkpoint
        accepted_note, accepted = stored
        if checkpoint.size < accepted.size:
            self._refuse(
                f"rollback: a checkpoint of size {checkpoint.size} after one of size "
                f"{accepted.size}",
                accepted_note,
                note_text,
            )
        if checkpoint.size == accepted.size:
            if checkpoint.root != accepted.root:
                self._refuse(
                    f"fork: two different roots signed for size {accepted.size}",
                    accepted_note,
                    note_text,
                )
            return checkpoint  # the same tree head: the accepted note stays
        if accepted.size > 0:  # the empty tree is a prefix of every tree
            if proof is None:
                raise InvalidInput(
                    f"a consistency proof from size {accepted.size} to {checkpoint.size} is needed",
                    hint="ask the log for the consistency proof between the two sizes",
                )
            try:
                verify_consistency(
                    accepted.size, checkpoint.size, accepted.root, checkpoint.root, proof
                )
            except ProofInvalid as exc:
                self._refuse(
                    f"the log grew from size {accepted.size} to {checkpoint.size} without "
                    f"a valid consistency proof ({exc.summary})",
                    accepted_note,
                    note_text,
                )
        self._store(note_text)
        return checkpoint

    def _load(self) -> tuple[str, Checkpoint] | None:
        path = self._state_path
        try:
            note = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise InvalidInput(f"the witness state {path} is not UTF-8", hint=_STATE_HINT) from None
        except OSError as exc:
            raise StorageUnavailable(f"cannot read the witness state {path}: {exc}") from None
        try:
            checkpoint = open_checkpoint(note, self._key, name=self._name, origin=self._origin)
        except SignatureInvalid as exc:
            raise SignatureInvalid(
                f"the witness state {path} does not verify: {exc.summary}", hint=_STATE_HINT
            ) from None
        except InvalidInput as exc:
            raise InvalidInput(
                f"the witness state {path} is not a checkpoint of this log: {exc.summary}",
                hint=_STATE_HINT,
            ) from None
        return note, checkpoint

    def _store(self, note: str) -> None:
        try:
            write_atomically(self._state_path, note.encode("utf-8"))
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot write the witness state {self._state_path}: {exc}"
            ) from None

    def _refuse(self, reason: str, *notes: str) -> NoReturn:
        """Keep ``notes`` in the evidence file, then raise :class:`LogInconsistent`."""
        record = {"reason": reason, "origin": self._origin, "notes": list(notes)}
        line = (json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        hint = f"the signed checkpoints are kept in {self.evidence_path}; give them to an auditor"
        try:
            fd = os.open(self.evidence_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                written = 0
                while written < len(line):
                    written += os.write(fd, line[written:])
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            # The refusal matters more than the file: raise it anyway, with the notes.
            hint = (
                f"the evidence could not be written to {self.evidence_path} ({exc.strerror}); "
                "keep the notes carried by this error"
            )
        raise LogInconsistent(reason, evidence=notes, hint=hint)
