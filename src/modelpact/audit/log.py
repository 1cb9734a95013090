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

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
from modelpact.audit.entries import (
    PRUNE_ACTION,
    AdminEntry,
    AuditEntry,
    PrunedEntry,
    encode_entry,
)
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

__all__ = ["AuditLog", "Receipt", "append_within", "issue_checkpoint", "prune_within"]


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where an entry landed: its index and leaf hash, checkable against a checkpoint."""

    index: int
    leaf_hash: bytes


def _rows(
    frontier: Frontier, blobs: Sequence[bytes], leaves: Sequence[bytes]
) -> tuple[list[tuple[int, bytes, bytes]], list[tuple[int, int, bytes]], list[Receipt]]:
    """The rows that append ``blobs`` (hashed to ``leaves``) to the log; advances ``frontier``."""
    first = frontier.size
    nodes = frontier.extend(leaves)
    rows = [
        (first + i, leaf, blob) for i, (leaf, blob) in enumerate(zip(leaves, blobs, strict=True))
    ]
    receipts = [Receipt(first + i, leaf) for i, leaf in enumerate(leaves)]
    return rows, nodes, receipts


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
    rows, nodes, receipts = _rows(frontier, blobs, [leaf_hash(blob) for blob in blobs])
    records = [
        AuditEntryRecord(idx=idx, leaf_hash=leaf, entry=blob, appended_at=now)
        for idx, leaf, blob in rows
    ]
    uow.audit.append(records, nodes)
    return receipts


def prune_within(
    uow: UnitOfWork,
    victims: Mapping[int, tuple[str, str]],
    *,
    actor: str,
    subject: str,
    now: datetime,
    **detail: str | int | bool | None,
) -> Receipt:
    """Prune entries in the caller's transaction: a ``log.prune`` entry first (``subject``,
    how many entries, the first and last index, ``detail``), then each entry of
    ``victims`` (index -> the actor and charter it named) replaced by a
    :class:`~modelpact.audit.entries.PrunedEntry` pointing at it.

    Leaf hashes, nodes and checkpoints are untouched, so every root and proof still
    verifies; only the payloads are gone.  ``InvalidInput`` for an index that is not an
    existing entry before the ``log.prune`` entry, or for a victim of another charter than
    ``subject`` (the one charter a ``log.prune`` entry explains, see
    :mod:`modelpact.audit.bundle`).
    """
    if not victims:
        raise InvalidInput("nothing to prune")
    if detail.get("charter", subject) != subject or any(c != subject for _, c in victims.values()):
        raise InvalidInput(f"a log.prune entry prunes one charter's entries: {subject}'s")
    uow.audit.lock_for_append()
    size = uow.audit.size()
    for index in victims:
        if not 0 <= index < size:
            raise InvalidInput(f"cannot prune audit entry {index}: the log holds {size}")
    indexes = sorted(victims)
    entry = AdminEntry(
        time=now,
        actor=actor,
        subject=subject,
        action=PRUNE_ACTION,
        detail={
            **detail,
            "entries": len(indexes),
            "first": indexes[0],
            "last": indexes[-1],
        },
    )
    (receipt,) = append_within(uow, [entry], now=now)
    markers = {
        index: encode_entry(PrunedEntry(actor=who, charter=charter, prune=receipt.index, time=now))
        for index, (who, charter) in victims.items()
    }
    uow.audit.prune(markers)
    return receipt


def issue_checkpoint(
    store: Store, *, key: SigningKey | Callable[[], SigningKey], origin: str, now: datetime
) -> CheckpointRecord:
    """Sign and store a checkpoint for the log's current size, or return the one that exists.

    ``key``: the signing key, or what gives it once the size is read (a process that
    outlives an owner-key handover asks then, so the key it gets is never one that had
    handed over before that size).
    """
    with store.unit_of_work() as uow:
        if not isinstance(key, SigningKey):
            # Appenders wait until the key is chosen: an owner-key handover appended right
            # after the size is read cannot then be followed by its key swap before the
            # signature (PostgreSQL; SQLite's unit of work excludes writers already).
            uow.audit.lock_for_append()
        size = uow.audit.size()
        latest = uow.audit.latest_checkpoint()
        if latest is not None and latest.size == size:
            return latest
        root = tree_root(size, uow.audit)
        signer = key if isinstance(key, SigningKey) else key()
        note = sign_checkpoint(Checkpoint(origin=origin, size=size, root=root), signer, name=origin)
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


#: Who waits for an entry: a thread (``concurrent.futures``) or a coroutine (``asyncio``).
_Ack = Future[Receipt] | asyncio.Future[Receipt]
_Item = tuple[bytes, bytes, _Ack]


def _settle_async(outcomes: list[tuple[asyncio.Future[Receipt], Receipt | BaseException]]) -> None:
    """Resolve one batch's coroutine waiters; runs on their event loop."""
    for future, outcome in outcomes:
        if future.done():  # the awaiting task was cancelled; the entry is durable anyway
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _settle(acks: Iterable[tuple[_Ack, Receipt | BaseException]]) -> None:
    """Tell every waiter how its entry fared.

    Threads are woken one by one; coroutines once per event loop per batch
    (``call_soon_threadsafe``), because waking a thread costs tens of
    microseconds of system time and a batch may hold hundreds of entries.
    """
    loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Receipt], Any]]] = {}
    for ack, outcome in acks:
        if isinstance(ack, Future):
            if ack.done():
                continue
            if isinstance(outcome, BaseException):
                ack.set_exception(outcome)
            else:
                ack.set_result(outcome)
        else:
            loops.setdefault(ack.get_loop(), []).append((ack, outcome))
    for loop, outcomes in loops.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_async, outcomes)


class AuditLog:
    """One log per workspace: append, checkpoint, prove.

    ``append`` blocks until the entry is durable and returns its receipt; it is
    safe to call from many threads at once.  Coroutines ``await
    append_async``, which costs the event loop one wake-up per batch instead of
    one thread switch per entry.  Checkpoints are signed by ``key`` (or the key it gives
    when called, see :func:`issue_checkpoint`) under ``origin`` and issued at least every
    ``checkpoint_interval`` seconds while entries arrive, and on demand.
    """

    #: The longest a batch waits for writers expected back from the previous one (seconds).
    LINGER = 0.001

    def __init__(
        self,
        store: Store,
        *,
        key: SigningKey | Callable[[], SigningKey],
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
        self._queue: queue.SimpleQueue[_Item | _Stop] = queue.SimpleQueue()
        self._failed: str | None = None
        self._frontier: Frontier | None = None
        self._appender: AuditAppender | None = None  # the writer thread's own connection
        self._last_checkpoint_at = float("-inf")
        self._checkpoint_lock = threading.Lock()
        self._state_lock = threading.Lock()  # submit's check-and-put against close and death
        self._ready = threading.Event()  # set when the batch the writer lingers for is queued
        self._want = 0  # how many queued entries end the writer's linger (0: not lingering)
        self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._closed = False
        self._stopped = False  # the writer thread has ended
        self._writer.start()

    # -- appending ---------------------------------------------------------------------------

    def append(self, entry: AuditEntry) -> Receipt:
        """Make ``entry`` durable; raise :class:`AuditUnavailable` if it cannot be."""
        return self.submit(entry).result()

    def submit(self, entry: AuditEntry) -> Future[Receipt]:
        """Queue ``entry``; the future resolves once it is durable."""
        future: Future[Receipt] = Future()
        refusal = self._enqueue(encode_entry(entry), future)
        if refusal is not None:
            future.set_exception(refusal)
        return future

    async def append_async(self, entry: AuditEntry) -> Receipt:
        """Make ``entry`` durable without blocking the event loop.

        Cancelling the awaiting task does not withdraw the entry: once queued it
        is written, like any other.
        """
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        refusal = self._enqueue(encode_entry(entry), future)
        if refusal is not None:
            raise refusal
        return await future

    def _enqueue(self, blob: bytes, ack: _Ack) -> AuditUnavailable | None:
        """Queue one encoded entry, or say why the log takes nothing."""
        leaf = leaf_hash(blob)  # hashed here, so the writer's critical path stays short
        with self._state_lock:
            if self._failed is not None:
                return self._unavailable()
            if self._closed or self._stopped:
                return AuditUnavailable("the audit log is closed")
            self._queue.put((blob, leaf, ack))
        want = self._want
        if want and self._queue.qsize() >= want:
            self._ready.set()  # the writer is lingering for exactly this batch
        return None

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
            with self._state_lock:
                self._stopped = True  # from here on, _enqueue refuses
            if self._appender is not None:
                self._appender.close()
            self._refuse_queued()

    def _refuse_queued(self) -> None:
        """Fail every entry still queued, so no caller waits on a writer that is gone."""
        refused: list[tuple[_Ack, Receipt | BaseException]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Stop):
                error = self._unavailable() if self._failed else AuditUnavailable("closed")
                refused.append((item[2], error))
        _settle(refused)

    def _loop(self) -> None:
        # Group commit: take what has queued up.  When the last batch was larger, wait a
        # moment (at most LINGER) for the writers that were in it to come back, so one
        # fsync keeps serving all of them instead of splitting them over two commits.
        # The wait is one sleep, ended early by the enqueuer that completes the batch:
        # waking this thread once per arriving entry would cost more than the fsync.
        expected = 1
        while True:
            item = self._queue.get()
            if isinstance(item, _Stop):
                return
            if expected > 1:
                self._ready.clear()
                self._want = expected - 1
                if self._queue.qsize() < self._want:
                    self._ready.wait(self.LINGER)
                self._want = 0
            batch = [item]
            stop = False
            while len(batch) < self._max_batch:
                try:
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
                gone = "the audit log's writer failed"
                _settle((ack, AuditUnavailable(gone)) for *_, ack in batch)
                raise
            if stop:
                return

    def _commit(self, batch: list[_Item]) -> None:
        if self._failed is not None:
            _settle((ack, self._unavailable()) for *_, ack in batch)
            return
        blobs = [blob for blob, _, _ in batch]
        leaves = [leaf for _, leaf, _ in batch]
        receipts: list[Receipt] = []

        def build(size: int, reader: NodeReader) -> tuple[Any, Any]:
            if self._frontier is None or self._frontier.size != size:
                self._frontier = Frontier.load(size, reader)  # another process appended
            rows, nodes, made = _rows(self._frontier, blobs, leaves)
            receipts.extend(made)
            return rows, nodes

        try:
            if self._appender is None:
                self._appender = self._store.audit_appender()
            self._appender.append(build, appended_at=self._clock())
        except BaseException as exc:  # fail-stop on anything, then report it
            self._failed = f"{type(exc).__name__}: {exc}"[:300]
            self._frontier = None
            _settle((ack, self._unavailable()) for *_, ack in batch)
            if not isinstance(exc, Exception):
                raise
            return
        _settle(zip([ack for *_, ack in batch], receipts, strict=True))
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

    @property
    def healthy(self) -> bool:
        """Whether the log accepts entries (not failed, not closed)."""
        return self._failed is None and not self._closed and not self._stopped

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
