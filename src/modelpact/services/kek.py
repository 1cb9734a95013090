"""The workspace's key-encryption keys as its files say now, every wrap counted.

Outside a rotation ``keys/kek.key`` holds the one KEK.  During one (see
:mod:`modelpact.services.kek_rotation`) ``keys/kek.next.key`` holds the new KEK too: new
wraps go under it at once, unwraps try it first, then the old one.  A long-running process
(the gateway) follows a rotation another process started or finished: before each wrap it
looks whether the files changed (two ``stat`` calls; wraps are rare), and when an unwrap
fails it reads them again once and retries.

*The KEK lock.*  A writer that stores what it wraps does both inside
:meth:`WorkspaceKek.wrapping`, which holds a shared ``flock`` on ``keys/kek.lock`` from
before it looks at the files until its write is durable (a commit, a flushed blob).  A
rotation takes the lock exclusive once the new KEK is on disk
(:meth:`WorkspaceKek.await_writers`): every writer that could have wrapped under the old
KEK has stored its wrap by then, where the rotation's passes find it, and every later one
finds the new KEK.  A writer takes the lock before the database transaction that stores
its wrap, so it never waits for the lock holding a database lock; the rotation holds it
exclusive for an instant only, holding nothing else a writer needs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from modelpact.crypto import DataKey, KeyEncryptionKey, KeyRing
from modelpact.errors import ModelpactError, NotFound, StorageUnavailable, Tampered
from modelpact.services.key_budget import USAGE_PREFIX, EncryptionBudget

__all__ = [
    "KEK_FILE",
    "KEK_LOCK_FILE",
    "LOCK_TIMEOUT",
    "NEXT_KEK_FILE",
    "RewrapTally",
    "Tick",
    "WorkspaceKek",
    "Wrap",
    "file_lock",
    "kek_counter",
    "uncounted_start",
]

KEK_FILE = "keys/kek.key"
NEXT_KEK_FILE = "keys/kek.next.key"
#: Held shared by each writer from its wrap until its write is durable, exclusive by a
#: rotation for a moment (see the module's text).  Empty; made 0600 on first use.
KEK_LOCK_FILE = "keys/kek.lock"
#: Seconds a writer waits for the KEK lock, and a rotation for the writers, before failing.
LOCK_TIMEOUT = 30.0
#: The legacy KEK's id: a key file from before ids (and counters) existed.
_LEGACY = "legacy"

_Signature = tuple[tuple[int, int, int] | None, ...]
#: Called after each item a rotation handled (progress, and the test's pacing hook).
Tick = Callable[[], None]
#: Wraps a data key under the newest KEK (what :meth:`WorkspaceKek.wrapping` yields).
Wrap = Callable[[DataKey, bytes], bytes]


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


@contextlib.contextmanager
def file_lock(
    path: Path, *, exclusive: bool, timeout: float, busy: Callable[[], ModelpactError]
) -> Iterator[None]:
    """Hold an ``flock`` on ``path`` (made 0600 if missing) until the block ends; raise
    ``busy()`` if it is not free within ``timeout`` seconds (0: one try).

    A lock dies with its process, so a killed holder never leaves it taken.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise StorageUnavailable(f"cannot open the lock file {path}: {exc.strerror}") from None
    try:
        operation = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        pause = 0.005
        while True:
            try:
                fcntl.flock(fd, operation)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy() from None
                time.sleep(pause)
                pause = min(0.05, pause * 2)
        yield
    finally:
        os.close(fd)  # releases the lock


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

    def __init__(
        self, root: Path, budget: EncryptionBudget, *, lock_timeout: float = LOCK_TIMEOUT
    ) -> None:
        self._paths = (root / NEXT_KEK_FILE, root / KEK_FILE)
        self._lock_path = root / KEK_LOCK_FILE
        self.lock_timeout = lock_timeout
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

    @contextlib.contextmanager
    def wrapping(self) -> Iterator[Wrap]:
        """Wrap under the newest KEK and hold the KEK lock (shared) until the block ends.

        Store what was wrapped inside the block, durably (commit the unit of work, put the
        blob), and enter it before any unit of work that stores it: a rotation waits for
        the block to end before it checks that nothing is left under the old KEK, so a
        wrap stored after the block would be lost with that key.  Raises
        :class:`~modelpact.errors.StorageUnavailable` if the lock is not free within
        :attr:`lock_timeout` seconds (a rotation holds it exclusive only for a moment).
        """

        def busy() -> StorageUnavailable:
            return StorageUnavailable(
                f"the key-encryption key lock {self._lock_path} stayed taken for "
                f"{self.lock_timeout:g} s",
                hint="a KEK rotation may be stuck: look for a running "
                "'modelpact keys rotate-kek', then retry",
            )

        with file_lock(self._lock_path, exclusive=False, timeout=self.lock_timeout, busy=busy):
            yield self.wrap

    def await_writers(self, timeout: float | None = None) -> None:
        """Take the KEK lock exclusive, then let it go: every writer inside
        :meth:`wrapping` when this was called has stored its wrap (for a rotation, once the
        new KEK is on disk).  :class:`~modelpact.errors.StorageUnavailable` after
        ``timeout`` seconds (default :attr:`lock_timeout`)."""
        limit = self.lock_timeout if timeout is None else timeout

        def busy() -> StorageUnavailable:
            return StorageUnavailable(
                f"writers kept the key-encryption key lock {self._lock_path} for {limit:g} s",
                hint="run 'modelpact keys rotate-kek' again when the workspace is quieter; "
                "it goes on where it stopped",
            )

        with file_lock(self._lock_path, exclusive=True, timeout=limit, busy=busy):
            pass

    def wrap(self, data_key: DataKey, associated_data: bytes) -> bytes:
        """``data_key`` wrapped under the newest KEK; :class:`KeyExhausted` past its limit.

        To store the result, wrap inside :meth:`wrapping` instead (a rotation re-wraps
        items already stored, so it calls this directly).
        """
        ring = self.ring()
        newest = ring.newest
        self._budget.spend(kek_counter(newest), start=uncounted_start(newest, self._budget))
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
                keys = self._read_keys()
                break
            except NotFound:  # kek.next.key was moved over kek.key between look and read
                continue
        else:
            keys = self._read_keys()
        if not keys:
            raise NotFound(
                f"no key-encryption key at {self._paths[1]}",
                hint="restore keys/kek.key from a backup",
            )
        return KeyRing(keys)

    def _read_keys(self) -> list[KeyEncryptionKey]:
        keys: list[KeyEncryptionKey] = []
        for path in self._paths:
            if not os.path.lexists(path):
                continue
            if path == self._paths[0] and _empty(path):
                # Left by a crash of a version that created the file before writing it:
                # nothing was ever wrapped under it.  rotate-kek replaces it.
                continue
            key = KeyEncryptionKey.load(path)
            # Both files hold the new KEK if a rotation's replace landed between the reads
            # (ids are random: one id, one key; "legacy" names any key from before ids).
            if _is_legacy(key) or all(k.key_id != key.key_id for k in keys):
                keys.append(key)
        return keys


def _empty(path: Path) -> bool:
    try:
        return os.lstat(path).st_size == 0
    except FileNotFoundError:
        return False


def _is_legacy(kek: KeyEncryptionKey) -> bool:
    """Whether ``kek`` dates from before key ids, and so from before wraps were counted."""
    return kek.key_id == _LEGACY


def uncounted_start(kek: KeyEncryptionKey, budget: EncryptionBudget) -> int:
    """Where ``kek``'s counter starts if it has none.

    Key ids and counters came in one release, and a KEK's first wrap makes its counter:
    a KEK with an id and no counter has wrapped nothing (0).  A legacy KEK (no id) may
    have wrapped any number of keys before counting began: it starts at ``rotate_at``, so
    ``keys status`` and ``doctor`` ask for a rotation at once.
    """
    return budget.limits.rotate_at if _is_legacy(kek) else 0
