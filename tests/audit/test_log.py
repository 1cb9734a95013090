"""The audit log over a real store (SQLite and PostgreSQL): group commit, proofs, fail-stop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from modelpact.audit.checkpoint import open_checkpoint
from modelpact.audit.entries import AccessEntry, AdminEntry, decode_entry
from modelpact.audit.log import AuditLog, Receipt, append_within
from modelpact.audit.tree import inclusion_proof, verify_consistency, verify_inclusion
from modelpact.crypto import SigningKey
from modelpact.errors import AuditUnavailable, StorageUnavailable
from modelpact.store import AuditAppender, SqlStore, Store, UnitOfWork, open_store

KEY = SigningKey.generate()
ORIGIN = "modelpact/test/log"
NOW = datetime(2026, 3, 1, tzinfo=UTC)


def entry(n: int) -> AccessEntry:
    return AccessEntry(
        time=NOW,
        actor="acme",
        subject=f"r{n}",
        charter="c",
        purpose="p",
        action="predict",
        model="m",
        version="1",
        decision="allow",
        reasons=("grant 0",),
        rows=1,
    )


def make_log(store: Store, **kwargs: float) -> AuditLog:
    return AuditLog(store, key=KEY, origin=ORIGIN, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def test_concurrent_appends_get_contiguous_receipts_that_prove(store: SqlStore) -> None:
    receipts: list[Receipt] = []
    lock = threading.Lock()

    def work(base: int) -> None:
        for n in range(50):
            receipt = log.append(entry(base + n))
            with lock:
                receipts.append(receipt)

    with make_log(store) as log:
        threads = [threading.Thread(target=work, args=(i * 100,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        checkpoint = log.checkpoint()
        assert sorted(r.index for r in receipts) == list(range(800))
        opened = open_checkpoint(checkpoint.note, KEY.verify_key, name=ORIGIN)
        assert opened.size == 800
        for receipt in receipts[::37]:
            size, proof = log.prove_inclusion(receipt.index)
            verify_inclusion(receipt.index, size, receipt.leaf_hash, proof, opened.root)
    with store.unit_of_work() as uow:
        stored = uow.audit.entries(0, 800)
    assert all(isinstance(decode_entry(r.entry), AccessEntry) for r in stored)


def test_checkpoints_grow_consistently(store: SqlStore) -> None:
    with make_log(store) as log:
        sizes = []
        roots = {}
        for batch in range(4):
            for n in range(batch * 7 + 1):
                log.append(entry(n))
            record = log.checkpoint()
            sizes.append(record.size)
            roots[record.size] = record.root
        for old, new in itertools.pairwise(sizes):
            verify_consistency(old, new, roots[old], roots[new], log.prove_consistency(old, new))


def test_append_within_commits_or_rolls_back_with_the_change(store: SqlStore) -> None:
    admin = AdminEntry(time=NOW, actor="owner", subject="x", action="model.add")

    def failing_change() -> None:
        with store.unit_of_work() as uow:
            append_within(uow, [admin], now=NOW)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError):
        failing_change()
    with store.unit_of_work() as uow:
        assert uow.audit.size() == 0
        append_within(uow, [admin, admin], now=NOW)
    with store.unit_of_work() as uow:
        assert uow.audit.size() == 2


def test_two_writers_on_one_database_share_one_history(store_url: str) -> None:
    first, second = open_store(store_url), open_store(store_url)
    try:
        with make_log(first) as one, make_log(second) as two:
            for n in range(30):
                (one if n % 3 else two).append(entry(n))
            a, b = one.checkpoint(), two.checkpoint()
        assert (a.size, a.root) == (b.size, b.root) == (30, a.root)
    finally:
        first.close()
        second.close()


class _FailingCommits:
    """A store whose transactions fail on commit: a fault (failed fsync) tests cannot cause."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.failing = False

    @contextmanager
    def _uow(self) -> Iterator[UnitOfWork]:
        with self.inner.unit_of_work() as uow:
            yield uow
            if self.failing:
                raise StorageUnavailable("fsync failed: Input/output error")

    def unit_of_work(self, *, read_only: bool = False) -> AbstractContextManager[UnitOfWork]:
        return self._uow()

    def audit_appender(self) -> AuditAppender:
        outer = self
        inner = self.inner.audit_appender()

        class Appender:
            def append(self, build: Any, *, appended_at: datetime) -> int:
                if outer.failing:  # the batch is built, then the commit's fsync fails
                    inner.append(lambda size, reader: ([], []), appended_at=NOW)
                    raise StorageUnavailable("fsync failed: Input/output error")
                return inner.append(build, appended_at=appended_at)

            def close(self) -> None:
                inner.close()

        return Appender()

    def close(self) -> None:
        self.inner.close()


def test_a_failed_commit_stops_the_log_for_good(store: SqlStore) -> None:
    faulty = _FailingCommits(store)
    log = make_log(faulty, checkpoint_interval=3600)  # type: ignore[arg-type]
    log.append(entry(0))
    faulty.failing = True
    with pytest.raises(AuditUnavailable, match="fsync failed"):
        log.append(entry(1))
    faulty.failing = False  # the disk is back, but a failed fsync is never retried
    with pytest.raises(AuditUnavailable, match="stopped after a failed write") as caught:
        log.append(entry(2))
    assert "restart" in caught.value.diagnostics()
    with pytest.raises(AuditUnavailable):
        log.submit(entry(3)).result()
    log.close()
    with store.unit_of_work() as uow:
        assert uow.audit.size() == 1  # nothing unacknowledged was stored


def test_a_dead_writer_refuses_instead_of_hanging(store: SqlStore) -> None:
    log = make_log(store, checkpoint_interval=3600)
    log.append(entry(0))

    def explode(batch: object) -> None:
        raise RuntimeError("bug in the writer")

    log._commit = explode  # type: ignore[method-assign,assignment]
    with pytest.raises(AuditUnavailable):
        log.submit(entry(1)).result(timeout=10)
    log._writer.join(timeout=10)
    with pytest.raises(AuditUnavailable):
        log.submit(entry(2)).result(timeout=10)
    log.close()


def test_coroutines_get_durable_receipts_with_one_wake_up_per_batch(store: SqlStore) -> None:
    async def main(log: AuditLog) -> list[Receipt]:
        async def writer(base: int) -> list[Receipt]:
            return [await log.append_async(entry(base + n)) for n in range(40)]

        batches = await asyncio.gather(*(writer(i * 100) for i in range(16)))
        return [receipt for batch in batches for receipt in batch]

    with make_log(store) as log:
        receipts = asyncio.run(main(log))
        checkpoint = log.checkpoint()
    assert sorted(r.index for r in receipts) == list(range(640))
    root = open_checkpoint(checkpoint.note, KEY.verify_key, name=ORIGIN).root
    with store.unit_of_work() as uow:
        stored = uow.audit.entries(0, 640)
        for receipt in receipts[::53]:
            assert stored[receipt.index].leaf_hash == receipt.leaf_hash
            proof = inclusion_proof(receipt.index, 640, uow.audit)
            verify_inclusion(receipt.index, 640, receipt.leaf_hash, proof, root)


def test_a_cancelled_coroutine_leaves_the_log_writing(store: SqlStore) -> None:
    async def main(log: AuditLog) -> Receipt:
        task = asyncio.ensure_future(log.append_async(entry(0)))
        await asyncio.sleep(0)  # queued
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return await log.append_async(entry(1))

    with make_log(store) as log:
        receipt = asyncio.run(main(log))
    assert receipt.index == 1  # the cancelled entry was written all the same
    with store.unit_of_work() as uow:
        assert uow.audit.size() == 2


def test_coroutines_are_refused_once_the_log_has_failed_or_closed(store: SqlStore) -> None:
    faulty = _FailingCommits(store)
    log = make_log(faulty, checkpoint_interval=3600)  # type: ignore[arg-type]
    faulty.failing = True

    async def one() -> Receipt:
        return await log.append_async(entry(0))

    with pytest.raises(AuditUnavailable, match="fsync failed"):
        asyncio.run(one())
    with pytest.raises(AuditUnavailable, match="stopped after a failed write"):
        asyncio.run(one())
    log.close()
    closed = make_log(store)
    closed.close()

    async def after_close() -> Receipt:
        return await closed.append_async(entry(0))

    with pytest.raises(AuditUnavailable, match="closed"):
        asyncio.run(after_close())
