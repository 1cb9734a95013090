"""The audit log's storage contract, run against every backend (``store`` is parametrized).

The store does not hash: leaf hashes here are real RFC 9162 leaf hashes, but node
hashes are arbitrary 32-byte values, since only their keys and bytes matter here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from modelpact.audit.log import prune_within
from modelpact.errors import AlreadyExists, InvalidInput, NotFound, StorageUnavailable
from modelpact.store import (
    AuditEntryRecord,
    CheckpointRecord,
    PartnerRecord,
    SqlStore,
    _sql_audit,
    open_store,
)
from modelpact.store._schema import audit_entries, partners
from modelpact.store.sql import MIGRATIONS, create_store_engine

T0 = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
AUDIT_TABLES = ["audit_checkpoints", "audit_entries", "audit_subtrees"]
# The newest revision: open_store migrates to it.
HEAD = "0008"
# 0004 keyed the subtrees by position; before it they were audit_nodes, keyed by (level, idx).
AUDIT_TABLES_0003 = ["audit_checkpoints", "audit_entries", "audit_nodes"]
# The events table as 0001 made it; 0003 drops it (its downgrade brings it back, empty).
EVENTS_0001 = sa.table(
    "events",
    sa.column("seq", sa.BigInteger()),
    sa.column("at", sa.DateTime(timezone=True)),
    sa.column("actor", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("detail", sa.Text()),
)


def canonical(idx: int) -> bytes:
    """About 300 bytes of canonical JSON, different for every index."""
    body = {"decision": "allow", "idx": idx, "note": "é ✓", "pad": "x" * 240}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


def record(idx: int, *, at: datetime = T0) -> AuditEntryRecord:
    entry = canonical(idx)
    return AuditEntryRecord(idx, hashlib.sha256(b"\x00" + entry).digest(), entry, at)


def node_hash(level: int, idx: int) -> bytes:
    return hashlib.sha256(f"node {level}/{idx}".encode()).digest()


def new_nodes(old_size: int, new_size: int) -> list[tuple[int, int, bytes]]:
    """The complete subtrees (level >= 1) that growing from ``old_size`` to ``new_size`` closes."""
    found = []
    level = 1
    while 1 << level <= new_size:
        for idx in range(old_size >> level, new_size >> level):
            found.append((level, idx, node_hash(level, idx)))
        level += 1
    return found


def all_nodes(size: int) -> dict[tuple[int, int], bytes]:
    """Every node a log of ``size`` entries keeps, level 0 included."""
    nodes = {(0, i): record(i).leaf_hash for i in range(size)}
    nodes.update({(level, idx): digest for level, idx, digest in new_nodes(0, size)})
    return nodes


def append(store: SqlStore, count: int) -> int:
    """Append ``count`` entries the way the audit log does; return the new size."""
    with store.unit_of_work() as work:
        work.audit.lock_for_append()
        size = work.audit.size()
        work.audit.append(
            [record(i) for i in range(size, size + count)], new_nodes(size, size + count)
        )
    return size + count


def checkpoint(size: int, *, note: str | None = None) -> CheckpointRecord:
    return CheckpointRecord(
        size=size,
        root=hashlib.sha256(f"root {size}".encode()).digest(),
        note=note if note is not None else f"example.org/log\n{size}\nroot\n\n— sig ✓\n",
        issued_at=T0 + timedelta(seconds=size),
    )


# --- entries ----------------------------------------------------------------------------


def test_an_empty_log(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        assert work.audit.size() == 0
        assert work.audit.entries(0, 10) == []
        assert work.audit.nodes({(0, 0), (1, 0)}) == {}
        assert work.audit.latest_checkpoint() is None
        assert work.audit.checkpoints() == []
        with pytest.raises(NotFound, match="no entry 0"):
            work.audit.entry(0)


def test_append_round_trip(store: SqlStore) -> None:
    assert append(store, 5) == 5
    with store.unit_of_work() as work:
        assert work.audit.size() == 5
        assert work.audit.entries(0, 5) == [record(i) for i in range(5)]
        assert work.audit.entries(1, 3) == [record(1), record(2)]
        assert work.audit.entries(3, 1000) == [record(3), record(4)]
        assert work.audit.entries(2, 2) == []
        assert work.audit.entries(9, 12) == []
        stored = work.audit.entry(4)
    assert stored == record(4)
    assert type(stored.entry) is bytes
    assert type(stored.leaf_hash) is bytes
    assert stored.entry == canonical(4)


def test_entry_times_come_back_in_utc_at_the_same_instant(store: SqlStore) -> None:
    local = datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=2)))
    with store.unit_of_work() as work:
        work.audit.append([record(0, at=local)], [])
    with store.unit_of_work() as work:
        stored = work.audit.entry(0).appended_at
    assert stored == local
    assert stored.utcoffset() == timedelta(0)
    assert (stored.hour, stored.microsecond) == (21, 999999)


def test_entry_unknown_is_not_found(store: SqlStore) -> None:
    append(store, 2)
    with store.unit_of_work() as work:
        for idx in [2, 3, -1, 2**64]:
            with pytest.raises(NotFound):
                work.audit.entry(idx)


@pytest.mark.parametrize(("start", "end"), [(-1, 2), (3, 2), (0, -1)])
def test_entries_refuses_a_backwards_range(store: SqlStore, start: int, end: int) -> None:
    with store.unit_of_work() as work, pytest.raises(InvalidInput, match="range"):
        work.audit.entries(start, end)


def test_appends_across_units_of_work_keep_every_node(store: SqlStore) -> None:
    size = 0
    for count in [1, 2, 5, 1, 8, 3, 12]:
        size = append(store, count)
    assert size == 32
    expected = all_nodes(size)
    with store.unit_of_work() as work:
        assert work.audit.size() == 32
        assert work.audit.nodes(expected.keys()) == expected
        assert [e.idx for e in work.audit.entries(0, 100)] == list(range(32))


def test_append_of_nothing_does_nothing(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.audit.append([], [])
        assert work.audit.size() == 0


def test_bulk_append_in_chunks(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sql_audit, "INSERT_CHUNK", 7)
    monkeypatch.setattr(_sql_audit, "IN_CHUNK", 5)
    assert append(store, 50) == 50
    expected = all_nodes(50)
    with store.unit_of_work() as work:
        assert work.audit.nodes(expected.keys()) == expected
        assert work.audit.entries(0, 50) == [record(i) for i in range(50)]


# --- nodes ------------------------------------------------------------------------------


def test_nodes_mixed_levels_and_missing_ids(store: SqlStore) -> None:
    append(store, 6)  # nodes (1,0) (1,1) (1,2) (2,0)
    wanted = [
        (0, 0),
        (0, 5),
        (1, 2),
        (2, 0),
        (0, 6),  # no such leaf yet
        (1, 3),  # incomplete subtree
        (2, 1),
        (3, 0),
        (57, 0),  # the largest subtree the log could hold
        (58, 0),  # beyond the log's 2**57 entries
        (1, 2**56),
        (62, 0),
        (63, 0),  # beyond any level
        (-1, 0),
        (1, -1),
        (0, 2**64),
        (0, 0),  # asked twice
    ]
    with store.unit_of_work() as work:
        found = work.audit.nodes(wanted)
    assert found == {
        (0, 0): record(0).leaf_hash,
        (0, 5): record(5).leaf_hash,
        (1, 2): node_hash(1, 2),
        (2, 0): node_hash(2, 0),
    }
    assert all(type(value) is bytes for value in found.values())


def test_nodes_of_nothing(store: SqlStore) -> None:
    append(store, 2)
    with store.unit_of_work() as work:
        assert work.audit.nodes([]) == {}
        assert work.audit.nodes(set()) == {}


def test_a_proof_sized_request_takes_one_query(store_url: str) -> None:
    engine = create_store_engine(store_url)
    store = SqlStore(engine)
    try:
        store.migrate()
        append(store, 40)
        statements: list[str] = []

        def count(*args: object) -> None:
            statements.append(str(args[2]))

        wanted = list(all_nodes(40))[::2]  # leaves and nodes of every level
        sa.event.listen(engine, "before_cursor_execute", count)
        with store.unit_of_work() as work:
            statements.clear()
            found = work.audit.nodes(wanted)
        sa.event.remove(engine, "before_cursor_execute", count)
    finally:
        store.close()
    assert found == {key: all_nodes(40)[key] for key in wanted}
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements


# --- refused appends --------------------------------------------------------------------


def test_appending_an_existing_index_writes_nothing(store: SqlStore) -> None:
    append(store, 4)
    with store.unit_of_work() as work:
        work.audit.lock_for_append()
        changed = AuditEntryRecord(3, b"\x07" * 32, b'{"forged":true}', T0)
        with pytest.raises(AlreadyExists, match="entry 3 already exists"):
            work.audit.append([changed, record(4)], new_nodes(4, 5))
        assert work.audit.size() == 4
        with pytest.raises(AlreadyExists):
            work.audit.append([record(0)], [])
    with store.unit_of_work() as work:
        assert work.audit.size() == 4
        assert work.audit.entry(3) == record(3)
        assert work.audit.entries(0, 10) == [record(i) for i in range(4)]


def test_appending_an_existing_node_writes_nothing(store: SqlStore) -> None:
    append(store, 4)
    with store.unit_of_work() as work:
        work.audit.lock_for_append()
        clash = [*new_nodes(4, 6), (1, 0, b"\x09" * 32)]
        with pytest.raises(AlreadyExists, match="already exists"):
            work.audit.append([record(4), record(5)], clash)
        # The refused write undid itself; the unit of work goes on.
        assert work.audit.size() == 4
        work.audit.append([record(4), record(5)], new_nodes(4, 6))
    with store.unit_of_work() as work:
        assert work.audit.size() == 6
        assert work.audit.nodes([(1, 0), (1, 2)]) == {
            (1, 0): node_hash(1, 0),
            (1, 2): node_hash(1, 2),
        }


@pytest.mark.parametrize(
    ("entries", "nodes", "match"),
    [
        ([3], [], "gap"),
        ([2, 4], [], "consecutive"),
        ([2, 3, 3], [], "consecutive"),
        ([2], [(0, 2, node_hash(0, 2))], "level"),
        ([2], [(63, 0, node_hash(63, 0))], "level"),
        ([2], [(1, -1, node_hash(1, 0))], "level"),
        ([2], [(1, 2**56, node_hash(1, 0))], r"ends at leaf 144115188075855873, beyond .* 2\*\*57"),
        ([2], [(58, 0, node_hash(58, 0))], r"2\*\*57 entries"),
        ([2], [(62, 0, node_hash(62, 0))], r"2\*\*57 entries"),
        ([2], [(1, 1, node_hash(1, 1))], "covers leaves up to 3"),
        ([2, 3], [(2, 0, node_hash(2, 0)), (1, 1, b"short")], "32 bytes"),
        ([], [(1, 1, node_hash(1, 1))], "covers leaves up to 3"),
    ],
)
def test_append_refuses_what_would_break_the_tree(
    store: SqlStore, entries: list[int], nodes: list[tuple[int, int, bytes]], match: str
) -> None:
    append(store, 2)
    with store.unit_of_work() as work:
        with pytest.raises(InvalidInput, match=match):
            work.audit.append([record(i) for i in entries], nodes)
        assert work.audit.size() == 2
        assert work.audit.nodes([(1, 1), (2, 0)]) == {}


def test_exception_rolls_the_append_back(store: SqlStore) -> None:
    append(store, 2)

    class BoomError(Exception):
        pass

    def append_then_fail() -> None:
        with store.unit_of_work() as work:
            work.audit.lock_for_append()
            work.audit.append([record(2), record(3), record(4)], new_nodes(2, 5))
            work.audit.add_checkpoint(checkpoint(5))
            assert work.audit.size() == 5
            raise BoomError

    with pytest.raises(BoomError):
        append_then_fail()
    with store.unit_of_work() as work:
        assert work.audit.size() == 2
        assert work.audit.entries(0, 10) == [record(0), record(1)]
        assert work.audit.nodes([(1, 1), (2, 0), (0, 2)]) == {}
        assert work.audit.checkpoints() == []
    assert append(store, 3) == 5


# --- the sequencer lock -----------------------------------------------------------------


def test_lock_for_append_twice_is_harmless(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.audit.lock_for_append()
        work.audit.lock_for_append()
        work.audit.append([record(0)], [])
    assert append(store, 1) == 2


def test_concurrent_appenders_take_turns(store: SqlStore) -> None:
    rounds, batch = 10, 3
    start = threading.Barrier(2)
    failures: list[BaseException] = []
    sizes: list[int] = []
    guard = threading.Lock()

    def appender() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                with store.unit_of_work() as work:
                    work.audit.lock_for_append()
                    size = work.audit.size()
                    work.audit.append(
                        [record(i) for i in range(size, size + batch)],
                        new_nodes(size, size + batch),
                    )
                with guard:
                    sizes.append(size)
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=appender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    total = 2 * rounds * batch
    assert sorted(sizes) == list(range(0, total, batch))
    expected = all_nodes(total)
    with store.unit_of_work() as work:
        assert work.audit.size() == total
        assert work.audit.entries(0, total + 1) == [record(i) for i in range(total)]
        assert work.audit.nodes(expected.keys()) == expected


def test_lock_waits_for_the_holder_to_commit(store: SqlStore) -> None:
    first_locked = threading.Event()
    second_locked = threading.Event()
    release = threading.Event()
    seen: list[int] = []
    failures: list[BaseException] = []

    def first() -> None:
        try:
            with store.unit_of_work() as work:
                work.audit.lock_for_append()
                first_locked.set()
                release.wait(10)
                work.audit.append([record(0), record(1)], new_nodes(0, 2))
        except BaseException as error:
            failures.append(error)
            first_locked.set()

    def second() -> None:
        try:
            with store.unit_of_work() as work:
                work.audit.lock_for_append()
                second_locked.set()
                size = work.audit.size()
                seen.append(size)
                work.audit.append([record(size)], new_nodes(size, size + 1))
        except BaseException as error:
            failures.append(error)

    holder = threading.Thread(target=first)
    holder.start()
    assert first_locked.wait(10)
    waiter = threading.Thread(target=second)
    waiter.start()
    assert not second_locked.wait(0.3), "the second appender got the lock while it was held"
    release.set()
    holder.join()
    waiter.join()
    assert failures == []
    assert seen == [2]
    with store.unit_of_work() as work:
        assert work.audit.size() == 3


# --- checkpoints ------------------------------------------------------------------------


def test_checkpoint_round_trip(store: SqlStore) -> None:
    append(store, 5)
    with store.unit_of_work() as work:
        for size in [3, 0, 5]:
            work.audit.add_checkpoint(checkpoint(size))
    with store.unit_of_work() as work:
        assert work.audit.checkpoints() == [checkpoint(0), checkpoint(3), checkpoint(5)]
        assert work.audit.latest_checkpoint() == checkpoint(5)
        stored = work.audit.checkpoint(3)
        with pytest.raises(NotFound, match="size 4"):
            work.audit.checkpoint(4)
        with pytest.raises(NotFound):
            work.audit.checkpoint(-1)
    assert stored == checkpoint(3)
    assert stored.note.encode() == checkpoint(3).note.encode()
    assert type(stored.root) is bytes


def test_checkpoint_same_size_already_exists_and_keeps_the_first(store: SqlStore) -> None:
    append(store, 2)
    with store.unit_of_work() as work:
        work.audit.add_checkpoint(checkpoint(2))
    with store.unit_of_work() as work:
        with pytest.raises(AlreadyExists, match="size 2"):
            work.audit.add_checkpoint(checkpoint(2, note="another note"))
        # What the audit log does when another process signed first.
        assert work.audit.checkpoint(2) == checkpoint(2)


def test_checkpoint_beyond_the_log_is_refused(store: SqlStore) -> None:
    append(store, 2)
    with store.unit_of_work() as work:
        with pytest.raises(InvalidInput, match="only 2 entries"):
            work.audit.add_checkpoint(checkpoint(3))
        assert work.audit.checkpoints() == []


# --- durability and failures ------------------------------------------------------------


def test_commit_is_visible_to_another_store(store: SqlStore, store_url: str) -> None:
    append(store, 3)
    other = open_store(store_url)
    try:
        with other.unit_of_work() as work:
            assert work.audit.size() == 3
            assert work.audit.entries(0, 3) == [record(i) for i in range(3)]
        assert append(other, 1) == 4
    finally:
        other.close()


def test_repository_refuses_use_after_the_unit_of_work(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        pass
    with pytest.raises(StorageUnavailable, match="ended"):
        work.audit.append([record(0)], [])
    with pytest.raises(StorageUnavailable, match="ended"):
        work.audit.size()


def _with_options(url: str, *options: str) -> str:
    parsed = sa.make_url(url)
    existing = parsed.query.get("options", "")
    assert isinstance(existing, str)
    joined = " ".join([existing, *options]).strip()
    return parsed.update_query_dict({"options": joined}).render_as_string(hide_password=False)


@pytest.mark.postgres
def test_postgres_append_is_synchronous_even_if_the_session_is_not(
    postgres_schema_url: str,
) -> None:
    store = open_store(_with_options(postgres_schema_url, "-csynchronous_commit=off"))
    try:
        with store.unit_of_work() as work:
            connection = work._session.connection  # white box: the setting is per transaction
            show = connection.exec_driver_sql
            assert show("SHOW synchronous_commit").scalar() == "off"
            work.audit.lock_for_append()
            assert show("SHOW synchronous_commit").scalar() == "on"
            assert show("SHOW lock_timeout").scalar() == "5s"  # LOCK_TIMEOUT_MS
        with store.unit_of_work() as work:
            assert work._session.connection.exec_driver_sql("SHOW synchronous_commit").scalar() == (
                "off"
            )
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_keeps_a_shorter_lock_timeout(postgres_schema_url: str) -> None:
    store = open_store(_with_options(postgres_schema_url, "-clock_timeout=1234"))
    try:
        with store.unit_of_work() as work:
            work.audit.lock_for_append()
            show = work._session.connection.exec_driver_sql
            assert show("SHOW lock_timeout").scalar() == "1234ms"
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_lock_wait_gives_up(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sql_audit, "LOCK_TIMEOUT_MS", 200)
    store = open_store(postgres_schema_url)
    try:
        with store.unit_of_work() as holder:
            holder.audit.lock_for_append()
            with pytest.raises(StorageUnavailable, match="lock"), store.unit_of_work() as work:
                work.audit.lock_for_append()
    finally:
        store.close()


@pytest.mark.postgres
def test_postgres_schemas_do_not_share_the_lock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sql_audit, "LOCK_TIMEOUT_MS", 500)
    admin = create_store_engine(postgres_url)
    schemas = [f"mp_test_{secrets.token_hex(6)}" for _ in range(2)]
    try:
        with admin.begin() as connection:
            for schema in schemas:
                connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        stores = [
            open_store(_with_options(postgres_url, f"-csearch_path={schema}")) for schema in schemas
        ]
        try:
            with stores[0].unit_of_work() as first:
                first.audit.lock_for_append()
                with stores[1].unit_of_work() as second:
                    second.audit.lock_for_append()  # would wait and time out if shared
                    second.audit.append([record(0)], [])
        finally:
            for opened in stores:
                opened.close()
    finally:
        with admin.begin() as connection:
            for schema in schemas:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()


@pytest.mark.postgres
def test_postgres_failed_commit_is_storage_unavailable(postgres_schema_url: str) -> None:
    name = f"mp_{secrets.token_hex(6)}"
    url = sa.make_url(postgres_schema_url).update_query_dict({"application_name": name})
    store = open_store(url.render_as_string(hide_password=False))
    admin = create_store_engine(postgres_schema_url)
    try:
        append(store, 2)

        def append_and_lose_the_connection() -> None:
            with store.unit_of_work() as work:
                work.audit.lock_for_append()
                work.audit.append([record(2)], new_nodes(2, 3))
                with admin.begin() as connection:
                    killed = connection.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": name},
                    ).all()
                assert killed == [(True,)]
            # Leaving the block commits: that must not pass in silence.

        with pytest.raises(StorageUnavailable, match="cannot use database"):
            append_and_lose_the_connection()
        with store.unit_of_work() as work:
            assert work.audit.size() == 2
    finally:
        admin.dispose()
        store.close()


# --- schema and migrations --------------------------------------------------------------


def test_audit_tables_have_no_index_beyond_their_primary_keys(
    store: SqlStore, store_url: str
) -> None:
    engine = create_store_engine(store_url)
    try:
        inspector = sa.inspect(engine)
        for table in AUDIT_TABLES:
            assert inspector.get_indexes(table) == [], table
            assert inspector.get_unique_constraints(table) == [], table
        pk = inspector.get_pk_constraint("audit_subtrees")
        assert (pk["name"], pk["constrained_columns"]) == ("pk_audit_subtrees", ["pos"])
        checks = {c["name"] for t in AUDIT_TABLES for c in inspector.get_check_constraints(t)}
        assert checks == {
            "ck_audit_entries_idx",
            "ck_audit_entries_leaf_hash",
            "ck_audit_subtrees_position",
            "ck_audit_subtrees_hash",
            "ck_audit_checkpoints_size",
            "ck_audit_checkpoints_root",
        }
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:
                run = connection.exec_driver_sql
                # One B-tree per table: idx, pos and size are rowids (else SQLite would
                # add an autoindex for the primary key).
                trees = run(
                    "SELECT name FROM sqlite_master WHERE tbl_name LIKE 'audit%' AND rootpage > 0"
                )
                assert sorted(trees.scalars()) == AUDIT_TABLES
    finally:
        engine.dispose()


def test_the_database_refuses_malformed_rows(store: SqlStore, store_url: str) -> None:
    engine = create_store_engine(store_url)
    entries = "INSERT INTO audit_entries (idx, appended_at, leaf_hash, entry) VALUES"
    subtrees = "INSERT INTO audit_subtrees (pos, hash) VALUES"
    bad = [
        f"{entries} (-1, :t, :h, :e)",
        f"{entries} (0, :t, :short, :e)",
        f"{subtrees} (0, :h)",  # level 0: a leaf, kept in audit_entries
        f"{subtrees} (128, :h)",  # level 0 again, last leaf 2
        f"{subtrees} (63, :h)",  # level 63
        f"{subtrees} (-63, :h)",  # negative, though its level bits say 1
        f"{subtrees} (65, :short)",
        "INSERT INTO audit_checkpoints (size, root, note, issued_at) VALUES (0, :short, 'n', :t)",
        "INSERT INTO audit_checkpoints (size, root, note, issued_at) VALUES (-1, :h, 'n', :t)",
    ]
    try:
        for statement in bad:
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(
                    sa.text(statement),
                    {"h": b"\x00" * 32, "short": b"\x00" * 31, "e": b"{}", "t": T0},
                )
    finally:
        engine.dispose()


def _alembic(connection: sa.Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.attributes["connection"] = connection
    return config


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    engine = create_store_engine(url)
    try:
        with engine.begin() as connection:
            if down:
                command.downgrade(_alembic(connection), revision)
            else:
                command.upgrade(_alembic(connection), revision)
    finally:
        engine.dispose()


def _tables_and_version(url: str) -> tuple[set[str], str]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            version = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return set(sa.inspect(connection).get_table_names()), str(version.scalar())
    finally:
        engine.dispose()


def _events_count(url: str) -> int:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(sa.select(sa.func.count()).select_from(EVENTS_0001)).scalar_one()
            )
    finally:
        engine.dispose()


def test_upgrade_from_0001_keeps_existing_rows(store_url: str) -> None:
    _migrate(store_url, "0001")
    tables, version = _tables_and_version(store_url)
    assert version == "0001"
    assert not tables & {*AUDIT_TABLES, *AUDIT_TABLES_0003}
    assert "events" in tables
    acme = PartnerRecord("acme", "ACME", "ed25519:acme", "active", T0, T0)
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(partners).values(
                    id=acme.id,
                    name=acme.name,
                    public_key=acme.public_key,
                    status=acme.status,
                    created_at=acme.created_at,
                    updated_at=acme.updated_at,
                )
            )
            connection.execute(
                sa.insert(EVENTS_0001).values(
                    seq=1,
                    at=T0,
                    actor="owner",
                    kind="partner.enrolled",
                    subject="acme",
                    detail="{}",
                )
            )
    finally:
        engine.dispose()

    store = open_store(store_url)
    try:
        tables, version = _tables_and_version(store_url)
        assert version == HEAD
        assert set(AUDIT_TABLES) <= tables
        assert "events" not in tables  # dropped, rows and all
        with store.unit_of_work() as work:
            assert work.partners.list() == [acme]
            assert work.audit.size() == 0
        assert append(store, 3) == 3
    finally:
        store.close()

    _migrate(store_url, "0001", down=True)
    tables, version = _tables_and_version(store_url)
    assert version == "0001"
    assert not tables & {*AUDIT_TABLES, *AUDIT_TABLES_0003}
    assert "events" in tables
    assert _events_count(store_url) == 0  # recreated empty: 0003 discarded the rows
    store = open_store(store_url)
    try:
        with store.unit_of_work() as work:
            assert work.partners.list() == [acme]
            assert work.audit.size() == 0
    finally:
        store.close()


def _table_schema(url: str, table: str) -> dict[str, Any]:
    """Everything the database says about ``table`` and its indexes."""
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            columns = [
                {key: str(value) if key == "type" else value for key, value in column.items()}
                for column in inspector.get_columns(table)
            ]
            schema: dict[str, Any] = {
                "columns": columns,
                "pk": inspector.get_pk_constraint(table),
                "indexes": sorted(inspector.get_indexes(table), key=lambda i: str(i["name"])),
                "unique": inspector.get_unique_constraints(table),
                "foreign": inspector.get_foreign_keys(table),
                "checks": inspector.get_check_constraints(table),
            }
            if connection.dialect.name == "sqlite":
                ddl = connection.execute(
                    sa.text(
                        "SELECT type, name, sql FROM sqlite_master "
                        "WHERE tbl_name = :table ORDER BY name"
                    ),
                    {"table": table},
                )
                schema["ddl"] = [tuple(row) for row in ddl]
            return schema
    finally:
        engine.dispose()


def test_downgrade_from_0003_recreates_events_as_0001_made_it(store_url: str) -> None:
    _migrate(store_url, "0001")
    made_by_0001 = _table_schema(store_url, "events")
    assert made_by_0001["pk"]["name"] == "pk_events"
    assert made_by_0001["pk"]["constrained_columns"] == ["seq"]
    assert [(i["name"], i["column_names"]) for i in made_by_0001["indexes"]] == [
        ("ix_events_kind", ["kind"]),
        ("ix_events_subject", ["subject"]),
    ]

    _migrate(store_url, "head")
    tables, version = _tables_and_version(store_url)
    assert (version, "events" in tables) == (HEAD, False)

    _migrate(store_url, "0002", down=True)
    tables, version = _tables_and_version(store_url)
    assert version == "0002"
    assert set(AUDIT_TABLES_0003) <= tables
    assert _table_schema(store_url, "events") == made_by_0001


# Subtrees (level, idx) as 0003 keeps them, beyond a real 13-entry log: the largest
# positions 0004 can hold, to check the bigint arithmetic on both databases.
EXTREME_NODES = [(1, 2**56 - 1), (57, 0), (30, 2**27 - 1), (12, 2**40 + 5)]


def _nodes_0003(url: str) -> dict[tuple[int, int], bytes]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT level, idx, hash FROM audit_nodes"))
            return {(int(level), int(idx)): bytes(digest) for level, idx, digest in rows}
    finally:
        engine.dispose()


def test_upgrade_to_0004_keeps_every_node_and_downgrade_puts_them_back(store_url: str) -> None:
    _migrate(store_url, "0003")
    before = {(level, idx): digest for level, idx, digest in new_nodes(0, 13)}
    before.update({node: node_hash(*node) for node in EXTREME_NODES})
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.insert(audit_entries),
                [
                    {"idx": r.idx, "appended_at": T0, "leaf_hash": r.leaf_hash, "entry": r.entry}
                    for r in (record(i) for i in range(13))
                ],
            )
            connection.execute(
                sa.text("INSERT INTO audit_nodes (level, idx, hash) VALUES (:level, :idx, :hash)"),
                [{"level": lv, "idx": idx, "hash": digest} for (lv, idx), digest in before.items()],
            )
    finally:
        engine.dispose()
    assert _nodes_0003(store_url) == before

    store = open_store(store_url)
    try:
        tables, version = _tables_and_version(store_url)
        assert (version, "audit_nodes" in tables) == (HEAD, False)
        with store.unit_of_work() as work:
            assert work.audit.size() == 13
            assert work.audit.nodes([*before, (0, 12)]) == {**before, (0, 12): record(12).leaf_hash}
        assert append(store, 3) == 16  # completes (4, 0), among others
    finally:
        store.close()

    _migrate(store_url, "0003", down=True)
    tables, version = _tables_and_version(store_url)
    assert (version, "audit_subtrees" in tables) == ("0003", False)
    after = {**before, **{(level, idx): digest for level, idx, digest in new_nodes(13, 16)}}
    assert _nodes_0003(store_url) == after


def test_downgrade_from_0004_recreates_audit_nodes_as_0002_made_it(store_url: str) -> None:
    _migrate(store_url, "0003")
    made_by_0002 = _table_schema(store_url, "audit_nodes")
    assert made_by_0002["pk"]["name"] == "pk_audit_nodes"
    assert made_by_0002["pk"]["constrained_columns"] == ["level", "idx"]

    _migrate(store_url, "head")
    made_by_0004 = _table_schema(store_url, "audit_subtrees")
    assert [c["name"] for c in made_by_0004["columns"]] == ["pos", "hash"]
    if "ddl" in made_by_0004:
        assert "WITHOUT ROWID" not in str(made_by_0004["ddl"])  # pos is the rowid

    _migrate(store_url, "0003", down=True)
    assert _table_schema(store_url, "audit_nodes") == made_by_0002


# --- retention --------------------------------------------------------------------------


def test_prune_replaces_payloads_and_keeps_every_hash(store: SqlStore) -> None:
    append(store, 6)
    with store.unit_of_work() as work:
        assert work.audit.prune({4: b'{"type":"pruned"}', 1: b'{"type":"pruned"}'}) == 2
        assert work.audit.prune({}) == 0
    with store.unit_of_work() as work:
        stored = work.audit.entries(0, 6)
        assert [r.idx for r in stored if r.entry == b'{"type":"pruned"}'] == [1, 4]
        assert [r.entry for r in stored if r.idx not in (1, 4)] == [
            canonical(i) for i in (0, 2, 3, 5)
        ]
        assert [r.leaf_hash for r in stored] == [record(i).leaf_hash for i in range(6)]
        assert [r.appended_at for r in stored] == [T0] * 6
        assert work.audit.nodes(all_nodes(6).keys()) == all_nodes(6)
    with pytest.raises(NotFound, match="no entry 6"), store.unit_of_work() as work:
        work.audit.prune({2: b"gone", 6: b"gone"})
    with store.unit_of_work() as work:
        assert work.audit.entry(2) == record(2)  # nothing of the refused call was written
        with pytest.raises(InvalidInput):
            work.audit.prune({3: b""})


def test_a_log_prune_explains_one_charter_only(store: SqlStore) -> None:
    """The writer refuses what the verifier would report: markers of another charter than
    the log.prune entry's (the review's reproducer hid an owner entry that way)."""
    append(store, 3)
    now = T0 + timedelta(days=40)
    for victims, detail in (
        ({1: ("owner", "other-charter")}, {"charter": "never-existed"}),
        ({1: ("acme", "northwind-acme")}, {"charter": "northwind-globex"}),
    ):
        with pytest.raises(InvalidInput, match="one charter"), store.unit_of_work() as work:
            prune_within(work, victims, actor="expiry", subject=str(detail["charter"]),
                         now=now, **detail)  # fmt: skip
    with pytest.raises(InvalidInput, match="one charter"), store.unit_of_work() as work:
        prune_within(work, {1: ("acme", "northwind-acme")}, actor="expiry",
                     subject="northwind-acme", now=now, charter="northwind-globex")  # fmt: skip
    with store.unit_of_work() as work:
        assert work.audit.size() == 3 and work.audit.entry(1) == record(1)
