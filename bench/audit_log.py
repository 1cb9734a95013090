"""Audit log: durable append throughput, proof cost at scale, bytes per entry — beside raw SQLite.

Run: .venv/bin/python -m bench.audit_log [--seconds 5] [--proof-entries 1000000]
     [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Everything is measured in one run, on the same disk:
- raw limits: plain SQLite inserts of 32-byte rows, (a) 1,000 rows per durable commit,
  (b) 16 rows per durable commit (the most 16 writers waiting on their own appends can share)
  and (c) one durable commit per row (WAL, synchronous=FULL, as the store uses); and the raw
  cost of handing work to another thread and being woken (what each thread writer pays);
- durable appends, each acknowledged only once its commit is durable: 1 and 16 threads calling
  AuditLog.append, 1 and 16 coroutines on one event loop awaiting AuditLog.append_async (how
  the gateway calls it), entries built before the clock starts; and 16 coroutines that also
  build (and validate) each entry inside the timed loop;
- inclusion and consistency proof generation (from stored subtree hashes) and verification in a
  log of --proof-entries entries, and bytes stored per entry.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import queue
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from modelpact.audit.entries import AccessEntry, encode_entry
from modelpact.audit.log import AuditLog
from modelpact.audit.tree import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from modelpact.crypto import SigningKey
from modelpact.store import AuditEntryRecord, SqlStore, open_store

NOW = datetime(2026, 11, 25, tzinfo=UTC)
KEY = SigningKey.generate()


def entry(n: int) -> AccessEntry:
    return AccessEntry(
        time=NOW,
        actor="acme",
        subject=f"request-{n}",
        charter="northwind-acme",
        purpose="fraud",
        action="predict",
        model="fraud-detector",
        version="1.4.2",
        decision="allow",
        reasons=("grant 0 of northwind-acme@v3 allows predict on fraud-detector versions 1.*",),
        rows=16,
        input_digest="sha256:" + "ab" * 32,
        output_digest="sha256:" + "cd" * 32,
    )


def raw_sqlite(path: Path, seconds: float, rows_per_commit: int) -> float:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)")
    payload = secrets.token_bytes(32)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        connection.execute("BEGIN")
        connection.executemany(
            "INSERT INTO t (v) VALUES (?)", ((payload,) for _ in range(rows_per_commit))
        )
        connection.execute("COMMIT")
        done += rows_per_commit
    elapsed = time.perf_counter() - start
    connection.close()
    return done / elapsed


def thread_round_trips(seconds: float) -> float:
    """Raw limit for thread writers: one thread hands a waiter to another and is woken."""
    inbox: queue.SimpleQueue[threading.Lock | None] = queue.SimpleQueue()

    def serve() -> None:
        while (waiter := inbox.get()) is not None:
            waiter.release()

    server = threading.Thread(target=serve)
    server.start()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        waiter = threading.Lock()
        waiter.acquire()
        inbox.put(waiter)
        waiter.acquire()
        done += 1
    elapsed = time.perf_counter() - start
    inbox.put(None)
    server.join()
    return done / elapsed


POOL = 4000
"""Distinct entries each writer cycles through (built before the clock starts)."""


def appends(url: str, writers: int, seconds: float, *, tasks: bool, build: bool = False) -> float:
    """Durable appends per second: ``writers`` threads calling ``append``, or as many
    coroutines awaiting ``append_async`` on one event loop (the gateway's shape).

    Entries are built before the clock starts unless ``build``: then each is also
    constructed (and validated by pydantic) inside the timed loop.
    """
    store = open_store(url)
    log = AuditLog(store, key=KEY, origin="bench/log", clock=lambda: NOW)
    pools = [[entry(slot * 10_000_000 + n) for n in range(POOL)] for slot in range(writers)]
    counts = [0] * writers
    deadline = 0.0

    def next_entry(slot: int, n: int) -> AccessEntry:
        return entry(slot * 10_000_000 + n) if build else pools[slot][n % POOL]

    def work(slot: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            log.append(next_entry(slot, n))
            n += 1
        counts[slot] = n

    async def work_async(slot: int) -> None:
        n = 0
        while time.perf_counter() < deadline:
            await log.append_async(next_entry(slot, n))
            n += 1
        counts[slot] = n

    async def run_tasks() -> None:
        await asyncio.gather(*(work_async(slot) for slot in range(writers)))

    start = time.perf_counter()
    deadline = start + seconds
    if tasks:
        asyncio.run(run_tasks())
    else:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed = time.perf_counter() - start
    log.close()
    store.close()
    return sum(counts) / elapsed


def build_log(store: SqlStore, total: int, batch: int = 20_000) -> None:
    """Fill the log through the store's own append path (no thread, big batches)."""
    with store.unit_of_work() as uow:
        frontier = Frontier.load(uow.audit.size(), uow.audit)
    template = encode_entry(entry(0))
    while frontier.size < total:
        with store.unit_of_work() as uow:
            uow.audit.lock_for_append()
            records, nodes = [], []
            for _ in range(min(batch, total - frontier.size)):
                blob = template.replace(b"request-0", f"request-{frontier.size}".encode())
                leaf = leaf_hash(blob)
                index = frontier.size
                nodes.extend((lv, at, h) for (lv, at), h in frontier.append(leaf) if lv)
                records.append(
                    AuditEntryRecord(idx=index, leaf_hash=leaf, entry=blob, appended_at=NOW)
                )
            uow.audit.append(records, nodes)


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def proofs(store: SqlStore, total: int) -> dict[str, float]:
    import random

    rng = random.Random(7)
    with store.unit_of_work() as uow:
        root = tree_root(total, uow.audit)
        old = total // 3
        old_root = tree_root(old, uow.audit)
        index = rng.randrange(total)
        leaf = uow.audit.entry(index).leaf_hash
        proof = inclusion_proof(index, total, uow.audit)
        cproof = consistency_proof(old, total, uow.audit)

    def prove() -> None:
        i = rng.randrange(total)
        with store.unit_of_work() as uow:
            inclusion_proof(i, total, uow.audit)

    def prove_consistency() -> None:
        with store.unit_of_work() as uow:
            consistency_proof(rng.randrange(1, total), total, uow.audit)

    return {
        "inclusion proof (ms)": timed(prove, 300),
        "consistency proof (ms)": timed(prove_consistency, 300),
        "verify inclusion (ms)": timed(
            lambda: verify_inclusion(index, total, leaf, proof, root), 2000
        ),
        "verify consistency (ms)": timed(
            lambda: verify_consistency(old, total, old_root, root, cproof), 2000
        ),
        "proof length": float(len(proof)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--proof-entries", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=os.environ.get("MODELPACT_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}, sqlite {sqlite3.sqlite_version}"
    )
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        root = Path(tmp)
        print(
            f"raw sqlite, 1000 rows per durable commit: "
            f"{raw_sqlite(root / 'raw1.db', args.seconds, 1000):>10,.0f} rows/s"
        )
        print(
            f"raw sqlite, 16 rows per durable commit:   "
            f"{raw_sqlite(root / 'raw16.db', args.seconds, 16):>10,.0f} rows/s"
        )
        print(
            f"raw sqlite, 1 row per durable commit:     "
            f"{raw_sqlite(root / 'raw2.db', args.seconds, 1):>10,.0f} rows/s"
        )
        print(
            f"raw thread round trips (hand-off + wake): "
            f"{thread_round_trips(args.seconds):>10,.0f} /s"
        )
        backends = [("sqlite", lambda name: f"sqlite:///{root / name}")]
        if args.postgres:
            backends.append(("postgres", lambda name: _pg_schema(args.postgres, name)))
        for backend, url_of in backends:
            runs = [
                ("1 thread, append", 1, False, False),
                ("16 threads, append", 16, False, False),
                ("1 coroutine, append_async", 1, True, False),
                ("16 coroutines, append_async", 16, True, False),
                ("16 coroutines, entry built in the loop", 16, True, True),
            ]
            for n, (label, writers, tasks, build) in enumerate(runs):
                rate = appends(
                    url_of(f"app{n}.db"), writers, args.seconds, tasks=tasks, build=build
                )
                print(f"{backend}: {label + ':':<40} {rate:>10,.0f} appends/s")
            url = url_of("proofs.db")
            store = open_store(url)
            start = time.perf_counter()
            build_log(store, args.proof_entries)
            print(
                f"{backend}: built a log of {args.proof_entries:,} entries in "
                f"{time.perf_counter() - start:.0f} s"
            )
            for name, value in proofs(store, args.proof_entries).items():
                print(f"{backend}:   {name}: {value:.4f}")
            store.close()
            per_entry = _bytes(url, backend) / args.proof_entries
            print(f"{backend}:   bytes per entry: {per_entry:.0f}")


def _pg_schema(base: str, name: str) -> str:
    import sqlalchemy as sa

    schema = "bench_" + name.replace(".", "_") + "_" + secrets.token_hex(3)
    engine = sa.create_engine(base)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


def _bytes(url: str, backend: str) -> float:
    """Bytes the log's two tables occupy (SQLite: whole file after a checkpoint)."""
    import sqlalchemy as sa

    if backend == "sqlite":
        connection = sqlite3.connect(url.removeprefix("sqlite:///"))
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        size = connection.execute("PRAGMA page_size").fetchone()[0]
        connection.close()
        return float((pages - free) * size)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        total = sum(
            connection.execute(sa.text(f"SELECT pg_total_relation_size('{table}')")).scalar_one()
            for table in ("audit_entries", "audit_subtrees")
        )
    engine.dispose()
    return float(total)


if __name__ == "__main__":
    main()
