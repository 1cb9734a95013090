"""How many AES-GCM encryptions each long-lived key has made, counted durably and cheaply.

With random 96-bit nonces one key may seal at most 2**32 messages (NIST SP 800-38D,
section 8.3).  Each long-lived key — the KEK (one wrap per data key) and each generation
of a partner's data key (one seal per envelope) — has a counter.  A process reserves
counts in blocks and spends them in memory; a crash loses at most the unspent part of its
block, which only over-counts: safe.

A missing counter never reads as a low count.  A partner key generation is made with its
counter at 0 (:meth:`EncryptionBudget.begin`), so one found without a counter is older than
counting and may have sealed any number of messages: its counter starts at ``rotate_at``
(``start`` in :meth:`EncryptionBudget.spend`).  A KEK's start depends on its id
(:func:`~modelpact.services.kek.uncounted_start`).

The counters are small blobs in the workspace's artifact store, next to the partner keys
they count (``key-usage/kek/<id>``, ``key-usage/partner/<partner>/<charter>/<n>``), each
block one compare-and-set replace.  Not database rows: a key is often used inside a
caller's write transaction (a watermark key sealed while its row is inserted), and on
SQLite a second writer there would wait for the first — itself — forever.

Two thresholds (``[keys]`` in ``modelpact.toml``): past ``rotate_at`` (default 2**31) a
partner key gets a new generation and ``modelpact keys status`` / ``modelpact doctor``
warn about the KEK; past ``limit`` (default 2**32) the key is refused
(:class:`KeyExhausted`): fail closed rather than risk a repeated nonce.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass

from modelpact.crypto import GCM_SEAL_LIMIT
from modelpact.errors import (
    AlreadyExists,
    InvalidInput,
    KeyExhausted,
    NotFound,
    StorageUnavailable,
    Tampered,
)
from modelpact.store import ArtifactStore

__all__ = ["DEFAULT_ROTATE_AT", "USAGE_PREFIX", "EncryptionBudget", "KeyExhausted", "KeyLimits"]

DEFAULT_ROTATE_AT = 2**31
#: Where the counters live in the artifact store.
USAGE_PREFIX = "key-usage"
_MAX_BLOCK = 1024
_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """When a key is due for rotation (``rotate_at``) and when it is refused (``limit``)."""

    rotate_at: int = DEFAULT_ROTATE_AT
    limit: int = GCM_SEAL_LIMIT

    def __post_init__(self) -> None:
        if not 1 <= self.rotate_at < self.limit <= GCM_SEAL_LIMIT:
            raise InvalidInput(
                f"key limits need 1 <= rotate_at < limit <= 2**32 "
                f"(got rotate_at={self.rotate_at}, limit={self.limit})"
            )

    @property
    def block(self) -> int:
        """Counts reserved at a time: small enough that a lost block is noise next to
        ``rotate_at`` (1/1024 of it, at most 1024)."""
        return max(1, min(_MAX_BLOCK, self.rotate_at // 1024))


class EncryptionBudget:
    """Counts encryptions per counter name, in blocks reserved in the artifact store.

    A name is an artifact key under :data:`USAGE_PREFIX`.  Thread-safe.
    """

    def __init__(self, artifacts: ArtifactStore, limits: KeyLimits) -> None:
        self._artifacts = artifacts
        self.limits = limits
        self._lock = threading.Lock()
        self._blocks: dict[str, tuple[int, int]] = {}  # name -> (next number, last reserved)

    def spend(self, name: str, *, start: int = 0) -> int:
        """Count one encryption under counter ``name`` and return its number (1 for the
        first; a number is never handed out twice, though a crash may skip some).

        ``start``: the count to assume if the counter does not exist yet — 0 for a key
        made with its counter (:meth:`begin`) or never used, ``rotate_at`` for a key that
        may have encrypted before counting began (so it is replaced, or warned about, at
        once: an unknown count must not read as a low one).

        Raises :class:`KeyExhausted` past ``limit``: the caller must not encrypt.
        """
        with self._lock:
            number, last = self._blocks.get(name, (1, 0))
            if number > last:
                last = self._reserve(name, self.limits.block, start)
                number = last - self.limits.block + 1
            self._blocks[name] = (number + 1, last)
        if number > self.limits.limit:
            raise KeyExhausted(
                f"key {name.removeprefix(USAGE_PREFIX + '/')} has made {self.limits.limit} "
                "encryptions, its safe limit; it encrypts nothing more"
            )
        return number

    def due(self, number: int) -> bool:
        """Whether encryption ``number`` is one past ``rotate_at``: a key makes
        ``rotate_at`` encryptions, then its successor takes over."""
        return number > self.limits.rotate_at

    def reserved(self) -> dict[str, int]:
        """Every counter's reserved count (an upper bound on its encryptions), by name."""
        found = {}
        for name in self._artifacts.keys(USAGE_PREFIX):
            try:
                found[name] = self._read(name)[1]
            except NotFound:
                continue
        return found

    def begin(self, name: str) -> None:
        """Make counter ``name`` at 0 for a key just made (unless it exists already): its
        absence then means a key older than counting (see ``start`` in :meth:`spend`)."""
        with contextlib.suppress(AlreadyExists):
            self._artifacts.put(name, b"0\n")

    def forget(self, name: str) -> None:
        """Drop a counter: its key is gone."""
        with self._lock:
            self._blocks.pop(name, None)
        with contextlib.suppress(NotFound):
            self._artifacts.delete(name)

    def _reserve(self, name: str, count: int, start: int) -> int:
        for _ in range(_ATTEMPTS):
            try:
                raw, total = self._read(name)
            except NotFound:
                try:
                    self._artifacts.put(name, f"{start + count}\n".encode())
                except AlreadyExists:
                    continue
                return start + count
            if self._artifacts.replace(name, f"{total + count}\n".encode(), expected=raw):
                return total + count
        raise StorageUnavailable(f"the encryption counter {name} keeps changing; retry")

    def _read(self, name: str) -> tuple[bytes, int]:
        raw = self._artifacts.get(name)
        try:
            total = int(raw.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            raise Tampered(
                f"the encryption counter {name} is damaged",
                hint="set it to a count no lower than the truth (when in doubt, rotate the key)",
            ) from None
        if total < 0:
            raise Tampered(f"the encryption counter {name} is damaged")
        return raw, total
