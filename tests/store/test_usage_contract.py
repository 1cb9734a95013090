"""The usage repository's contract, on every backend: daily counts and a quota nobody overshoots."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from modelpact.errors import InvalidInput
from modelpact.store import SqlStore, UsageRecord, UsageTotal
from tests.store.test_session_contract import run_together

DAY = date(2026, 3, 1)
NEXT = date(2026, 3, 2)


def add(store: SqlStore, rows: int, *, limit: int | None, day: date = DAY, **keys: str) -> bool:
    with store.unit_of_work() as work:
        return work.usage.add_usage(
            keys.get("partner_id", "acme"),
            keys.get("charter_id", "northwind-acme"),
            day,
            rows=rows,
            requests=1,
            limit_rows=limit,
        )


def usage(store: SqlStore, day: date = DAY) -> tuple[int, int]:
    with store.unit_of_work() as work:
        record = work.usage.usage("acme", "northwind-acme", day)
    return record.rows, record.requests


def test_a_day_without_usage_is_zero(store: SqlStore) -> None:
    with store.unit_of_work() as work:
        assert work.usage.usage("acme", "northwind-acme", DAY) == UsageRecord(
            "acme", "northwind-acme", DAY, 0, 0
        )
        assert work.usage.totals() == []


def test_usage_adds_up(store: SqlStore) -> None:
    assert add(store, 3, limit=None)
    assert add(store, 4, limit=None)
    assert usage(store) == (7, 2)


def test_the_limit_refuses_and_writes_nothing(store: SqlStore) -> None:
    assert add(store, 6, limit=10)
    assert not add(store, 5, limit=10)
    assert usage(store) == (6, 1)
    assert add(store, 4, limit=10)
    assert usage(store) == (10, 2)
    assert not add(store, 1, limit=10)
    assert add(store, 0, limit=10)  # a request of no rows still fits, and counts
    assert usage(store) == (10, 3)


def test_a_first_request_over_the_limit_is_refused(store: SqlStore) -> None:
    assert not add(store, 11, limit=10)
    assert usage(store) == (0, 0)
    with store.unit_of_work() as work:
        assert work.usage.totals() == []


def test_the_limit_is_per_day_partner_and_charter(store: SqlStore) -> None:
    assert add(store, 10, limit=10)
    assert add(store, 10, limit=10, day=NEXT)
    assert add(store, 10, limit=10, partner_id="globex")
    assert add(store, 10, limit=10, charter_id="other")
    assert not add(store, 1, limit=10)
    assert usage(store) == (10, 1)
    assert usage(store, NEXT) == (10, 1)


def test_counts_beyond_32_bits(store: SqlStore) -> None:
    assert add(store, 3_000_000_000, limit=None)
    assert add(store, 3_000_000_000, limit=6_000_000_000)
    assert usage(store) == (6_000_000_000, 2)


def test_totals_per_partner_and_charter(store: SqlStore) -> None:
    add(store, 1, limit=None, day=date(2026, 2, 27))
    add(store, 2, limit=None, day=DAY)
    add(store, 4, limit=None, day=NEXT)
    add(store, 8, limit=None, charter_id="a-charter")
    add(store, 16, limit=None, partner_id="globex", charter_id="g")
    with store.unit_of_work() as work:
        everything = work.usage.totals()
        of_acme = work.usage.totals(partner_id="acme")
        in_march = work.usage.totals(partner_id="acme", since=DAY, until=NEXT)
    assert everything == [
        UsageTotal("acme", "a-charter", 8, 1, DAY, DAY),
        UsageTotal("acme", "northwind-acme", 7, 3, date(2026, 2, 27), NEXT),
        UsageTotal("globex", "g", 16, 1, DAY, DAY),
    ]
    assert of_acme == everything[:2]
    assert in_march == [
        UsageTotal("acme", "a-charter", 8, 1, DAY, DAY),
        UsageTotal("acme", "northwind-acme", 2, 1, DAY, DAY),
    ]


def test_malformed_values_are_refused(store: SqlStore) -> None:
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    with store.unit_of_work() as work:
        with pytest.raises(InvalidInput, match="rows"):
            work.usage.add_usage("acme", "c", DAY, rows=-1, requests=1, limit_rows=None)
        with pytest.raises(InvalidInput, match="limit_rows"):
            work.usage.add_usage("acme", "c", DAY, rows=1, requests=1, limit_rows=-5)
        with pytest.raises(InvalidInput, match="date"):
            work.usage.add_usage("acme", "c", moment, rows=1, requests=1, limit_rows=None)
        with pytest.raises(InvalidInput, match="date"):
            work.usage.totals(since=moment)
        assert work.usage.totals() == []


@pytest.mark.parametrize("rows", [1, 3])
def test_many_threads_near_the_limit_never_exceed_it(store: SqlStore, rows: int) -> None:
    limit, threads, rounds = 20, 8, 4  # 8 * 4 * rows asked for, against 20 allowed

    def spend(_: int) -> int:
        return sum(add(store, rows, limit=limit) for _ in range(rounds))

    granted = run_together(threads, spend)
    admitted = sum(n for n in granted if isinstance(n, int))
    assert admitted == limit // rows
    assert usage(store) == (admitted * rows, admitted)
