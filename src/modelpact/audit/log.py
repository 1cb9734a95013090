"""The audit log over the store: durable appends with group commit, checkpoints, proofs.

An entry is acknowledged only after the transaction holding it has committed
(SQLite WAL with ``synchronous=FULL``, PostgreSQL ``synchronous_commit=on``).
Callers on many threads hand entries to one writer thread, which commits
whatever has queued up in a single transaction: one fsync for many entries.

Fail-stop: when a commit fails (disk full, I/O error, failed fsync) the log
refuses every later entry until the process restarts.  A failed fsync is never
retried, because after one the state of the file is unknown; everything
pending and everything later gets :class:`AuditUnavailable`, so requests that
must be audited fail closed.

Several processes may append to one database: each batch holds the store's
sequencer lock, and the in-memory frontier is reloaded whenever the log grew
under another writer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
from modelpact.audit.entries import AuditEntry, encode_entry
from modelpact.audit.tree import (
    Frontier,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
)
from modelpact.crypto import SigningKey
from modelpact.errors import AlreadyExists, AuditUnavailable, InvalidInput, LogInconsistent
from modelpact.store import AuditAppender, AuditEntryRecord, CheckpointRecord, Store, UnitOfWork

__all__ = ["AuditLog", "Receipt", "append_within", "issue_checkpoint"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an entry landed: its index and leaf hash, checkable against a checkpoint."""

    index: int
    leaf_hash: bytes


def _rows(
    frontier: Frontier, blobs: Sequence[bytes], now: datetime
) -> tuple[list[AuditEntryRecord], list[tuple[int, int, bytes]], list[Receipt]]:
    """The rows that append ``blobs`` at the end of the log; advances ``frontier``."""
    receipts: list[Receipt] = []
    records: list[AuditEntryRecord] = []
    nodes: list[tuple[int, int, bytes]] = []
    for blob in blobs:
        index = frontier.size
        leaf = leaf_hash(blob)
        nodes.extend((level, at, digest) for (level, at), digest in frontier.append(leaf) if level)
        records.append(AuditEntryRecord(idx=index, leaf_hash=leaf, entry=blob, appended_at=now))
        receipts.append(Receipt(index, leaf))
    return records, nodes, receipts


def _write(
    uow: UnitOfWork, frontier: Frontier, blobs: Sequence[bytes], now: datetime
) -> list[Receipt]:
    """Append ``blobs`` at the end of the log inside ``uow``; ``frontier`` must be current."""
    records, nodes, receipts = _rows(frontier, blobs, now)
    uow.audit.append(records, nodes)
    return receipts


def append_within(
    uow: UnitOfWork, entries: Iterable[AuditEntry], *, now: datetime
) -> list[Receipt]:
    """Append in the caller's transaction, so a change and its audit entry commit together.

    Meant for rare, administrative writes: it takes the sequencer lock and loads
    the frontier from the store (O(log n) reads) every time.
    """
    blobs = [encode_entry(entry) for entry in entries]
    if not blobs:
        return []
    uow.audit.lock_for_append()
    frontier = Frontier.load(uow.audit.size(), uow.audit)
    return _write(uow, frontier, blobs, now)


def issue_checkpoint(
    store: Store, *, key: SigningKey, origin: str, now: datetime
) -> CheckpointRecord:
    """Sign and store a checkpoint for the log's current size, or return the one that exists."""
    with store.unit_of_work() as uow:
        size = uow.audit.size()
        latest = uow.audit.latest_checkpoint()
        if latest is not None and latest.size == size:
            return latest
        root = tree_root(size, uow.audit)
        note = sign_checkpoint(Checkpoint(origin=origin, size=size, root=root), key, name=origin)
        record = CheckpointRecord(size=size, root=root, note=note, issued_at=now)
        try:
            uow.audit.add_checkpoint(record)
        except AlreadyExists:  # another process signed this size first
            existing = uow.audit.checkpoint(size)
            if existing.root != root:
                raise LogInconsistent(
                    f"two roots for audit log size {size}: the stored checkpoint disagrees",
                    evidence=(existing.note, note),
                ) from None
            return existing
    return record


class _Stop:
    """Sentinel telling the writer thread to finish."""


class AuditLog:
    """One log per workspace: append, checkpoint, prove.

    ``append`` blocks until the entry is durable and returns its receipt; it is
    safe to call from many threads at once.  Checkpoints are signed by ``key``
    under ``origin`` and issued at least every ``checkpoint_interval`` seconds
    while entries arrive, and on demand.
    """

    #: The longest a batch waits for writers expected back from the previous one (seconds).
    LINGER = 0.001

    def __init__(
        self,
        store: Store,
        *,
        key: SigningKey,
        origin: str,
        clock: Callable[[], datetime],
        max_batch: int = 1024,
        checkpoint_interval: float = 2.0,
    ) -> None:
        self._store = store
        self._key = key
        self._origin = origin
        self._clock = clock
        self._max_batch = max_batch
        self._interval = checkpoint_interval
        self._queue: queue.SimpleQueue[tuple[bytes, Future[Receipt]] | _Stop] = queue.SimpleQueue()
        self._failed: str | None = None
        self._frontier: Frontier | None = None
        self._appender: AuditAppender | None = None  # the writer thread's own connection
        self._last_checkpoint_at = float("-inf")
        self._checkpoint_lock = threading.Lock()
        self._state_lock = threading.Lock()  # submit's check-and-put against close and death
        self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._closed = False
        self._writer.start()

    # -- appending ---------------------------------------------------------------------------

    def append(self, entry: AuditEntry) -> Receipt:
        """Make ``entry`` durable; raise :class:`AuditUnavailable` if it cannot be."""
        return self.submit(entry).result()

    def submit(self, entry: AuditEntry) -> Future[Receipt]:
        """Queue ``entry``; the future resolves once it is durable (for async callers)."""
        future: Future[Receipt] = Future()
        blob = encode_entry(entry)
        with self._state_lock:
            if self._failed is not None:
                future.set_exception(self._unavailable())
            elif self._closed or not self._writer.is_alive():
                future.set_exception(AuditUnavailable("the audit log is closed"))
            else:
                self._queue.put((blob, future))
        return future

    def _unavailable(self) -> AuditUnavailable:
        return AuditUnavailable(
            f"the audit log stopped after a failed write ({self._failed}); nothing is accepted",
            hint="fix the storage, then restart modelpact (a failed fsync is never retried)",
        )

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # the writer must never die silently: fail-stop
            with self._state_lock:
                self._failed = self._failed or f"writer stopped: {type(exc).__name__}: {exc}"[:300]
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._appender is not None:
                self._appender.close()
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """Fail every entry still queued, so no caller waits on a writer that is gone."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if not isinstance(item, _Stop):
                error = self._unavailable() if self._failed else AuditUnavailable("closed")
                item[1].set_exception(error)

    def _loop(self) -> None:
        # Group commit: take what has queued up.  When the last batch was larger, wait a
        # moment (at most LINGER) for the writers that were in it to come back, so one
        # fsync keeps serving all of them instead of splitting them over two commits.
        expected = 1
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            batch = [item]
            stop = False
            deadline = time.monotonic() + self.LINGER
            while len(batch) < self._max_batch:
                try:
                    if len(batch) < expected:
                        more = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                    else:
                        more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(more, _Stop):
                    stop = True
                    break
                batch.append(more)
            expected = len(batch)
            try:
                self._commit(batch)
            except BaseException:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(AuditUnavailable("the audit log's writer failed"))
                raise
            if stop:
                return

    def _commit(self, batch: list[tuple[bytes, Future[Receipt]]]) -> None:
        if self._failed is not None:
            for _, future in batch:
                future.set_exception(self._unavailable())
            return
        blobs = [blob for blob, _ in batch]
        now = self._clock()
        receipts: list[Receipt] = []

        def build(size: int, reader: NodeReader) -> tuple[Any, Any]:
            if self._frontier is None or self._frontier.size != size:
                self._frontier = Frontier.load(size, reader)  # another process appended
            records, nodes, made = _rows(self._frontier, blobs, now)
            receipts.extend(made)
            return records, nodes

        try:
            if self._appender is None:
                self._appender = self._store.audit_appender()
            self._appender.append(build)
        except BaseException as exc:  # fail-stop on anything, then report it
            self._failed = f"{type(exc).__name__}: {exc}"[:300]
            self._frontier = None
            for _, future in batch:
                future.set_exception(self._unavailable())
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), receipt in zip(batch, receipts, strict=True):
            future.set_result(receipt)
        if time.monotonic() - self._last_checkpoint_at >= self._interval:
            # Entries are already durable; a failed checkpoint is retried after the next batch.
            with contextlib.suppress(Exception):
                self.checkpoint()

    def close(self) -> None:
        """Drain pending entries, issue a final checkpoint, stop the writer."""
        if self._closed:
            return
        with self._state_lock:
            self._closed = True
            self._queue.put(_Stop())
        self._writer.join()
        self._refuse_queued()
        if self._failed is None:
            self.checkpoint()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checkpoints and proofs ----------------------------------------------------------

    @property
    def origin(self) -> str:
        return self._origin

    def checkpoint(self) -> CheckpointRecord:
        """Sign and store a checkpoint for the current size (or return the one that exists)."""
        with self._checkpoint_lock:
            record = issue_checkpoint(
                self._store, key=self._key, origin=self._origin, now=self._clock()
            )
            self._last_checkpoint_at = time.monotonic()
            return record

    def prove_inclusion(self, index: int, size: int | None = None) -> tuple[int, list[bytes]]:
        """A proof for entry ``index`` in the tree of ``size`` (default: the latest checkpoint)."""
        with self._store.unit_of_work() as uow:
            if size is None:
                latest = uow.audit.latest_checkpoint()
                if latest is None or latest.size <= index:
                    raise InvalidInput(f"no checkpoint covers entry {index} yet; ask again shortly")
                size = latest.size
            return size, inclusion_proof(index, size, uow.audit)

    def prove_consistency(self, old_size: int, new_size: int) -> list[bytes]:
        with self._store.unit_of_work() as uow:
            return consistency_proof(old_size, new_size, uow.audit)
