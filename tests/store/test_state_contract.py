"""The change counter, run against every backend: which writes move it, and which do not."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from modelpact.errors import AlreadyExists, NotFound
from modelpact.store import (
    AuditEntryRecord,
    ChallengeRecord,
    SessionRecord,
    SqlStore,
    UnitOfWork,
)
from tests.store.test_contract import charter, partner, version

T0 = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
HASH = hashlib.sha256(b"mpt_one").digest()


def counter(store: SqlStore) -> int:
    with store.unit_of_work(read_only=True) as work:
        return work.state.counter()


def a_session(token_hash: bytes = HASH, partner_id: str = "acme") -> SessionRecord:
    return SessionRecord(
        token_hash=token_hash,
        partner_id=partner_id,
        charter_id="northwind-acme-fraud",
        charter_version=1,
        purpose="fraud-screening",
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=15),
    )


@pytest.fixture
def seeded(store: SqlStore) -> SqlStore:
    """A partner with a charter, a served model version and one live session."""
    with store.unit_of_work() as work:
        work.partners.add(partner())
        work.charters.add(charter())
        work.models.add_version(version(), serve=True)
        work.sessions.add(a_session())
    return store


def test_a_new_database_starts_at_zero_and_reads_in_a_read_only_unit(store: SqlStore) -> None:
    assert counter(store) == 0


WRITES: dict[str, Callable[[UnitOfWork], object]] = {
    "partner added": lambda w: w.partners.add(partner("globex")),
    "partner suspended": lambda w: w.partners.set_status("acme", "suspended", T0),
    "charter added": lambda w: w.charters.add(charter(number=2)),
    "charter superseded": lambda w: w.charters.set_status("northwind-acme-fraud", 1, "superseded"),
    "model version added": lambda w: w.models.add_version(version(number="2.0.0"), serve=False),
    "model version added and served": lambda w: w.models.add_version(
        version(number="2.0.0"), serve=True
    ),
    "served version set": lambda w: w.models.set_served("fraud-detector", "1.0.0", T0),
    "session revoked": lambda w: w.sessions.revoke(HASH, T0),
    "partner's sessions revoked": lambda w: w.sessions.revoke_partner("acme", T0),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_each_write_a_request_depends_on_moves_the_counter_once(
    seeded: SqlStore, write: Callable[[UnitOfWork], object]
) -> None:
    before = counter(seeded)
    with seeded.unit_of_work() as work:
        write(work)
        assert work.state.counter() == before + 1  # in the writer's own transaction
    assert counter(seeded) == before + 1


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
def test_a_rolled_back_write_leaves_the_counter(
    seeded: SqlStore, write: Callable[[UnitOfWork], object]
) -> None:
    def write_and_fail() -> None:
        with seeded.unit_of_work() as work:
            write(work)
            raise RuntimeError("roll back")

    before = counter(seeded)
    with pytest.raises(RuntimeError, match="roll back"):
        write_and_fail()
    assert counter(seeded) == before


def test_a_refused_write_leaves_the_counter(seeded: SqlStore) -> None:
    before = counter(seeded)
    with seeded.unit_of_work() as work:
        with pytest.raises(AlreadyExists):
            work.partners.add(partner())
        with pytest.raises(AlreadyExists):
            work.charters.add(charter())
        with pytest.raises(AlreadyExists):
            work.models.add_version(version(), serve=True)
        with pytest.raises(NotFound):
            work.partners.set_status("nobody", "suspended", T0)
        with pytest.raises(NotFound):
            work.sessions.revoke(hashlib.sha256(b"unknown").digest(), T0)
    assert counter(seeded) == before


def test_writes_that_change_nothing_a_request_has_read_leave_the_counter(
    seeded: SqlStore,
) -> None:
    before = counter(seeded)
    other = hashlib.sha256(b"mpt_two").digest()
    with seeded.unit_of_work() as work:
        work.sessions.add(a_session(other))
        work.sessions.add_challenge(
            ChallengeRecord(
                nonce="n-1", partner_id="acme", issued_at=T0, expires_at=T0 + timedelta(seconds=60)
            )
        )
        work.sessions.consume_challenge("n-1", "acme", T0)
        work.sessions.delete_expired_challenges(T0 + timedelta(days=365))
        work.usage.add_usage(
            "acme", "northwind-acme-fraud", T0.date(), rows=5, requests=1, limit_rows=100
        )
        work.audit.lock_for_append()
        work.audit.append([AuditEntryRecord(0, b"\x02" * 32, b"{}", T0)], [])
    with seeded.unit_of_work() as work:
        work.sessions.revoke(HASH, T0)
    moved = counter(seeded)
    assert moved == before + 1
    with seeded.unit_of_work() as work:
        work.sessions.revoke(HASH, T0)  # already revoked: nothing changes
        assert work.sessions.revoke_partner("globex", T0) == 0
    assert counter(seeded) == moved


def test_reads_leave_the_counter(seeded: SqlStore) -> None:
    before = counter(seeded)
    with seeded.unit_of_work() as work:
        work.partners.get("acme")
        work.partners.list()
        work.charters.latest("northwind-acme-fraud")
        work.charters.list()
        work.models.get_model("fraud-detector")
        work.models.get_version("fraud-detector", "1.0.0")
        work.models.list_versions("fraud-detector")
        work.sessions.get(HASH)
    assert counter(seeded) == before


def test_bumps_from_two_stores_on_one_database_all_count(seeded: SqlStore, store_url: str) -> None:
    from modelpact.store import open_store

    other = open_store(store_url)
    try:
        before = counter(seeded)
        assert seeded.state_counter() == before  # keeps its connection from here on
        with other.unit_of_work() as work:
            work.partners.set_status("acme", "suspended", T0)
        assert seeded.state_counter() == before + 1  # another process's write, seen at once
        with seeded.unit_of_work() as work:
            work.partners.set_status("acme", "active", T0)
        assert counter(seeded) == counter(other) == before + 2
        assert seeded.state_counter() == other.state_counter() == before + 2
    finally:
        other.close()


def test_the_counter_read_on_its_own_follows_every_write(seeded: SqlStore) -> None:
    seen = [seeded.state_counter()]
    for write in WRITES.values():
        # A write an earlier one made redundant is refused; the counter must not move then.
        with contextlib.suppress(AlreadyExists, NotFound), seeded.unit_of_work() as work:
            write(work)
        seen.append(seeded.state_counter())
        assert seen[-1] == counter(seeded)
    assert seen == sorted(seen) and seen[-1] > seen[0]


def test_the_counter_read_on_its_own_fails_closed(store: SqlStore) -> None:
    from sqlalchemy import text

    from modelpact.errors import StorageUnavailable

    assert store.state_counter() == 0
    with store._engine.begin() as connection:  # a database changed behind modelpact's back
        connection.execute(text("DELETE FROM state_changes"))
    with pytest.raises(StorageUnavailable, match="no state_changes row"):
        store.state_counter()
    store.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        store.state_counter()
