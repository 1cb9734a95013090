"""Access reviews: every grant in force, how it is used, and the reviewer's decision on it.

:meth:`ReviewDesk.report` lists each grant of each active charter with its last use (the
partner's latest *allowed* access entry on the model under that charter id), its volume
(allowed requests and rows in the last ``window_days`` and in total), its incidents and its
expiry, and flags it:

- ``unused``: no allowed access in the last ``unused_days``, though the charter id has been
  in force at least that long (a grant applied yesterday is not "unused" yet);
- ``expiring``: the charter's ``valid.until`` is less than ``expiring_days`` away;
- ``expired``: ``valid.until`` has passed (the gateway refuses it already; the charter is
  still marked active until it is replaced or terminated).

Everything is read from the audit log's access and incident entries (access entries name the
charter id, not its version: uses under earlier versions of the same charter count), newest
first, at most ``max_entries`` of them; :attr:`Review.scanned_from` says where reading
stopped, so a report over a longer log says that its totals are partial.

:meth:`ReviewDesk.decide` records a decision on one grant as a ``review.decision`` admin
entry.  ``suspend`` and ``revoke`` are carried out on the partner first (through
:meth:`PartnerDirectory.change_status`, whose own ``partner.*`` entry carries the reason);
``keep`` and ``narrow`` are only recorded (``narrow``: the owner amends the charter, a new
version signed by both parties).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from modelpact.audit.entries import AccessEntry, IncidentEntry, decode_entry
from modelpact.errors import InvalidInput, ModelpactError, NotFound
from modelpact.services.activity import Activity, Grant
from modelpact.services.charters import CharterDesk
from modelpact.services.events import record_event
from modelpact.services.partners import PartnerDirectory
from modelpact.services.workspace import Workspace

__all__ = [
    "DECISIONS",
    "MAX_ENTRIES",
    "Decision",
    "Review",
    "ReviewDesk",
    "ReviewRow",
    "Verdict",
]

Decision = Literal["keep", "narrow", "suspend", "revoke"]
#: What a reviewer may decide, in order of severity.
DECISIONS: tuple[Decision, ...] = get_args(Decision)
#: The decisions carried out on the partner (the others are only recorded).
_ON_PARTNER = {"suspend": "suspend", "revoke": "revoke"}
#: The most audit entries a review reads (the newest), and how many per read.
MAX_ENTRIES = 1_000_000
_PAGE = 5_000
_MAX_REASON = 500
_MAX_NAME = 200
# Canonical JSON writes these exactly so (a quote inside a string is escaped), so the
# markers skip other entries without decoding them; a false hit is only decoded for nothing.
_WANTED = (b'"type":"access"', b'"type":"incident"')

_Key = tuple[str, str, str]  # partner, charter id, model


@dataclass(frozen=True)
class ReviewRow:
    """One grant in force and what the log says of its use."""

    grant: Grant
    in_force_since: datetime | None  # the charter id's first version applied
    last_use: datetime | None
    rows_window: int
    requests_window: int
    denied_window: int
    rows_total: int
    requests_total: int
    incidents: int
    last_incident: datetime | None
    days_left: int | None  # whole days to valid.until (negative once past)
    flags: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        g = self.grant
        return {
            "partner": g.partner,
            "partner_status": g.partner_status,
            "charter": g.charter,
            "version": g.version,
            "model": g.model,
            "versions": g.versions,
            "actions": list(g.actions),
            "output": g.output,
            "in_force_since": _iso(self.in_force_since),
            "last_use": _iso(self.last_use),
            "window": {
                "rows": self.rows_window,
                "requests": self.requests_window,
                "denied": self.denied_window,
            },
            "total": {"rows": self.rows_total, "requests": self.requests_total},
            "incidents": self.incidents,
            "last_incident": _iso(self.last_incident),
            "until": _iso(g.until),
            "days_left": self.days_left,
            "flags": list(self.flags),
        }


@dataclass(frozen=True)
class Review:
    """A report: its rows and what it was computed over."""

    now: datetime
    window_days: int
    unused_days: int
    expiring_days: int
    rows: list[ReviewRow]
    log_size: int
    scanned_from: int  # the oldest log index read; 0 when the whole log was

    @property
    def complete(self) -> bool:
        return self.scanned_from == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": _iso(self.now),
            "window_days": self.window_days,
            "unused_days": self.unused_days,
            "expiring_days": self.expiring_days,
            "log": {
                "size": self.log_size,
                "scanned_from": self.scanned_from,
                "complete": self.complete,
            },
            "grants": [row.as_dict() for row in self.rows],
        }


@dataclass(frozen=True)
class Verdict:
    """A recorded decision: the grant, what was decided and where it landed in the log."""

    grant: Grant
    decision: Decision
    reason: str
    reviewer: str
    partner_status: str  # after the decision
    index: int  # the review.decision entry's log index


@dataclass
class _Use:
    last_use: datetime | None = None
    rows_window: int = 0
    requests_window: int = 0
    denied_window: int = 0
    rows_total: int = 0
    requests_total: int = 0
    incidents: int = 0
    last_incident: datetime | None = None


class ReviewDesk:
    """The owner's access review over one workspace."""

    def __init__(self, workspace: Workspace, *, max_entries: int = MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise InvalidInput("a review must read at least one log entry")
        self._ws = workspace
        self._max = max_entries

    def report(
        self,
        now: datetime,
        unused_days: int = 30,
        expiring_days: int = 14,
        *,
        window_days: int = 30,
    ) -> Review:
        """Every grant in force with its use, incidents, expiry and flags, as of ``now``."""
        for name, value in (
            ("unused days", unused_days),
            ("expiring days", expiring_days),
            ("window days", window_days),
        ):
            if value < 0:
                raise InvalidInput(f"{name} must be 0 or more, not {value}")
        grants = Activity(self._ws).grants()
        since = self._in_force_since()
        wanted = {(g.partner, g.charter, g.model) for g in grants}
        uses: dict[_Key, _Use] = {key: _Use() for key in wanted}
        window_start = now - timedelta(days=window_days)
        size, oldest = self._log_size()
        for entry in self._read(size, oldest):
            key = (entry.actor, entry.charter, entry.model)
            use = uses.get(key)
            if use is None or entry.time > now:
                continue
            if isinstance(entry, IncidentEntry):
                use.incidents += 1
                use.last_incident = _later(use.last_incident, entry.time)
                continue
            recent = entry.time >= window_start
            if entry.decision != "allow":
                if recent:
                    use.denied_window += 1
                continue
            use.last_use = _later(use.last_use, entry.time)
            use.requests_total += 1
            use.rows_total += entry.rows
            if recent:
                use.requests_window += 1
                use.rows_window += entry.rows
        rows = []
        for grant in grants:
            use = uses[(grant.partner, grant.charter, grant.model)]
            start = since.get(grant.charter)
            left = None if grant.until is None else _days(grant.until - now)
            rows.append(
                ReviewRow(
                    grant=grant,
                    in_force_since=start,
                    last_use=use.last_use,
                    rows_window=use.rows_window,
                    requests_window=use.requests_window,
                    denied_window=use.denied_window,
                    rows_total=use.rows_total,
                    requests_total=use.requests_total,
                    incidents=use.incidents,
                    last_incident=use.last_incident,
                    days_left=left,
                    flags=_flags(grant, use, start, now, unused_days, expiring_days),
                )
            )
        rows.sort(key=lambda r: (r.grant.partner, r.grant.charter, r.grant.model))
        return Review(now, window_days, unused_days, expiring_days, rows, size, oldest)

    def decide(
        self,
        charter: str,
        model: str,
        decision: str,
        *,
        reason: str,
        reviewer: str = "owner",
    ) -> Verdict:
        """Record ``decision`` on the grant of ``model`` in the active version of ``charter``.

        ``suspend`` and ``revoke`` change the partner's status first; if that is refused (a
        revoked partner cannot be suspended), nothing is recorded.  A grant that does not
        exist or is not in force is refused the same way.
        """
        chosen = next((d for d in DECISIONS if d == decision), None)
        if chosen is None:
            raise InvalidInput(
                f"unknown decision {decision!r}", hint=f"use one of: {', '.join(DECISIONS)}"
            )
        reason = reason.strip()
        if not reason or len(reason) > _MAX_REASON or not reason.isprintable():
            raise InvalidInput(
                f"a decision needs a reason: 1 to {_MAX_REASON} printable characters"
            )
        reviewer = reviewer.strip()
        if not reviewer or len(reviewer) > _MAX_NAME or not reviewer.isprintable():
            raise InvalidInput(f"reviewer must be 1 to {_MAX_NAME} printable characters")
        grant = self._grant(charter, model)
        status = grant.partner_status
        verb = _ON_PARTNER.get(chosen)
        if verb is not None:
            status = (
                PartnerDirectory(self._ws)
                .change_status(
                    grant.partner, verb, actor=reviewer, reason=f"access review: {reason}"
                )
                .status
            )
        ws = self._ws
        with ws.store.unit_of_work() as uow:
            receipt = record_event(
                ws,
                uow,
                actor=reviewer,
                kind="review.decision",
                subject=f"{grant.partner}/{grant.charter}/{grant.model}",
                partner=grant.partner,
                charter=grant.charter,
                version=grant.version,
                model=grant.model,
                decision=chosen,
                reason=reason,
                reviewer=reviewer,
            )
        return Verdict(grant, chosen, reason, reviewer, status, receipt.index)

    # -- reading -----------------------------------------------------------------------------

    def _grant(self, charter: str, model: str) -> Grant:
        for grant in Activity(self._ws).grants():
            if grant.charter == charter and grant.model == model:
                return grant
        try:
            record, _ = CharterDesk(self._ws).get(charter)
        except NotFound:
            raise NotFound(f"no charter named {charter}") from None
        if record.status != "active":
            raise InvalidInput(
                f"charter {charter} is {record.status} (latest version {record.version}); "
                "only grants in force can be reviewed"
            )
        raise NotFound(f"charter {charter} v{record.version} grants no model {model}")

    def _in_force_since(self) -> dict[str, datetime]:
        """When each charter id's first version was applied."""
        first: dict[str, datetime] = {}
        for record in CharterDesk(self._ws).all():
            known = first.get(record.charter_id)
            if known is None or record.applied_at < known:
                first[record.charter_id] = record.applied_at
        return first

    def _log_size(self) -> tuple[int, int]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            size = uow.audit.size()
        return size, max(0, size - self._max)

    def _read(self, size: int, oldest: int) -> Iterator[AccessEntry | IncidentEntry]:
        """Access and incident entries in ``[oldest, size)``, newest page first."""
        end = size
        while end > oldest:
            start = max(oldest, end - _PAGE)
            with self._ws.store.unit_of_work(read_only=True) as uow:
                records = uow.audit.entries(start, end)
            for record in reversed(records):
                if not any(marker in record.entry for marker in _WANTED):
                    continue
                try:
                    entry = decode_entry(record.entry)
                except ModelpactError:
                    continue  # an entry this version cannot read: `audit verify` shows it
                if isinstance(entry, AccessEntry | IncidentEntry):
                    yield entry
            end = start


def _flags(
    grant: Grant,
    use: _Use,
    since: datetime | None,
    now: datetime,
    unused_days: int,
    expiring_days: int,
) -> tuple[str, ...]:
    flags = []
    period = timedelta(days=unused_days)
    old_enough = since is not None and now - since >= period
    if old_enough and (use.last_use is None or now - use.last_use >= period):
        flags.append("unused")
    if grant.until is not None:
        if grant.until <= now:
            flags.append("expired")
        elif grant.until - now <= timedelta(days=expiring_days):
            flags.append("expiring")
    return tuple(flags)


def _days(delta: timedelta) -> int:
    """Whole days, rounded towards zero (a charter ending in 36 hours has 1 day left)."""
    days = abs(delta) // timedelta(days=1)
    return days if delta >= timedelta(0) else -days


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")
