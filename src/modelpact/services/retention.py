"""The end of retention: what a terminated charter left behind is pruned from the log.

A charter's exit terms name a retention period (``exit.retention_days``), counted from its
termination (the tombstone of the partner's data key says when that was).  Until it ends,
the log keeps every entry of the partner's use under the charter, and the watermark keys
stay for leak attribution.  Once it ends, :meth:`RetentionDesk.end`:

- prunes the charter's usage entries from the audit log — the partner's requests
  (``access``), the answers' shaping (``output``), its sessions (``session``) and the
  monitor's alarms (``incident``) under the charter, each with the charter's partner as
  its actor (an entry another party's claim made, such as a refused session open naming
  the charter, stays): each entry's payload is replaced by a
  :class:`~modelpact.audit.entries.PrunedEntry` marker and its leaf hash stays, so the
  tree, every checkpoint, every receipt and every other entry's inclusion proof still
  verify; one ``log.prune`` entry (appended first, in the same transaction) says which
  charter, how many of each kind, and the index range.  The owner's administrative
  entries (the charter applied, terminated, keys destroyed, the prune itself) stay: they
  are the record that the partnership existed and ended, and hold no partner activity;
- destroys the partner's watermark keys and marked queries once every charter of the
  partner is past its retention (:meth:`~modelpact.services.watermarking.WatermarkDesk.expire`,
  which ``modelpact watermark expire`` runs too).

A charter is pruned once: entries it gets later (refusals of a terminated partner) stay.
Which charters were pruned already is read from the log's ``log.prune`` entries
(:class:`AdminTrail`), so a restart, or a second sweeper, does not prune twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelpact.audit.entries import (
    PRUNE_ACTION,
    AccessEntry,
    AdminEntry,
    IncidentEntry,
    OutputEntry,
    SessionEntry,
    decode_entry,
)
from modelpact.audit.log import append_within, prune_within
from modelpact.errors import ModelpactError
from modelpact.services.charters import CharterDesk
from modelpact.services.exit import KEY_DESTROYED_ACTION
from modelpact.services.partner_keys import PartnerDataKeys
from modelpact.services.watermarking import WatermarkDesk
from modelpact.services.workspace import Workspace
from modelpact.store import CharterRecord, UnitOfWork

__all__ = ["EXPIRING_ACTION", "AdminTrail", "RetentionDesk", "RetentionEnd"]

#: The admin entry recording an expiry warning (see :mod:`modelpact.services.expiry`).
EXPIRING_ACTION = "charter.expiring"
#: Entries read per query while scanning the log.
_PAGE = 5000
_TRAIL_MARKERS = tuple(
    f'"{action}"'.encode() for action in (EXPIRING_ACTION, PRUNE_ACTION, KEY_DESTROYED_ACTION)
)


class AdminTrail:
    """What the log says the sweep did already: expiry warnings, partner data keys
    destroyed at exit, and prunes.

    Read incrementally: each :meth:`catch_up` reads only the entries appended since the
    last one (the first reads the whole log once), looking at nothing but these three
    kinds of admin entry.
    """

    def __init__(self) -> None:
        self.size = 0
        self.warned: set[tuple[str, int, int]] = set()  # (charter, version, threshold days)
        self.destroyed: set[str] = set()  # "partner/charter" of exit.data_key_destroyed
        self.pruned: set[str] = set()  # charters

    def catch_up(self, uow: UnitOfWork) -> None:
        size = uow.audit.size()
        while self.size < size:
            end = min(size, self.size + _PAGE)
            for record in uow.audit.entries(self.size, end):
                if any(marker in record.entry for marker in _TRAIL_MARKERS):
                    try:
                        entry = decode_entry(record.entry)
                    except ModelpactError:
                        continue  # `audit verify` names it
                    if isinstance(entry, AdminEntry):
                        self.take(entry)
            self.size = end

    def take(self, entry: AdminEntry) -> None:
        detail = entry.detail
        charter, version, days = detail.get("charter"), detail.get("version"), detail.get("days")
        if entry.action == EXPIRING_ACTION:
            if isinstance(charter, str) and isinstance(version, int) and isinstance(days, int):
                self.warned.add((charter, version, days))
        elif entry.action == KEY_DESTROYED_ACTION:
            self.destroyed.add(entry.subject)
        elif entry.action == PRUNE_ACTION and isinstance(charter, str):
            self.pruned.add(charter)


@dataclass(frozen=True)
class RetentionEnd:
    """One terminated charter whose retention period is over, and what was pruned."""

    charter: str
    partner: str
    terminated_at: datetime
    until: datetime
    pruned: Counter[str] = field(default_factory=Counter)  # entries, by kind
    prune_entry: int | None = None  # the log.prune entry's index (None: nothing to prune)

    @property
    def entries(self) -> int:
        return sum(self.pruned.values())


class RetentionDesk:
    """Ends the retention of terminated charters (see the module docstring)."""

    def __init__(self, workspace: Workspace, *, trail: AdminTrail | None = None) -> None:
        self._ws = workspace
        self._trail = trail or AdminTrail()

    def due(self) -> list[tuple[CharterRecord, datetime, datetime]]:
        """Terminated charters past their retention and not pruned yet, with their
        termination and the end of their retention."""
        ws = self._ws
        desk = CharterDesk(ws)
        keys = PartnerDataKeys(ws)
        now = ws.clock()
        found = []
        for record in desk.all():
            if record.status != "terminated" or record.charter_id in self._trail.pruned:
                continue
            tombstone = keys.tombstone(record.partner_id, record.charter_id)
            if tombstone is None:
                continue  # the exit did not finish: the expiry sweep completes it first
            days = desk.trusted(record).exit.retention_days
            until = tombstone.terminated_at + timedelta(days=days)
            if now >= until:
                found.append((record, tombstone.terminated_at, until))
        return found

    def end(self, *, actor: str = "expiry") -> tuple[list[RetentionEnd], list[str]]:
        """Prune every charter :meth:`due` names, then destroy the watermark keys that are
        due: what was pruned, and the partners whose watermark keys were destroyed."""
        ws = self._ws
        ended = []
        candidates = self.due()
        if candidates:
            with ws.store.unit_of_work(read_only=True) as uow:
                self._trail.catch_up(uow)
        for record, terminated_at, until in candidates:
            if record.charter_id in self._trail.pruned:
                continue
            ended.append(self._prune(record, terminated_at, until, actor=actor))
        destroyed = [e.partner for e in WatermarkDesk(ws).expire(actor=actor) if e.destroyed]
        return ended, destroyed

    def _prune(
        self, record: CharterRecord, terminated_at: datetime, until: datetime, *, actor: str
    ) -> RetentionEnd:
        charter, partner = record.charter_id, record.partner_id
        # Scanned outside the write transaction: entries never change but by pruning, and
        # a long scan must not hold the log's sequencer lock against live requests.
        victims, kinds = self._victims(charter, partner)
        ws = self._ws
        with ws.store.unit_of_work() as uow:
            uow.audit.lock_for_append()
            self._trail.catch_up(uow)
            if charter in self._trail.pruned:  # another sweeper was first
                return RetentionEnd(charter, partner, terminated_at, until)
            now = ws.clock()
            detail: dict[str, str | int] = {
                "charter": charter,
                "partner": partner,
                "terminated_at": terminated_at.isoformat(),
                "retention_days": (until - terminated_at).days,
                **dict(sorted(kinds.items())),
            }
            if victims:
                index = prune_within(
                    uow, victims, actor=actor, subject=charter, now=now, **detail
                ).index
            else:  # nothing of the partner's use is left: recorded all the same, done once
                entry = AdminEntry(
                    time=now,
                    actor=actor,
                    subject=charter,
                    action=PRUNE_ACTION,
                    detail={**detail, "entries": 0},
                )
                index = append_within(uow, [entry], now=now)[0].index
        self._trail.pruned.add(charter)
        return RetentionEnd(charter, partner, terminated_at, until, kinds, index)

    def _victims(
        self, charter: str, partner: str
    ) -> tuple[dict[int, tuple[str, str]], Counter[str]]:
        """The partner's usage entries under the charter: index -> (actor, charter), and how
        many of each kind.  Only entries whose actor is the charter's partner: a refused
        session open records whoever the request *claimed* to be, with the charter it
        named, and another party's attempt is not this partner's to have forgotten."""
        needle = f'"charter":"{charter}"'.encode()
        output = b'"type":"output"'
        victims: dict[int, tuple[str, str]] = {}
        kinds: Counter[str] = Counter()
        with self._ws.store.unit_of_work(read_only=True) as uow:
            size = uow.audit.size()
        start = 0
        while start < size:
            end = min(size, start + _PAGE)
            with self._ws.store.unit_of_work(read_only=True) as uow:
                records = uow.audit.entries(start, end)
            for record in records:
                if needle not in record.entry and output not in record.entry:
                    continue
                try:
                    entry = decode_entry(record.entry)
                except ModelpactError:
                    continue
                if isinstance(entry, AccessEntry | SessionEntry | IncidentEntry):
                    if entry.charter == charter and entry.actor == partner:
                        victims[record.idx] = (partner, charter)
                        kinds[entry.type] += 1
                elif isinstance(entry, OutputEntry) and entry.request in victims:
                    victims[record.idx] = (victims[entry.request][0], charter)
                    kinds[entry.type] += 1
            start = end
        return victims, kinds
