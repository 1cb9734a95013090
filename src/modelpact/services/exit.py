"""A clean exit: terminate a charter, shred its partner's data, sign an exit report.

:meth:`ExitDesk.terminate` does, in this order (each step safe to interrupt; running it
again on a terminated charter completes what is missing and issues the report again):

1. **one transaction** — the charter's status becomes ``terminated`` (the policy engine
   and the state cache only ever serve active charters, so the very next request under
   it is refused and audited as a deny by the gateway), every session of the partner
   under it is revoked, the extraction monitor's sealed watch states of the charter are
   deleted, and two audit entries land with it: ``charter.terminate`` (with the reason)
   and ``exit.watch_states_deleted``;
2. **crypto-shredding** — the partner's data key under the charter
   (:class:`~modelpact.services.partner_keys.PartnerDataKeys`) is destroyed and leaves a
   tombstone; every record sealed under it (watch states, and any copy of them in a
   backup) can no longer be opened; audit entry ``exit.data_key_destroyed``;
3. **a signed checkpoint** covering those entries, and the **exit report**
   (:class:`ExitReport`): what was shared, the usage, the incidents, the final checkpoint
   with an inclusion proof of the termination entry, what was destroyed and when, what
   is kept until when, and who owns the outputs; canonical JSON (RFC 8785) signed by the
   workspace's owner key under the prefix :data:`REPORT_PREFIX`.

Kept, not destroyed at exit: the partner's watermark keys and the queries its watermark
marked, and the partner's entries in the audit log (append-only; it holds digests, never
raw inputs) — until the retention period, counted from the termination, ends; then the
expiry sweep (:mod:`modelpact.services.retention`) destroys the keys and prunes the
entries (their leaf hashes stay, so the log still verifies).

:meth:`ExitDesk.terminate_expired` runs the same exit for every active charter whose
validity window has closed (the charter's exit terms apply the same way); the expiry
sweep (:mod:`modelpact.services.expiry`) ends them the same way on its own, one charter at
a time, and writes the reports.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelpact.audit.entries import (
    TERMINATE_ACTION,
    AccessEntry,
    AdminEntry,
    IncidentEntry,
    SessionEntry,
    decode_entry,
)
from modelpact.audit.log import Receipt, append_within
from modelpact.charter import Charter
from modelpact.crypto import canonical_json
from modelpact.errors import InvalidInput, NotFound
from modelpact.services.audit import AuditDesk
from modelpact.services.charters import CharterDesk
from modelpact.services.owner_keys import handover_evidence
from modelpact.services.partner_keys import PartnerDataKeys, Tombstone
from modelpact.services.watermarking import WatermarkDesk
from modelpact.services.workspace import Workspace
from modelpact.store import CharterRecord, UnitOfWork

__all__ = [
    "KEY_DESTROYED_ACTION",
    "OUTPUT_OWNERSHIP",
    "REPORT_FORMAT",
    "REPORT_PREFIX",
    "ExitDesk",
    "ExitReport",
]

#: The report's format name; the signature covers ``REPORT_PREFIX + canonical_json(report)``.
REPORT_FORMAT = "modelpact-exit-report/v1"
REPORT_PREFIX = b"modelpact-exit-report/v1\n"
#: The charter schema names no owner for outputs; this is the default the SPEC implies.
OUTPUT_OWNERSHIP = {
    "basis": "default: the charter names no output ownership, so the SPEC's default applies",
    "models": "the owner's: weights, artifacts and watermark keys never left the owner",
    "outputs": (
        "the partner's: the predictions it received, for the charter's purposes; they carry "
        "the owner's watermark, and training a copy of a model from them is a breach"
    ),
    "inputs": "the partner's: the log keeps digests of inputs, never the inputs",
}

_TERMINATE = TERMINATE_ACTION
_WATCHES = "exit.watch_states_deleted"
#: The admin entry that records the partner's data key destroyed (subject ``partner/charter``).
KEY_DESTROYED_ACTION = "exit.data_key_destroyed"
_KEY = KEY_DESTROYED_ACTION
_REASON = 500


@dataclass(frozen=True, slots=True)
class ExitReport:
    """A terminated charter's signed exit report: ``text`` is what goes in the file."""

    charter: str
    partner: str
    terminated_at: datetime
    resumed: bool  # the charter was terminated before; this run completed it
    document: dict[str, Any]  # the signed report
    text: str


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _admin(now: datetime, actor: str, action: str, subject: str, **detail: Any) -> AdminEntry:
    return AdminEntry(time=now, actor=actor, subject=subject, action=action, detail=detail)


class ExitDesk:
    """Where the owner ends a partnership."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    # -- the exit ---------------------------------------------------------------------------

    def terminate(self, charter_id: str, *, reason: str, actor: str = "owner") -> ExitReport:
        """Terminate the charter now (see the module docstring); the signed exit report.

        :class:`~modelpact.errors.NotFound` for an unknown charter; a charter terminated
        before is completed and reported again (with its first reason and time).
        """
        reason = reason.strip()
        if not reason:
            raise InvalidInput("say why the charter ends (--reason)")
        ws = self._ws
        desk = CharterDesk(ws)
        now = ws.clock()
        resumed = False
        with ws.store.unit_of_work() as uow:
            uow.audit.lock_for_append()  # two owners terminating at once: one goes first
            latest = self._latest(uow, charter_id)
            charter = desk.trusted(latest)
            if latest.status == "terminated":
                resumed = True
            elif latest.status != "active":
                raise InvalidInput(f"{charter.ref} is {latest.status}; it cannot be terminated")
            else:
                self._end(uow, latest, charter, reason=reason[:_REASON], actor=actor, now=now)
        partner = latest.partner_id
        found = self._scan(charter_id, partner)
        start = found.terminate
        if start is None:
            raise NotFound(
                f"{charter.ref} is terminated but its termination is not in the audit log",
                hint="the database was changed outside modelpact; restore it from a backup",
            )
        terminated_at = start[1].time
        tombstone = PartnerDataKeys(ws).destroy(partner, charter_id, terminated_at=terminated_at)
        if found.key_destroyed is None:
            with ws.store.unit_of_work() as uow:
                receipt = self._append(
                    uow,
                    _admin(
                        ws.clock(), actor, _KEY, f"{partner}/{charter_id}",
                        key=PartnerDataKeys.name(partner, charter_id),
                        destroyed_at=tombstone.destroyed_at.isoformat(),
                    ),
                )[0]  # fmt: skip
            found.key_destroyed = receipt.index
        signer = ws.signing_key()  # the key in force, should a handover have happened since
        document = self._report(charter_id, partner, found, tombstone)
        signature = signer.sign(REPORT_PREFIX + canonical_json(document))
        envelope = {
            "format": REPORT_FORMAT,
            "report": document,
            "signature": {
                "key": signer.verify_key.encode(),
                "value": base64.b64encode(signature).decode("ascii"),
            },
        }
        text = json.dumps(envelope, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        return ExitReport(charter_id, partner, terminated_at, resumed, document, text)

    def terminate_expired(self, *, actor: str = "expiry") -> list[ExitReport]:
        """Run the exit for every active charter whose validity window has closed."""
        now = self._ws.clock()
        desk = CharterDesk(self._ws)
        reports = []
        for record in desk.all():
            if record.status != "active":
                continue
            until = desk.trusted(record).valid.until
            if until is not None and now >= until:
                reason = f"the charter expired at {until.isoformat()}"
                reports.append(self.terminate(record.charter_id, reason=reason, actor=actor))
        return reports

    def leftovers(self, partner: str, charter_id: str) -> list[str]:
        """What of the partner's data key under the charter is not shredded yet: the first
        generation's name while no tombstone stands in its place, and every later
        generation and encryption counter left (a destruction interrupted after its
        tombstone leaves them).  The exit is complete when this is empty *and* the log
        holds its ``exit.data_key_destroyed`` entry (the expiry sweep checks both)."""
        artifacts = self._ws.artifacts
        left = []
        if PartnerDataKeys(self._ws).tombstone(partner, charter_id) is None:
            left.append(PartnerDataKeys.name(partner, charter_id))
        for folder in (
            PartnerDataKeys.name(partner, charter_id, 2).rpartition("/")[0],
            PartnerDataKeys.counter(partner, charter_id, 1).rpartition("/")[0],
        ):
            left.extend(artifacts.keys(folder))
        return left

    @staticmethod
    def _latest(uow: UnitOfWork, charter_id: str) -> CharterRecord:
        try:
            return uow.charters.current(charter_id)
        except NotFound:
            raise NotFound(
                f"no charter {charter_id}", hint="see 'modelpact charter list'"
            ) from None

    def _end(
        self,
        uow: UnitOfWork,
        latest: CharterRecord,
        charter: Charter,
        *,
        reason: str,
        actor: str,
        now: datetime,
    ) -> list[Receipt]:
        """Step 1, in the caller's transaction."""
        partner, charter_id = latest.partner_id, latest.charter_id
        uow.charters.set_status(charter_id, latest.version, "terminated")
        revoked = uow.sessions.revoke_charter(partner, charter_id, now)
        models = sorted(self._granted_models(uow, charter_id, partner))
        deleted = sum(uow.monitor.delete_state(partner, charter_id, m) for m in models)
        return self._append(
            uow,
            _admin(
                now, actor, _TERMINATE, charter.ref,
                reason=reason, partner=partner, sessions_revoked=revoked,
                retention_days=charter.exit.retention_days,
            ),
            _admin(now, actor, _WATCHES, f"{partner}/{charter_id}", deleted=deleted),
        )  # fmt: skip

    def _granted_models(self, uow: UnitOfWork, charter_id: str, partner: str) -> set[str]:
        desk = CharterDesk(self._ws)
        records = uow.charters.list(partner_id=partner)
        return {
            grant.model
            for record in records
            if record.charter_id == charter_id
            for grant in desk.trusted(record).grants
        }

    def _append(self, uow: UnitOfWork, *entries: AdminEntry) -> list[Receipt]:
        return append_within(uow, entries, now=self._ws.clock())

    # -- the report -------------------------------------------------------------------------

    def _scan(self, charter_id: str, partner: str) -> _Found:
        """Everything the log says about the charter: one pass over it."""
        found = _Found()
        with self._ws.store.unit_of_work(read_only=True) as uow:
            records = uow.audit.entries(0, uow.audit.size())
        for record in records:
            entry = decode_entry(record.entry)
            found.take(record.idx, record.entry, entry, charter_id, partner)
        return found

    def _report(
        self, charter_id: str, partner: str, found: _Found, tombstone: Tombstone
    ) -> dict[str, Any]:
        ws = self._ws
        desk = CharterDesk(ws)
        assert found.terminate is not None
        index, entry, blob = found.terminate[0], found.terminate[1], found.terminate[2]
        with ws.store.unit_of_work(read_only=True) as uow:
            records = [
                r for r in uow.charters.list(partner_id=partner) if r.charter_id == charter_id
            ]
            totals = [t for t in uow.usage.totals(partner_id=partner) if t.charter_id == charter_id]
            watermarked = uow.watermarks.key(partner) is not None
        versions = []
        latest: Charter | None = None
        for record in sorted(records, key=lambda r: r.version):
            charter = desk.trusted(record)
            latest = charter
            versions.append(
                {
                    "version": record.version,
                    "digest": record.digest,
                    "status": record.status,
                    "applied_at": _iso(record.applied_at),
                    "valid": {
                        "from": _iso(charter.valid.from_),
                        "until": _iso(charter.valid.until),
                    },
                    "purposes": list(charter.purposes),
                    "grants": [
                        g.model_dump(mode="json", by_alias=True, exclude_none=True)
                        for g in charter.grants
                    ],
                }
            )
        assert latest is not None
        retention_days = latest.exit.retention_days
        retained_until = entry.time + timedelta(days=retention_days)
        ws.checkpoint()  # signed now: it covers the termination and the destructions
        evidence = AuditDesk(ws).prove(index)
        kept: list[dict[str, Any]] = [
            {
                "what": "audit log",
                "until": retained_until.isoformat(),
                "note": (
                    "append-only and verifiable; it holds digests of inputs and outputs, never "
                    "the inputs; once the retention ends, the partner's entries under this "
                    "charter are pruned (payload replaced, leaf hash kept: every checkpoint "
                    "and proof still verifies) by the expiry sweep"
                ),
            }
        ]
        if watermarked:
            until = WatermarkDesk(ws).retained_until(partner)
            kept.insert(
                0,
                {
                    "what": f"watermark keys of {partner} and the queries its watermark marked",
                    "until": _iso(until),
                    "note": (
                        "kept for leak attribution; destroyed by 'modelpact watermark expire' "
                        "once every charter of the partner is past its retention"
                    ),
                },
            )
        usage = [
            {"model": m, "version": v, "requests": n, "rows": found.rows[(m, v)]}
            for (m, v), n in sorted(found.requests.items())
        ]
        return {
            "format": REPORT_FORMAT,
            "issued_at": ws.clock().isoformat(),
            "owner": {"key": ws.owner_verify_key.encode(), "log": ws.log_origin},
            "charter": {
                "id": charter_id,
                "partner": partner,
                "objective": latest.objective,
                "versions": versions,
            },
            "terminated": {
                "at": entry.time.isoformat(),
                "by": entry.actor,
                "reason": entry.detail.get("reason"),
                "sessions_revoked": entry.detail.get("sessions_revoked"),
                "entry": index,
            },
            "usage": {
                "models": usage,
                "requests": sum(found.requests.values()),
                "rows": sum(found.rows.values()),
                "denials": sum(found.denials.values()),
                "denials_by_model": dict(sorted(found.denials.items())),
                "sessions_opened": found.sessions_opened,
                "sessions_refused": found.sessions_refused,
                "metered": {
                    "requests": sum(t.requests for t in totals),
                    "rows": sum(t.rows for t in totals),
                    "first_day": _iso_day(min((t.first_day for t in totals), default=None)),
                    "last_day": _iso_day(max((t.last_day for t in totals), default=None)),
                },
            },
            "incidents": found.incidents,
            "destroyed": [
                {
                    "what": "extraction-monitor watch states of the charter (partner queries)",
                    "count": found.watches_deleted,
                    "at": entry.time.isoformat(),
                    "entry": found.watches_entry,
                },
                {
                    "what": f"data key of {partner} under {charter_id} (crypto-shredding)",
                    "key": PartnerDataKeys.name(partner, charter_id),
                    "at": tombstone.destroyed_at.isoformat(),
                    "entry": found.key_destroyed,
                },
            ],
            "kept": kept,
            "retention": {"days": retention_days, "until": retained_until.isoformat()},
            "outputs": OUTPUT_OWNERSHIP,
            "checkpoint": {
                "origin": evidence.origin,
                "note": evidence.checkpoint,
                "size": evidence.size,
                "index": evidence.index,
                "entry": base64.b64encode(blob).decode("ascii"),
                "proof": [base64.b64encode(p).decode("ascii") for p in evidence.proof],
                **handover_evidence(ws, evidence.size),  # from the charter's owner key on
            },
        }


def _iso_day(value: Any) -> str | None:
    return None if value is None else str(value.isoformat())


class _Found:
    """What one pass over the audit log found about a charter."""

    def __init__(self) -> None:
        self.terminate: tuple[int, AdminEntry, bytes] | None = None
        self.key_destroyed: int | None = None
        self.watches_entry: int | None = None
        self.watches_deleted = 0
        self.requests: Counter[tuple[str, str]] = Counter()
        self.rows: Counter[tuple[str, str]] = Counter()
        self.denials: Counter[str] = Counter()
        self.sessions_opened = 0
        self.sessions_refused = 0
        self.incidents: list[dict[str, Any]] = []

    def take(self, index: int, blob: bytes, entry: Any, charter: str, partner: str) -> None:
        if isinstance(entry, AdminEntry):
            self._admin(index, blob, entry, charter, partner)
        elif isinstance(entry, AccessEntry) and entry.charter == charter:
            if entry.decision == "allow":
                self.requests[(entry.model, entry.version)] += 1
                self.rows[(entry.model, entry.version)] += entry.rows
            else:
                self.denials[entry.model] += 1
        elif isinstance(entry, SessionEntry) and entry.charter == charter:
            if entry.action == "open":
                if entry.decision == "allow":
                    self.sessions_opened += 1
                else:
                    self.sessions_refused += 1
        elif isinstance(entry, IncidentEntry) and entry.charter == charter:
            self.incidents.append(
                {
                    "entry": index,
                    "time": entry.time.isoformat(),
                    "model": entry.model,
                    "detector": entry.detector,
                    "response": entry.response,
                    "severity": entry.severity,
                    "step": entry.step,
                    "statistic": entry.statistic,
                    "threshold": entry.threshold,
                    "window": entry.window,
                }
            )

    def _admin(
        self, index: int, blob: bytes, entry: AdminEntry, charter: str, partner: str
    ) -> None:
        if entry.action == _TERMINATE and entry.subject.startswith(f"{charter}@v"):
            self.terminate = (index, entry, blob)  # the last one, if it was applied again
            self.key_destroyed = self.watches_entry = None
            self.watches_deleted = 0
        elif self.terminate is None:
            return  # destruction entries follow their termination
        elif entry.action == _WATCHES and entry.subject == f"{partner}/{charter}":
            if self.watches_entry is None:
                self.watches_entry = index
                deleted = entry.detail.get("deleted")
                self.watches_deleted = deleted if isinstance(deleted, int) else 0
        elif (
            entry.action == _KEY
            and entry.subject == f"{partner}/{charter}"
            and self.key_destroyed is None
        ):
            self.key_destroyed = index
