"""Metering over a real workspace: the rate per minute in memory, the daily quota in the store."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import limits.storage.memory
import pytest

from modelpact.charter import Limits
from modelpact.errors import InvalidInput, QuotaExhausted
from modelpact.services import Workspace
from modelpact.services import metering as metering_module
from modelpact.services.metering import Meter
from modelpact.services.sessions import ActiveSession
from tests.services.conftest import START, FixedClock

SESSION = ActiveSession(
    token_id="sha256:" + "ab" * 32,
    partner="acme",
    charter="northwind-acme",
    charter_version=1,
    purpose="fraud-screening",
    expires_at=START + timedelta(minutes=15),
)
OTHER_CHARTER = ActiveSession(
    token_id="sha256:" + "cd" * 32,
    partner="acme",
    charter="northwind-acme-research",
    charter_version=1,
    purpose="research",
    expires_at=START + timedelta(minutes=15),
)
UNLIMITED = Limits()


class WallClock:
    """Stands in for the ``time`` module where the rate window reads the wall clock."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> WallClock:
    """Put the moving window's clock (the ``limits`` package reads ``time.time``) in our hands."""
    clock = WallClock()
    monkeypatch.setattr(limits.storage.memory, "time", clock)
    monkeypatch.setattr(metering_module, "time", clock)
    return clock


@pytest.fixture
def meter(workspace: Workspace) -> Meter:
    return Meter(workspace)


# --- the rate limit ---------------------------------------------------------------------


def test_the_rate_limit_refuses_with_retry_after(meter: Meter) -> None:
    per_minute = Limits(requests_per_minute=3, daily_quota=100)
    for _ in range(3):
        meter.admit(SESSION, per_minute, 1)
    with pytest.raises(QuotaExhausted, match="3 requests per minute") as raised:
        meter.admit(SESSION, per_minute, 1)
    assert raised.value.retry_after is not None
    assert 0 < raised.value.retry_after <= 60
    assert meter.usage("acme", "northwind-acme", START.date()) == (3, 3)  # refusal not counted


def test_the_window_moves(meter: Meter, wall: WallClock) -> None:
    per_minute = Limits(requests_per_minute=3)
    start = wall.now
    for offset in (0, 20, 40):
        wall.now = start + offset
        meter.admit(SESSION, per_minute, 1)
    wall.now = start + 45
    with pytest.raises(QuotaExhausted) as raised:
        meter.admit(SESSION, per_minute, 1)
    assert raised.value.retry_after == pytest.approx(15)  # when the request at 0 leaves
    wall.now = start + 60.5
    meter.admit(SESSION, per_minute, 1)  # one slot freed...
    with pytest.raises(QuotaExhausted) as raised:  # ...and taken
        meter.admit(SESSION, per_minute, 1)
    assert raised.value.retry_after == pytest.approx(19.5)  # the request at 20 leaves at 80


def test_the_rate_limit_is_per_partner_and_charter(meter: Meter) -> None:
    per_minute = Limits(requests_per_minute=1)
    meter.admit(SESSION, per_minute, 1)
    meter.admit(OTHER_CHARTER, per_minute, 1)
    meter.admit(replace(SESSION, partner="globex"), per_minute, 1)
    with pytest.raises(QuotaExhausted):
        meter.admit(SESSION, per_minute, 1)


def test_the_rate_is_checked_before_the_quota(meter: Meter) -> None:
    both = Limits(requests_per_minute=2, daily_quota=1)
    meter.admit(SESSION, both, 1)
    with pytest.raises(QuotaExhausted, match="daily quota"):  # the rate had room
        meter.admit(SESSION, both, 1)
    with pytest.raises(QuotaExhausted, match="per minute") as raised:  # the window is full
        meter.admit(SESSION, both, 1)
    assert raised.value.retry_after is not None
    assert raised.value.retry_after <= 60


# --- the daily quota --------------------------------------------------------------------


def test_the_daily_quota_counts_rows(meter: Meter) -> None:
    quota = Limits(daily_quota=10)
    meter.admit(SESSION, quota, 6)
    meter.admit(SESSION, quota, 4)
    with pytest.raises(QuotaExhausted, match="daily quota of 10 rows") as raised:
        meter.admit(SESSION, quota, 1)
    assert raised.value.retry_after == 12 * 3600  # START is noon UTC
    meter.admit(SESSION, quota, 0)
    assert meter.usage("acme", "northwind-acme", START.date()) == (10, 3)
    meter.admit(OTHER_CHARTER, quota, 10)  # another charter has its own quota


def test_the_quota_renews_at_midnight_utc(meter: Meter, clock: FixedClock) -> None:
    quota = Limits(daily_quota=5)
    clock.now = datetime(2026, 3, 1, 23, 59, 59, 500000, tzinfo=UTC)
    meter.admit(SESSION, quota, 5)
    with pytest.raises(QuotaExhausted) as raised:
        meter.admit(SESSION, quota, 1)
    assert raised.value.retry_after == pytest.approx(0.5)
    clock.advance(seconds=0.5)
    meter.admit(SESSION, quota, 5)
    day = clock.now.date()
    assert meter.usage("acme", "northwind-acme", day - timedelta(days=1)) == (5, 1)
    assert meter.usage("acme", "northwind-acme", day) == (5, 1)


def test_the_day_is_the_utc_day_whatever_the_clocks_zone(meter: Meter, clock: FixedClock) -> None:
    tokyo = datetime(2026, 3, 2, 8, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    clock.now = tokyo  # 17:00 on 2 March in Tokyo, 08:00 on 2 March UTC
    meter.admit(SESSION, Limits(daily_quota=100), 2)
    assert meter.usage("acme", "northwind-acme", tokyo.astimezone(UTC).date()) == (2, 1)


def test_without_a_quota_nothing_is_written_per_request(meter: Meter) -> None:
    for _ in range(3):
        meter.admit(SESSION, UNLIMITED, 1000)  # admitted, and left to the audit log to count
    assert meter.usage("acme", "northwind-acme", START.date()) == (0, 0)


def test_a_batch_larger_than_the_quota_is_refused_without_retry(meter: Meter) -> None:
    with pytest.raises(QuotaExhausted, match="larger than the daily quota") as raised:
        meter.admit(SESSION, Limits(daily_quota=10), 11)
    assert raised.value.retry_after is None
    assert meter.usage("acme", "northwind-acme", START.date()) == (0, 0)


@pytest.mark.parametrize("rows", [-1, True, 1.5])
def test_rows_must_be_a_count(meter: Meter, rows: object) -> None:
    with pytest.raises(InvalidInput):
        meter.admit(SESSION, UNLIMITED, rows)  # type: ignore[arg-type]


def test_gateways_sharing_a_database_never_overshoot_the_quota(workspace: Workspace) -> None:
    quota, rows, gateways, attempts = 50, 3, 6, 5  # 90 rows asked for, 50 allowed
    start = threading.Barrier(gateways)
    admitted: list[int] = []
    failures: list[BaseException] = []

    def gateway() -> None:
        meter = Meter(workspace)  # each its own rate window, all one database
        count = 0
        try:
            start.wait()
            for _ in range(attempts):
                try:
                    meter.admit(SESSION, Limits(daily_quota=quota), rows)
                    count += 1
                except QuotaExhausted:
                    pass
        except BaseException as error:  # reported below, not lost in the thread
            failures.append(error)
        admitted.append(count)

    threads = [threading.Thread(target=gateway) for _ in range(gateways)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sum(admitted) == quota // rows
    used = Meter(workspace).usage("acme", "northwind-acme", START.date())
    assert used == (sum(admitted) * rows, sum(admitted))
