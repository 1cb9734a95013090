"""The storage contract, run against every backend (``store`` is parametrized).

Anything another package may rely on is pinned here: keys, orderings, the
errors raised, transactions, and exact round trips of times, bytes and text.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from modelpact.errors import AlreadyExists, InvalidInput, NotFound, StorageUnavailable
from modelpact.store import (
    CharterRecord,
    ModelVersionRecord,
    PartnerRecord,
    SqlStore,
    open_store,
)
from modelpact.store.sql import create_store_engine

T0 = datetime(2026, 1, 1, 9, 30, 15, 123456, tzinfo=UTC)
ALL_BYTES = bytes(range(256))


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def partner(partner_id: str = "acme", *, key: str | None = None) -> PartnerRecord:
    return PartnerRecord(
        id=partner_id,
        name=f"{partner_id.title()} Analytics",
        public_key=key or f"ed25519:{partner_id}-key",
        status="active",
        created_at=T0,
        updated_at=T0,
    )


def version(
    model: str = "fraud-detector", number: str = "1.0.0", *, created_at: datetime = T0
) -> ModelVersionRecord:
    return ModelVersionRecord(
        model=model,
        version=number,
        digest=f"sha256:{model}-{number}",
        size=3_000_000_000,
        artifact_key=f"models/{model}/{number}/model.onnx.sealed",
        wrapped_key=b"\x01" + ALL_BYTES,
        signature_bundle=b'{"bundle": true}\x00\xff',
        card='{"name": "fraud", "metrics": {"auc": 0.93}}',
        created_at=created_at,
    )


def charter(
    charter_id: str = "northwind-acme-fraud",
    number: int = 1,
    *,
    partner_id: str = "acme",
    status: str = "active",
) -> CharterRecord:
    return CharterRecord(
        charter_id=charter_id,
        version=number,
        partner_id=partner_id,
        envelope=f'{{"charter": "{charter_id}", "version": {number}, "note": "é ✓ \\n"}}\n',
        digest=f"sha256:{charter_id}-{number}",
        status=status,
        applied_at=at(number),
    )


# --- partners ---------------------------------------------------------------------------


def test_partner_round_trip(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
    with store.unit_of_work() as work:
        assert work.partners.get("acme") == partner()


def test_partner_get_unknown_is_not_found(store: SqlStore) -> None:
    with store.unit_of_work() as work, pytest.raises(NotFound, match="nobody"):
        work.partners.get("nobody")


def test_partner_same_id_already_exists(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
    with store.unit_of_work() as work, pytest.raises(AlreadyExists, match="'acme' already"):
        work.partners.add(partner(key="ed25519:another-key"))


def test_partner_same_public_key_already_exists(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
        with pytest.raises(AlreadyExists, match="public key"):
            work.partners.add(partner("globex", key="ed25519:acme-key"))


def test_partners_listed_by_id(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        for partner_id in ["initech", "acme", "globex"]:
            work.partners.add(partner(partner_id))
    with store.unit_of_work() as work:
        assert [p.id for p in work.partners.list()] == ["acme", "globex", "initech"]


def test_listings_sort_text_by_code_point(store: SqlStore) -> None:
    names = ["b", "B", "a", "A", "_z", "-y", "é", "Z9"]
    with store.unit_of_work() as work:
        for name in names:
            work.partners.add(partner(name, key=f"ed25519:{name}"))
            work.models.add_version(version(name), serve=False)
            work.charters.add(charter(name, partner_id=name))
    with store.unit_of_work() as work:
        assert [p.id for p in work.partners.list()] == sorted(names)
        assert [m.name for m in work.models.list_models()] == sorted(names)
        assert [c.charter_id for c in work.charters.list()] == sorted(names)


def test_partners_list_empty(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        assert work.partners.list() == []


def test_partner_set_status(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
        work.partners.add(partner("globex"))
    with store.unit_of_work() as work:
        work.partners.set_status("acme", "suspended", at(5))
    with store.unit_of_work() as work:
        suspended = work.partners.get("acme")
        assert (suspended.status, suspended.updated_at, suspended.created_at) == (
            "suspended",
            at(5),
            T0,
        )
        assert work.partners.get("globex") == partner("globex")


def test_partner_set_status_unknown_partner(store: SqlStore) -> None:
    with store.unit_of_work() as work, pytest.raises(NotFound):
        work.partners.set_status("nobody", "revoked", at(1))


@pytest.mark.parametrize("status", ["deleted", "", "ACTIVE"])
def test_partner_set_status_refuses_unknown_status(store: SqlStore, status: str) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
        with pytest.raises(InvalidInput):
            work.partners.set_status("acme", status, at(1))
        assert work.partners.get("acme").status == "active"


# --- models -----------------------------------------------------------------------------


def test_first_version_creates_the_model(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(created_at=at(3)), serve=False)
    with store.unit_of_work() as work:
        model = work.models.get_model("fraud-detector")
        assert (model.name, model.served_version, model.created_at) == (
            "fraud-detector",
            None,
            at(3),
        )
        assert work.models.get_version("fraud-detector", "1.0.0") == version(created_at=at(3))


def test_version_bytes_and_text_round_trip_exactly(store: SqlStore) -> None:
    record = version()
    with store.unit_of_work() as work:
        work.models.add_version(record, serve=True)
    with store.unit_of_work() as work:
        stored = work.models.get_version(record.model, record.version)
    assert type(stored.wrapped_key) is bytes
    assert type(stored.signature_bundle) is bytes
    assert stored.wrapped_key == b"\x01" + ALL_BYTES
    assert stored.signature_bundle == record.signature_bundle
    assert stored.card == record.card
    assert stored.size == 3_000_000_000


def test_serve_moves_the_pointer(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(number="1.0.0"), serve=True)
        assert work.models.get_model("fraud-detector").served_version == "1.0.0"
        work.models.add_version(version(number="1.1.0", created_at=at(1)), serve=False)
        assert work.models.get_model("fraud-detector").served_version == "1.0.0"
        work.models.add_version(version(number="2.0.0", created_at=at(2)), serve=True)
    with store.unit_of_work() as work:
        assert work.models.get_model("fraud-detector").served_version == "2.0.0"


def test_same_version_already_exists_and_keeps_the_first(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(), serve=True)
    changed = replace(
        version(),
        digest="sha256:other",
        size=1,
        artifact_key="other",
        wrapped_key=b"other",
        signature_bundle=b"other",
        card="{}",
        created_at=at(9),
    )
    with store.unit_of_work() as work, pytest.raises(AlreadyExists, match=r"1\.0\.0"):
        work.models.add_version(changed, serve=True)
    with store.unit_of_work() as work:
        assert work.models.get_version("fraud-detector", "1.0.0") == version()


def test_get_version_unknown(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(), serve=False)
        with pytest.raises(NotFound, match=r"9\.9\.9"):
            work.models.get_version("fraud-detector", "9.9.9")
        with pytest.raises(NotFound):
            work.models.get_version("no-such-model", "1.0.0")


def test_get_model_unknown(store: SqlStore) -> None:
    with store.unit_of_work() as work, pytest.raises(NotFound, match="no-such-model"):
        work.models.get_model("no-such-model")


def test_models_listed_by_name(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        assert work.models.list_models() == []
        work.models.add_version(version("zeta"), serve=True)
        work.models.add_version(version("alpha"), serve=False)
        work.models.add_version(version("alpha", "2"), serve=False)
    with store.unit_of_work() as work:
        listed = work.models.list_models()
    assert [(m.name, m.served_version) for m in listed] == [("alpha", None), ("zeta", "1.0.0")]


def test_versions_listed_oldest_first(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(number="2.0.0", created_at=at(20)), serve=False)
        work.models.add_version(version(number="1.0.0", created_at=at(10)), serve=False)
        work.models.add_version(version("other", "0.1", created_at=at(15)), serve=False)
    with store.unit_of_work() as work:
        listed = work.models.list_versions("fraud-detector")
    assert [v.version for v in listed] == ["1.0.0", "2.0.0"]


def test_versions_created_together_keep_insertion_order(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        for number in ["9", "10", "1"]:
            work.models.add_version(version(number=number), serve=False)
    with store.unit_of_work() as work:
        assert [v.version for v in work.models.list_versions("fraud-detector")] == [
            "9",
            "10",
            "1",
        ]


def test_list_versions_unknown_model(store: SqlStore) -> None:
    with store.unit_of_work() as work, pytest.raises(NotFound):
        work.models.list_versions("no-such-model")


def test_set_served_returns_the_previous_version(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(number="1"), serve=False)
        work.models.add_version(version(number="2"), serve=True)
    with store.unit_of_work() as work:
        assert work.models.set_served("fraud-detector", "1", at(30)) == "2"
    with store.unit_of_work() as work:
        assert work.models.get_model("fraud-detector").served_version == "1"
        assert work.models.set_served("fraud-detector", "2", at(31)) == "1"


def test_set_served_first_time_returns_none(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(), serve=False)
        assert work.models.set_served("fraud-detector", "1.0.0", at(1)) is None


def test_set_served_unknown_version_leaves_the_pointer(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version(), serve=True)
        with pytest.raises(NotFound, match=r"7\.0"):
            work.models.set_served("fraud-detector", "7.0", at(1))
        with pytest.raises(NotFound):
            work.models.set_served("no-such-model", "1.0.0", at(1))
    with store.unit_of_work() as work:
        assert work.models.get_model("fraud-detector").served_version == "1.0.0"


def test_set_served_does_not_cross_models(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.models.add_version(version("a", "1"), serve=True)
        work.models.add_version(version("b", "2"), serve=True)
        with pytest.raises(NotFound):
            work.models.set_served("a", "2", at(1))


# --- charters ---------------------------------------------------------------------------


@pytest.fixture
def with_partners(store: SqlStore) -> SqlStore:
    with store.unit_of_work() as work:
        work.partners.add(partner("acme"))
        work.partners.add(partner("globex"))
    return store


def test_charter_round_trip(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.charters.add(charter())
    with with_partners.unit_of_work() as work:
        stored = work.charters.get("northwind-acme-fraud", 1)
    assert stored == charter()
    assert stored.envelope.encode() == charter().envelope.encode()


def test_charter_same_version_already_exists(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.charters.add(charter())
    with with_partners.unit_of_work() as work, pytest.raises(AlreadyExists, match="version 1"):
        work.charters.add(charter(status="terminated"))
    with with_partners.unit_of_work() as work:
        assert work.charters.get("northwind-acme-fraud", 1).status == "active"


def test_charter_for_unknown_partner_is_not_found(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work, pytest.raises(NotFound, match="initech"):
        work.charters.add(charter(partner_id="initech"))


def test_charter_get_unknown(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.charters.add(charter())
        with pytest.raises(NotFound):
            work.charters.get("northwind-acme-fraud", 2)
        with pytest.raises(NotFound):
            work.charters.get("no-such-charter", 1)


def test_charter_latest_is_the_highest_version(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        for number in [1, 3, 2]:
            work.charters.add(charter(number=number))
        work.charters.add(charter("other", 7))
    with with_partners.unit_of_work() as work:
        assert work.charters.latest("northwind-acme-fraud") == charter(number=3)
        with pytest.raises(NotFound):
            work.charters.latest("no-such-charter")


def test_charters_list_every_version(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        assert work.charters.list() == []
        work.charters.add(charter("b-charter", 2, partner_id="globex"))
        work.charters.add(charter("a-charter", 1))
        work.charters.add(charter("b-charter", 1, partner_id="globex"))
    with with_partners.unit_of_work() as work:
        everything = work.charters.list()
        of_globex = work.charters.list(partner_id="globex")
        of_nobody = work.charters.list(partner_id="nobody")
    assert [(c.charter_id, c.version) for c in everything] == [
        ("a-charter", 1),
        ("b-charter", 1),
        ("b-charter", 2),
    ]
    assert [(c.charter_id, c.version) for c in of_globex] == [("b-charter", 1), ("b-charter", 2)]
    assert of_nobody == []


def test_charter_set_status(with_partners: SqlStore) -> None:
    with with_partners.unit_of_work() as work:
        work.charters.add(charter(number=1))
        work.charters.add(charter(number=2))
        work.charters.set_status("northwind-acme-fraud", 1, "superseded")
    with with_partners.unit_of_work() as work:
        assert work.charters.get("northwind-acme-fraud", 1).status == "superseded"
        assert work.charters.get("northwind-acme-fraud", 2).status == "active"
        with pytest.raises(NotFound):
            work.charters.set_status("northwind-acme-fraud", 3, "terminated")
        with pytest.raises(InvalidInput):
            work.charters.set_status("northwind-acme-fraud", 2, "paused")


# --- transactions -----------------------------------------------------------------------


def test_exception_rolls_back_everything(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
        work.models.add_version(version(number="1"), serve=True)

    class BoomError(Exception):
        pass

    def change_everything_then_fail() -> None:
        with store.unit_of_work() as work:
            work.partners.add(partner("globex"))
            work.partners.set_status("acme", "revoked", at(1))
            work.models.add_version(version(number="2"), serve=True)
            work.models.add_version(version("brand-new"), serve=True)
            work.charters.add(charter())
            raise BoomError

    with pytest.raises(BoomError):
        change_everything_then_fail()

    with store.unit_of_work() as work:
        assert [p.id for p in work.partners.list()] == ["acme"]
        assert work.partners.get("acme").status == "active"
        assert [m.name for m in work.models.list_models()] == ["fraud-detector"]
        assert work.models.get_model("fraud-detector").served_version == "1"
        assert [v.version for v in work.models.list_versions("fraud-detector")] == ["1"]
        assert work.charters.list() == []


def test_failed_write_leaves_the_unit_of_work_usable(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
        work.models.add_version(version(), serve=True)
    with store.unit_of_work() as work:
        with pytest.raises(AlreadyExists):
            work.partners.add(partner())
        with pytest.raises(AlreadyExists):
            work.models.add_version(version(), serve=True)
        with pytest.raises(NotFound):
            work.charters.add(charter(partner_id="nobody"))
        work.partners.add(partner("globex"))
        work.charters.add(charter(partner_id="globex"))
    with store.unit_of_work() as work:
        assert [p.id for p in work.partners.list()] == ["acme", "globex"]
        assert [c.partner_id for c in work.charters.list()] == ["globex"]


def test_commit_is_visible_to_another_store(store: SqlStore, store_url: str) -> None:
    with store.unit_of_work() as work:
        work.partners.add(partner())
    other = open_store(store_url)
    try:
        with other.unit_of_work() as work:
            assert work.partners.get("acme") == partner()
    finally:
        other.close()


def test_repositories_refuse_use_after_the_unit_of_work(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        pass
    with pytest.raises(StorageUnavailable, match="ended"):
        work.partners.list()


def test_closed_store_refuses_new_units_of_work(store_url: str) -> None:
    opened = open_store(store_url)
    opened.close()
    with pytest.raises(StorageUnavailable, match="closed"), opened.unit_of_work():
        pass


# --- times ------------------------------------------------------------------------------


def test_times_come_back_aware_in_utc_at_the_same_instant(store: SqlStore) -> None:
    paris = timezone(timedelta(hours=2))
    local = datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=paris)
    record = PartnerRecord("acme", "ACME", "ed25519:k", "active", local, local)
    with store.unit_of_work() as work:
        work.partners.add(record)
    with store.unit_of_work() as work:
        stored = work.partners.get("acme")
    for value in (stored.created_at, stored.updated_at):
        assert value == local
        assert value.utcoffset() == timedelta(0)
        assert value.tzinfo is not None
        assert (value.year, value.day, value.hour, value.microsecond) == (2026, 30, 21, 999999)


def test_times_sort_by_instant_whatever_their_offset(store: SqlStore) -> None:
    early_in_tokyo = datetime(2026, 1, 1, 18, 0, tzinfo=timezone(timedelta(hours=9)))  # 09:00Z
    late_in_utc = datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    with store.unit_of_work() as work:
        work.models.add_version(version(number="late", created_at=late_in_utc), serve=False)
        work.models.add_version(version(number="early", created_at=early_in_tokyo), serve=False)
    with store.unit_of_work() as work:
        assert [v.version for v in work.models.list_versions("fraud-detector")] == [
            "early",
            "late",
        ]


def test_naive_times_are_refused(store: SqlStore) -> None:
    naive = datetime(2026, 1, 1, 12, 0)  # naive on purpose
    with pytest.raises(InvalidInput, match="timezone-aware"):
        PartnerRecord("acme", "ACME", "ed25519:k", "active", naive, naive)
    with store.unit_of_work() as work:
        work.partners.add(partner())
        work.models.add_version(version(), serve=False)
        with pytest.raises(InvalidInput):
            work.partners.set_status("acme", "suspended", naive)
        with pytest.raises(InvalidInput):
            work.models.set_served("fraud-detector", "1.0.0", naive)


# --- migrations -------------------------------------------------------------------------


def test_migrations_are_idempotent(store_url: str) -> None:
    first = open_store(store_url)
    with first.unit_of_work() as work:
        work.partners.add(partner())
    first.close()
    second = open_store(store_url)
    third = open_store(store_url)
    try:
        with second.unit_of_work() as work:
            assert work.partners.list() == [partner()]
    finally:
        second.close()
        third.close()


def test_migrated_schema_matches_the_tables_in_code(store: SqlStore, store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from modelpact.store._schema import metadata

    engine = create_store_engine(store_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, kind, _parent: (
                        kind != "table" or name != "alembic_version"
                    ),
                },
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_database_from_a_newer_modelpact_is_refused(store: SqlStore, store_url: str) -> None:
    engine = create_store_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00d'"))
    finally:
        engine.dispose()
    with pytest.raises(StorageUnavailable, match="f00d") as raised:
        open_store(store_url)
    assert "\n" not in raised.value.diagnostics()


def test_a_read_only_unit_of_work_sees_a_snapshot_while_a_writer_holds_the_lock(
    store: SqlStore,
) -> None:
    import threading

    with store.unit_of_work() as uow:
        uow.partners.add(partner("acme"))
    writing, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.unit_of_work() as uow:
            uow.partners.add(partner("globex"))
            writing.set()
            release.wait(timeout=30)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert writing.wait(timeout=30)
        # The writer holds the write lock (SQLite) and an uncommitted row: a reader neither
        # waits for it nor sees it.
        with store.unit_of_work(read_only=True) as uow:
            assert [p.id for p in uow.partners.list()] == ["acme"]
    finally:
        release.set()
        thread.join(timeout=30)
    with store.unit_of_work(read_only=True) as uow:
        assert [p.id for p in uow.partners.list()] == ["acme", "globex"]


def test_a_read_only_unit_of_work_refuses_writes_and_leaves_the_connection_writable(
    store: SqlStore,
) -> None:
    with pytest.raises(StorageUnavailable), store.unit_of_work(read_only=True) as uow:
        uow.partners.add(partner("acme"))
    for i in range(3):  # pooled connections come back writable
        with store.unit_of_work() as uow:
            uow.partners.add(partner(f"p{i}"))
    with store.unit_of_work(read_only=True) as uow:
        assert len(uow.partners.list()) == 3


def test_the_audit_appender_writes_even_on_a_connection_last_used_read_only(
    store: SqlStore,
) -> None:
    for _ in range(3):  # leave read-only connections in the pool
        with store.unit_of_work(read_only=True) as uow:
            uow.partners.list()
    appender = store.audit_appender()
    try:
        size = appender.append(
            lambda size, reader: ([(size, b"\x01" * 32, b"{}")], []), appended_at=T0
        )
    finally:
        appender.close()
    assert size == 1
