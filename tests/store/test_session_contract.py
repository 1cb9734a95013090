"""The session repository's contract, on every backend: challenges used once, sessions by hash."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from modelpact.errors import AlreadyExists, InvalidInput, NotFound
from modelpact.store import ChallengeRecord, PartnerRecord, SessionRecord, SqlStore

T0 = datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
TTL = timedelta(seconds=60)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def challenge(nonce: str = "nonce-1", partner_id: str = "acme") -> ChallengeRecord:
    return ChallengeRecord(nonce=nonce, partner_id=partner_id, issued_at=T0, expires_at=T0 + TTL)


def session(
    bearer: str = "mpt_one", *, partner_id: str = "acme", expires_in: float = 900
) -> SessionRecord:
    return SessionRecord(
        token_hash=token_hash(bearer),
        partner_id=partner_id,
        charter_id="northwind-acme",
        charter_version=2,
        purpose="fraud-screening",
        issued_at=T0,
        expires_at=at(expires_in),
    )


@pytest.fixture
def with_partners(store: SqlStore) -> SqlStore:
    with store.unit_of_work() as work:
        for partner_id in ("acme", "globex"):
            work.partners.add(
                PartnerRecord(partner_id, partner_id, f"ed25519:{partner_id}", "active", T0, T0)
            )
    return store


def run_together(count: int, work: Callable[[int], object]) -> list[object]:
    """Run ``work(i)`` in ``count`` threads released at once; return results (errors raise)."""
    start = threading.Barrier(count)
    results: list[object] = [None] * count
    failures: list[BaseException] = []

    def runner(i: int) -> None:
        try:
            start.wait()
            results[i] = work(i)
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    return results


# --- challenges -------------------------------------------------------------------------


def test_consume_returns_the_challenge_marked_used(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())
    with store.unit_of_work() as work:
        used = work.sessions.consume_challenge("nonce-1", "acme", at(5))
    assert used == ChallengeRecord("nonce-1", "acme", T0, T0 + TTL, used_at=at(5))


def test_a_challenge_is_consumed_once(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())
    with store.unit_of_work() as work:
        assert work.sessions.consume_challenge("nonce-1", "acme", at(1)) is not None
    with store.unit_of_work() as work:
        assert work.sessions.consume_challenge("nonce-1", "acme", at(2)) is None


def test_consume_refuses_another_partner_and_leaves_the_challenge_usable(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())
        assert work.sessions.consume_challenge("nonce-1", "globex", at(1)) is None
    with store.unit_of_work() as work:
        assert work.sessions.consume_challenge("nonce-1", "acme", at(1)) is not None


def test_consume_refuses_unknown_and_expired_nonces(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())
        assert work.sessions.consume_challenge("no-such-nonce", "acme", at(1)) is None
        assert work.sessions.consume_challenge("nonce-1", "acme", T0 + TTL) is None
        assert work.sessions.consume_challenge("nonce-1", "acme", at(3600)) is None
        assert work.sessions.consume_challenge("nonce-1", "acme", at(59.9)) is not None


def test_consume_refused_inside_a_rolled_back_unit_of_work_is_undone(store: SqlStore) -> None:
    class BoomError(Exception):
        pass

    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())

    def consume_then_fail() -> None:
        with store.unit_of_work() as work:
            assert work.sessions.consume_challenge("nonce-1", "acme", at(1)) is not None
            raise BoomError

    with pytest.raises(BoomError):
        consume_then_fail()
    with store.unit_of_work() as work:
        assert work.sessions.consume_challenge("nonce-1", "acme", at(2)) is not None


def test_a_nonce_is_issued_once(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())
        with pytest.raises(AlreadyExists):
            work.sessions.add_challenge(challenge(partner_id="globex"))
    with store.unit_of_work() as work:
        assert work.sessions.consume_challenge("nonce-1", "globex", at(1)) is None


def test_challenges_need_no_enrolled_partner(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge(partner_id="nobody-we-know"))
    with store.unit_of_work() as work:
        assert work.sessions.consume_challenge("nonce-1", "nobody-we-know", at(1)) is not None


def test_delete_expired_challenges(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge("old"))
        work.sessions.add_challenge(
            ChallengeRecord("fresh", "acme", issued_at=at(30), expires_at=at(30) + TTL)
        )
        work.sessions.consume_challenge("old", "acme", at(1))
    with store.unit_of_work() as work:
        assert work.sessions.delete_expired_challenges(at(59)) == 0
        assert work.sessions.delete_expired_challenges(at(60)) == 1
        assert work.sessions.delete_expired_challenges(at(60)) == 0
        assert work.sessions.consume_challenge("fresh", "acme", at(61)) is not None
        assert work.sessions.delete_expired_challenges(at(1000)) == 1


def test_naive_times_are_refused(store: SqlStore) -> None:
    naive = datetime(2026, 3, 1, 12)  # naive on purpose
    with store.unit_of_work() as work:
        with pytest.raises(InvalidInput):
            work.sessions.consume_challenge("nonce-1", "acme", naive)
        with pytest.raises(InvalidInput):
            work.sessions.delete_expired_challenges(naive)
        with pytest.raises(InvalidInput):
            work.sessions.revoke_partner("acme", naive)


def test_many_threads_consume_one_nonce_and_exactly_one_wins(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.sessions.add_challenge(challenge())

    def consume(_: int) -> ChallengeRecord | None:
        with store.unit_of_work() as work:
            return work.sessions.consume_challenge("nonce-1", "acme", at(1))

    results = run_together(8, consume)
    assert sum(result is not None for result in results) == 1


# --- sessions ---------------------------------------------------------------------------


def test_session_round_trip(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.sessions.add(session())
    with with_partners.unit_of_work() as work:
        stored = work.sessions.get(token_hash("mpt_one"))
    assert stored == session()
    assert type(stored.token_hash) is bytes


def test_session_get_unknown_does_not_show_the_hash(with_partners: SqlStore) -> None:
    unknown = token_hash("mpt_unknown")
    with with_partners.unit_of_work() as work, pytest.raises(NotFound) as raised:
        work.sessions.get(unknown)
    assert unknown.hex() not in raised.value.diagnostics()


def test_session_same_hash_already_exists(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.sessions.add(session())
        with pytest.raises(AlreadyExists):
            work.sessions.add(session(partner_id="globex"))
        assert work.sessions.get(token_hash("mpt_one")).partner_id == "acme"


def test_session_for_unknown_partner_is_not_found(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work, pytest.raises(NotFound, match="initech"):
        work.sessions.add(session(partner_id="initech"))


def test_session_hash_must_be_32_bytes(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work, pytest.raises(InvalidInput, match="32 bytes"):
        work.sessions.get(b"mpt_one")


def test_revoke_keeps_the_first_time(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.sessions.add(session("mpt_one"))
        work.sessions.add(session("mpt_two"))
    with with_partners.unit_of_work() as work:
        work.sessions.revoke(token_hash("mpt_one"), at(10))
    with with_partners.unit_of_work() as work:
        work.sessions.revoke(token_hash("mpt_one"), at(20))
        assert work.sessions.get(token_hash("mpt_one")).revoked_at == at(10)
        assert work.sessions.get(token_hash("mpt_two")).revoked_at is None
        with pytest.raises(NotFound):
            work.sessions.revoke(token_hash("mpt_unknown"), at(30))


def test_revoke_partner_revokes_only_that_partners_live_sessions(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        for token in ("mpt_a1", "mpt_a2", "mpt_a3"):
            work.sessions.add(session(token))
        work.sessions.add(session("mpt_g1", partner_id="globex"))
        work.sessions.revoke(token_hash("mpt_a1"), at(5))
    with with_partners.unit_of_work() as work:
        assert work.sessions.revoke_partner("acme", at(10)) == 2
        assert work.sessions.revoke_partner("acme", at(11)) == 0
        assert work.sessions.revoke_partner("nobody", at(11)) == 0
    with with_partners.unit_of_work() as work:
        revoked = {
            token: work.sessions.get(token_hash(token)).revoked_at
            for token in ("mpt_a1", "mpt_a2", "mpt_a3", "mpt_g1")
        }
    assert revoked == {"mpt_a1": at(5), "mpt_a2": at(10), "mpt_a3": at(10), "mpt_g1": None}


# --- migration 0005 ---------------------------------------------------------------------

SESSION_TABLES = {"session_challenges", "sessions", "usage"}


def test_downgrade_from_0005_drops_the_session_tables_and_upgrade_restores_them(
    store_url: str,
) -> None:
    from tests.store.test_audit_contract import _migrate, _tables_and_version

    _migrate(store_url, "head")
    tables, version = _tables_and_version(store_url)
    assert version == "0008"
    assert tables >= SESSION_TABLES
    _migrate(store_url, "0004", down=True)
    tables, version = _tables_and_version(store_url)
    assert version == "0004"
    assert not tables & SESSION_TABLES
    assert "partners" in tables
    _migrate(store_url, "head")
    assert _tables_and_version(store_url)[0] >= SESSION_TABLES
