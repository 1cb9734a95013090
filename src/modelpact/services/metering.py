"""Metering: the charter's request rate and daily quota, checked before a model runs.

:meth:`Meter.admit` checks, in this order:

1. ``limits.requests_per_minute``, per partner and charter, in memory: a moving
   window (the ``limits`` package over its ``MemoryStorage``), so no burst at a
   window's edge.  It is per process: N gateway replicas admit up to N times
   the rate.  The ``limits`` package reads the wall clock (``time.time``)
   itself, so this window follows the host's clock, not ``workspace.clock()``.
2. ``limits.daily_quota``, prediction rows per UTC day of ``workspace.clock()``,
   kept in the database: one conditional upsert adds the request's rows only
   if the day's total stays within the quota, so gateways sharing a database
   can never overshoot it together.  Without a quota nothing is written per
   request (that would cost a durable commit each): the audit log's access
   entries already record every request and its rows.

Both refusals raise :class:`~modelpact.errors.QuotaExhausted` with
``retry_after`` in seconds (HTTP 429 and its ``Retry-After``): until a slot of
the window frees, or until the next midnight UTC.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, date, datetime, timedelta

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from modelpact.charter import Limits, OutputKind, OutputPolicy
from modelpact.errors import BudgetExhausted, InvalidInput, QuotaExhausted
from modelpact.services.sessions import ActiveSession
from modelpact.services.workspace import Workspace

__all__ = ["Meter", "micro"]

#: The shortest wait ever announced: a refusal always asks the caller to wait a little.
_MIN_RETRY_AFTER = 0.001


def micro(epsilon: float) -> int:
    """Epsilon in whole micro-units, rounded up: a spend is never counted as less."""
    return math.ceil(epsilon * 1_000_000 - 1e-6)


def _round_up(seconds: float) -> float:
    """Seconds rounded up to the millisecond, and never below :data:`_MIN_RETRY_AFTER`."""
    return max(math.ceil(seconds * 1000) / 1000, _MIN_RETRY_AFTER)


class Meter:
    """Admits or refuses each request against its charter's limits.  Thread-safe; one per
    gateway process (the rate window lives in its memory)."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._rate = MovingWindowRateLimiter(MemoryStorage())

    def admit(self, session: ActiveSession, limits: Limits, rows: int) -> None:
        """Count one request of ``rows`` prediction rows, or raise ``QuotaExhausted``.

        A request refused by the rate limit is not counted in the daily usage;
        one refused by the daily quota has used its slot of the rate window.
        """
        self.check_rate(session, limits)
        self.count(session, limits, rows)

    def check_rate(self, session: ActiveSession, limits: Limits) -> None:
        """Take one slot of the request-rate window, or raise ``QuotaExhausted``."""
        if limits.requests_per_minute is not None:
            self._check_rate(session, limits.requests_per_minute)

    def check_throttle(self, session: ActiveSession, model: str, per_minute: int) -> None:
        """Take one slot of the lower rate the extraction monitor set for ``model``, or raise
        ``QuotaExhausted``."""
        item = RateLimitItemPerMinute(per_minute)
        keys = (session.partner, session.charter, model, "throttle")
        if self._rate.hit(item, *keys):
            return
        window = self._rate.get_window_stats(item, *keys)
        raise QuotaExhausted(
            f"throttled to {per_minute} requests per minute on {model} by the extraction "
            f"monitor under charter {session.charter}",
            retry_after=_round_up(window.reset_time - time.time()),
            hint="the owner lifts it with 'modelpact monitor clear'",
        )

    def spend_privacy(
        self, session: ActiveSession, model: str, policy: OutputPolicy, rows: int
    ) -> None:
        """Spend ``rows`` answers' epsilon of a noised grant's budget, durably, before the
        model runs; ``BudgetExhausted`` if that would pass the charter's budget."""
        if policy.kind is not OutputKind.NOISED_SCORES or policy.budget is None:
            return
        assert policy.epsilon is not None  # the charter model requires it
        cost, limit = micro(policy.epsilon) * rows, micro(policy.budget)
        with self._ws.store.unit_of_work() as uow:
            total = uow.privacy.spend(session.partner, session.charter, model, cost, limit)
            spent = (
                total
                if total is not None
                else uow.privacy.spent(session.partner, session.charter, model)
            )
        if total is None:
            left = (limit - spent) / 1e6
            raise BudgetExhausted(
                f"the privacy budget of {policy.budget:g} on {model} under charter "
                f"{session.charter} cannot pay for {rows} more answers at epsilon "
                f"{policy.epsilon:g} ({left:g} left)",
                hint="ask the owner for a new charter version with a larger budget",
            )

    def privacy_left(self, partner: str, charter: str, model: str, policy: OutputPolicy) -> float:
        """What is left of a noised grant's budget (inf without a budget)."""
        if policy.budget is None:
            return math.inf
        with self._ws.store.unit_of_work(read_only=True) as uow:
            spent = uow.privacy.spent(partner, charter, model)
        return max(micro(policy.budget) - spent, 0) / 1e6

    def count(self, session: ActiveSession, limits: Limits, rows: int) -> None:
        """Add ``rows`` to the day's durable usage, or raise ``QuotaExhausted``."""
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise InvalidInput(f"rows must be a non-negative integer: {rows!r}")
        self._count(session, limits.daily_quota, rows)

    def _check_rate(self, session: ActiveSession, per_minute: int) -> None:
        item = RateLimitItemPerMinute(per_minute)
        if self._rate.hit(item, session.partner, session.charter):
            return
        window = self._rate.get_window_stats(item, session.partner, session.charter)
        raise QuotaExhausted(
            f"rate limit of {per_minute} requests per minute reached under charter "
            f"{session.charter}",
            retry_after=_round_up(window.reset_time - time.time()),
            hint="slow down; the charter's limits.requests_per_minute sets the rate",
        )

    def _count(self, session: ActiveSession, quota: int | None, rows: int) -> None:
        now = self._ws.clock().astimezone(UTC)
        day = now.date()
        if quota is not None and rows > quota:
            raise QuotaExhausted(
                f"a batch of {rows} rows is larger than the daily quota of {quota} rows "
                f"under charter {session.charter}",
                hint="send smaller batches",
            )
        if quota is None:
            # Nothing to enforce: no durable write (an fsync) on every request.  What was
            # used is in the audit log's access entries (rows, allowed or not).
            return
        with self._ws.store.unit_of_work() as uow:
            admitted = uow.usage.add_usage(
                session.partner, session.charter, day, rows=rows, requests=1, limit_rows=quota
            )
        if not admitted:
            midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
            raise QuotaExhausted(
                f"daily quota of {quota} rows used up under charter {session.charter}",
                retry_after=_round_up((midnight - now).total_seconds()),
                hint="the quota renews at midnight UTC",
            )

    def usage(self, partner: str, charter: str, day: date) -> tuple[int, int]:
        """``(rows, requests)`` the partner used under the charter on the UTC ``day``."""
        with self._ws.store.unit_of_work() as uow:
            record = uow.usage.usage(partner, charter, day)
        return record.rows, record.requests
