"""The workspace's key-encryption keys as its files say now, every wrap counted.

Outside a rotation ``keys/kek.key`` holds the one KEK.  During one (see
:mod:`modelpact.services.kek_rotation`) ``keys/kek.next.key`` holds the new KEK too: new
wraps go under it at once, unwraps try it first, then the old one.  A long-running process
(the gateway) follows a rotation another process started or finished: before each wrap it
looks whether the files changed (two ``stat`` calls; wraps are rare), and when an unwrap
fails it reads them again once and retries.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modelpact.crypto import DataKey, KeyEncryptionKey, KeyRing
from modelpact.errors import NotFound, Tampered
from modelpact.services.key_budget import USAGE_PREFIX, EncryptionBudget

__all__ = ["KEK_FILE", "NEXT_KEK_FILE", "RewrapTally", "Tick", "WorkspaceKek", "kek_counter"]

KEK_FILE = "keys/kek.key"
NEXT_KEK_FILE = "keys/kek.next.key"

_Signature = tuple[tuple[int, int, int] | None, ...]
#: Called after each item a rotation handled (progress, and the test's pacing hook).
Tick = Callable[[], None]


@dataclass(slots=True)
class RewrapTally:
    """What one pass of a KEK rotation did to one kind of item."""

    rewrapped: int = 0  # wrapped again under the newest KEK
    already: int = 0  # opened under it already: left alone
    raced: int = 0  # changed by someone else between read and write: for the next pass

    def count(self, written: bool) -> None:
        if written:
            self.rewrapped += 1
        else:
            self.raced += 1

    def __iadd__(self, other: RewrapTally) -> RewrapTally:
        self.rewrapped += other.rewrapped
        self.already += other.already
        self.raced += other.raced
        return self


def kek_counter(kek: KeyEncryptionKey) -> str:
    """The name of the KEK's encryption counter."""
    return f"{USAGE_PREFIX}/kek/{kek.key_id}"


def _signature(paths: tuple[Path, ...]) -> _Signature:
    found: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            found.append(None)
        else:
            found.append((st.st_ino, st.st_mtime_ns, st.st_size))
    return tuple(found)


class WorkspaceKek:
    """Wraps with the newest KEK (counting the wrap), unwraps with any the workspace holds."""

    def __init__(self, root: Path, budget: EncryptionBudget) -> None:
        self._paths = (root / NEXT_KEK_FILE, root / KEK_FILE)
        self._budget = budget
        self._lock = threading.Lock()
        self._ring: KeyRing | None = None
        self._seen: _Signature = ()

    def ring(self) -> KeyRing:
        """The KEKs the files hold now, newest first (read again only if they changed)."""
        with self._lock:
            seen = _signature(self._paths)
            if self._ring is None or seen != self._seen:
                self._ring, self._seen = self._load(), seen
            return self._ring

    def reload(self) -> KeyRing:
        """The KEKs read from the files again, whatever was cached."""
        with self._lock:
            self._ring, self._seen = self._load(), _signature(self._paths)
            return self._ring

    @property
    def rotating(self) -> bool:
        """Whether a rotation is under way (``kek.next.key`` exists)."""
        return os.path.lexists(self._paths[0])

    @property
    def key_id(self) -> str:
        return self.ring().newest.key_id

    @property
    def created_at(self) -> datetime | None:
        return self.ring().newest.created_at

    def wrap(self, data_key: DataKey, associated_data: bytes) -> bytes:
        """``data_key`` wrapped under the newest KEK; :class:`KeyExhausted` past its limit."""
        ring = self.ring()
        self._budget.spend(kek_counter(ring.newest))
        return ring.wrap(data_key, associated_data)

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> DataKey:
        try:
            return self._current().unwrap(wrapped, associated_data)
        except Tampered:
            # Another process may have finished a rotation since: read the files once more.
            return self.reload().unwrap(wrapped, associated_data)

    def rewrap(self, wrapped: bytes, associated_data: bytes) -> bytes | None:
        """``wrapped`` under the newest KEK, or None if it is already (for rotations)."""
        ring = self.ring()
        try:
            ring.newest.unwrap(wrapped, associated_data)
        except Tampered:
            return self.wrap(ring.unwrap(wrapped, associated_data), associated_data)
        return None

    def opens_under_newest(self, wrapped: bytes, associated_data: bytes) -> bool:
        try:
            self.ring().newest.unwrap(wrapped, associated_data)
        except Tampered:
            return False
        return True

    def _current(self) -> KeyRing:
        with self._lock:
            ring = self._ring
        return ring if ring is not None else self.ring()

    def _load(self) -> KeyRing:
        for _ in range(3):
            try:
                keys = [KeyEncryptionKey.load(p) for p in self._paths if os.path.lexists(p)]
                break
            except NotFound:  # kek.next.key was moved over kek.key between look and read
                continue
        else:
            keys = [KeyEncryptionKey.load(p) for p in self._paths if os.path.lexists(p)]
        if not keys:
            raise NotFound(
                f"no key-encryption key at {self._paths[1]}",
                hint="restore keys/kek.key from a backup",
            )
        return KeyRing(keys)
