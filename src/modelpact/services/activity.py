"""What the dashboard shows: partners, charters, models and their use, read from the store and
the audit log.

Nothing here reads a weight, a raw input or an output: the audit log holds digests, counts and
reasons, and that is what the views are made of.  A partner's view is built from its own
entries only.  The log is read from its newest entries backwards, at most
:data:`MAX_ENTRIES` of them, so a view costs the same however long the log has grown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelpact.audit.entries import (
    AccessEntry,
    AdminEntry,
    IncidentEntry,
    SessionEntry,
    decode_entry,
)
from modelpact.charter import Charter
from modelpact.errors import ModelpactError, NotFound
from modelpact.services.charters import CharterDesk
from modelpact.services.expiry import WARNING_WINDOW, expiring_within
from modelpact.services.workspace import Workspace

__all__ = [
    "MAX_ENTRIES",
    "Activity",
    "Grant",
    "LogLine",
    "Overview",
    "PartnerView",
    "Series",
    "is_limited",
]

#: The most log entries a view reads (the newest).
MAX_ENTRIES = 20_000
_LIMITS = ("rate limit of", "daily quota", "throttled to", "larger than the daily quota")


def is_limited(entry: AccessEntry) -> bool:
    """Whether a refusal was a limit (HTTP 429: rate, quota, throttle) rather than a denial."""
    return entry.decision == "deny" and any(m in r for r in entry.reasons for m in _LIMITS)


@dataclass(frozen=True)
class CharterLine:
    charter: str
    version: int
    partner: str
    status: str
    until: datetime | None
    days_left: int | None
    daily_quota: int | None
    requests_per_minute: int | None
    expiring: bool = False  # its window closes within the warning window


@dataclass(frozen=True)
class Grant:
    """One active grant, for the access review."""

    partner: str
    partner_status: str
    charter: str
    version: int
    model: str
    versions: str
    actions: tuple[str, ...]
    output: str
    purposes: tuple[str, ...]
    until: datetime | None


@dataclass(frozen=True)
class LogLine:
    """One audit entry as a page shows it: no values, only what the log holds."""

    index: int
    time: datetime
    kind: str
    actor: str
    action: str
    model: str
    decision: str
    rows: int
    detail: str
    covered: bool  # inside the latest signed checkpoint: provable now


@dataclass
class Series:
    """Per-hour counts over the last 24 hours (bucket starts in UNIX seconds)."""

    starts: list[int]
    requests: list[int]
    rows: list[int]
    denials: list[int]
    limited: list[int]

    def as_dict(self) -> dict[str, list[int]]:
        return {
            "starts": self.starts,
            "requests": self.requests,
            "rows": self.rows,
            "denials": self.denials,
            "limited": self.limited,
        }


@dataclass
class PartnerView:
    partner: str
    name: str
    status: str
    charters: list[CharterLine]
    rows_today: int
    requests_last_minute: int
    totals: dict[str, int]
    series: Series
    incidents: list[LogLine]
    recent: list[LogLine]
    protections: list[dict[str, Any]]
    expiring_days: int = WARNING_WINDOW

    @property
    def expiring(self) -> list[CharterLine]:
        """Its charters whose window closes within the warning window."""
        return [c for c in self.charters if c.expiring]


@dataclass
class Overview:
    partners: list[dict[str, Any]]
    charters: list[CharterLine]
    models: list[dict[str, Any]]
    log_size: int
    checkpoint_size: int | None
    checkpoint_time: datetime | None
    incidents: int = 0
    uses: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    expiring_days: int = WARNING_WINDOW

    @property
    def expiring(self) -> list[CharterLine]:
        """Charters in force whose window closes within the warning window."""
        return [c for c in self.charters if c.expiring]


class Activity:
    """The dashboard's read model over one workspace; ``expiring_days``: how close to its
    end a charter is flagged as expiring (the expiry sweep's widest warning)."""

    def __init__(self, workspace: Workspace, *, expiring_days: int | None = None) -> None:
        self._ws = workspace
        self.expiring_days = expiring_days or WARNING_WINDOW

    # -- reading -----------------------------------------------------------------------------

    def _entries(self) -> tuple[list[tuple[int, Any]], int, int | None, datetime | None]:
        """The newest entries (index, decoded), the log size and the latest checkpoint."""
        with self._ws.store.unit_of_work(read_only=True) as uow:
            size = uow.audit.size()
            records = uow.audit.entries(max(0, size - MAX_ENTRIES), size)
            checkpoint = uow.audit.latest_checkpoint()
        found = []
        for record in records:
            try:
                found.append((record.idx, decode_entry(record.entry)))
            except ModelpactError:
                continue  # an entry this version cannot read: shown by `audit verify`
        if checkpoint is None:
            return found, size, None, None
        return found, size, checkpoint.size, checkpoint.issued_at

    def _charters(self, partner: str | None = None) -> list[tuple[CharterLine, Charter]]:
        desk = CharterDesk(self._ws)
        now = self._ws.clock()
        found = []
        for record in desk.all():
            if partner is not None and record.partner_id != partner:
                continue
            if record.status != "active":
                continue
            _, charter = desk.get(record.charter_id, record.version)
            until = charter.valid.until
            found.append(
                (
                    CharterLine(
                        charter=record.charter_id,
                        version=record.version,
                        partner=record.partner_id,
                        status=record.status if charter.valid.contains(now) else "outside validity",
                        until=until,
                        days_left=None if until is None else max(0, (until - now).days),
                        daily_quota=charter.limits.daily_quota,
                        requests_per_minute=charter.limits.requests_per_minute,
                        expiring=expiring_within(until, now, self.expiring_days),
                    ),
                    charter,
                )
            )
        return found

    # -- views -------------------------------------------------------------------------------

    def overview(self) -> Overview:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            partners = list(uow.partners.list())
            models = list(uow.models.list_models())
            versions = {m.name: [v.version for v in uow.models.list_versions(m.name)]
                        for m in models}  # fmt: skip
        entries, size, checkpoint, at = self._entries()
        today = self._ws.clock().date()
        requests: Counter[str] = Counter()
        uses: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        incidents = 0
        for _, entry in entries:
            if isinstance(entry, AccessEntry):
                if entry.time.date() == today:
                    requests[entry.actor] += 1
                if entry.decision == "allow":
                    used = uses[entry.model][entry.version]
                    used[entry.actor] = used.get(entry.actor, 0) + entry.rows
            elif isinstance(entry, IncidentEntry):
                incidents += 1
        return Overview(
            partners=[
                {"id": p.id, "name": p.name, "status": p.status, "requests_today": requests[p.id]}
                for p in partners
            ],
            charters=[line for line, _ in self._charters()],
            models=[
                {"name": m.name, "served": m.served_version, "versions": versions[m.name]}
                for m in models
            ],
            log_size=size,
            checkpoint_size=checkpoint,
            checkpoint_time=at,
            incidents=incidents,
            uses={m: {v: dict(p) for v, p in by.items()} for m, by in uses.items()},
            expiring_days=self.expiring_days,
        )

    def partner(self, partner_id: str) -> PartnerView:
        """One partner's page: only its own entries."""
        with self._ws.store.unit_of_work(read_only=True) as uow:
            try:
                record = uow.partners.get(partner_id)
            except NotFound:
                raise NotFound(f"no partner named {partner_id}") from None
            protections = [p for p in uow.monitor.protections() if p.partner_id == partner_id]
        entries, _, checkpoint, _ = self._entries()
        now = self._ws.clock()
        hour = now.replace(minute=0, second=0, microsecond=0)
        starts = [hour - timedelta(hours=23 - i) for i in range(24)]
        series = Series([int(s.timestamp()) for s in starts], *([0] * 24 for _ in range(4)))
        totals: Counter[str] = Counter()
        recent: list[LogLine] = []
        incidents: list[LogLine] = []
        rows_today = last_minute = 0
        for index, entry in entries:
            if getattr(entry, "actor", None) != partner_id:
                continue
            line = _line(index, entry, checkpoint)
            if isinstance(entry, IncidentEntry):
                incidents.append(line)
            if not isinstance(entry, AccessEntry | SessionEntry | IncidentEntry):
                continue
            recent.append(line)
            if not isinstance(entry, AccessEntry):
                continue
            limited = is_limited(entry)
            totals["requests"] += 1
            totals["limited" if limited else entry.decision] += 1
            if entry.decision == "allow":
                totals["rows"] += entry.rows
                if entry.time.date() == now.date():
                    rows_today += entry.rows
            if now - entry.time < timedelta(minutes=1):
                last_minute += 1
            slot = int((entry.time - starts[0]).total_seconds() // 3600)
            if 0 <= slot < 24:
                series.requests[slot] += 1
                if entry.decision == "allow":
                    series.rows[slot] += entry.rows
                elif limited:
                    series.limited[slot] += 1
                else:
                    series.denials[slot] += 1
        return PartnerView(
            partner=record.id,
            name=record.name,
            status=record.status,
            charters=[line for line, _ in self._charters(partner_id)],
            rows_today=rows_today,
            requests_last_minute=last_minute,
            totals={k: totals[k] for k in ("requests", "rows", "allow", "deny", "limited")},
            series=series,
            incidents=list(reversed(incidents))[:50],
            recent=list(reversed(recent))[:30],
            protections=[
                {
                    "charter": p.charter_id,
                    "model": p.model,
                    "response": p.response,
                    "step": p.step,
                    "since": p.since,
                }
                for p in protections
            ],
            expiring_days=self.expiring_days,
        )

    def incidents(self) -> list[LogLine]:
        entries, _, checkpoint, _ = self._entries()
        return [_line(i, e, checkpoint) for i, e in reversed(entries)
                if isinstance(e, IncidentEntry)]  # fmt: skip

    def grants(self) -> list[Grant]:
        """Every grant of every active charter: the access review."""
        with self._ws.store.unit_of_work(read_only=True) as uow:
            status = {p.id: p.status for p in uow.partners.list()}
        found = []
        for line, charter in self._charters():
            for grant in charter.grants:
                found.append(
                    Grant(
                        partner=line.partner,
                        partner_status=status.get(line.partner, "unknown"),
                        charter=line.charter,
                        version=line.version,
                        model=grant.model,
                        versions=grant.versions,
                        actions=tuple(a.value for a in grant.actions),
                        output=grant.output.kind.value,
                        purposes=charter.purposes,
                        until=line.until,
                    )
                )
        return found


def _line(index: int, entry: Any, checkpoint: int | None) -> LogLine:
    covered = checkpoint is not None and index < checkpoint
    if isinstance(entry, AccessEntry):
        digest = entry.output_digest or entry.input_digest or ""
        detail = "; ".join(entry.reasons)[:160] if entry.decision == "deny" else digest[:23]
        return LogLine(index, entry.time, "access", entry.actor, entry.action, entry.model,
                       "limited" if is_limited(entry) else entry.decision, entry.rows, detail,
                       covered)  # fmt: skip
    if isinstance(entry, IncidentEntry):
        detail = f"{entry.detector}: {entry.statistic} over {entry.threshold} ({entry.severity})"
        return LogLine(index, entry.time, "incident", entry.actor, entry.response, entry.model,
                       f"step {entry.step}", 0, detail, covered)  # fmt: skip
    if isinstance(entry, SessionEntry):
        return LogLine(index, entry.time, "session", entry.actor, entry.action, "",
                       entry.decision, 0, "; ".join(entry.reasons)[:160], covered)  # fmt: skip
    if isinstance(entry, AdminEntry):
        return LogLine(index, entry.time, "admin", entry.actor, entry.action, entry.subject,
                       "", 0, "", covered)  # fmt: skip
    return LogLine(index, datetime.now(UTC), "other", "", "", "", "", 0, "", covered)
