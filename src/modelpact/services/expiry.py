"""Charters expire on their own: the expiry sweep, and the thread that runs it while serving.

One pass of :class:`ExpirySweep` (``modelpact charter expire`` runs one; ``modelpact
serve`` runs one every ``--sweep-interval`` seconds on a :class:`Sweeper` thread):

1. **ends** every active charter whose validity window has closed, with the charter's
   exit terms (:meth:`~modelpact.services.exit.ExitDesk.terminate`, reason "the charter
   expired at ..."), and completes any exit that was interrupted (a terminated charter
   whose ``exit.data_key_destroyed`` entry the log lacks, or of whose partner data key
   anything is left: the first generation, a later one or an encryption counter, as a
   destruction interrupted after its tombstone leaves them); each signed exit report is
   written to
   ``exits/<charter>-v<version>.json`` in the workspace (mode 0644: it is handed to the
   partner), atomically, by the writer the interface gives;
2. **warns** ahead of expiry: for an active charter whose window closes within a warning
   threshold (default 14 days, then 1 day), one ``charter.expiring`` admin entry per
   charter version and threshold, and the same entry, signed, to the charter's webhook.
   The entry is the durable record that the warning went out: it is written (under the
   log's sequencer lock, after reading what the log already says) before the webhook is
   queued, so neither a restart nor a second sweeper sends it again — at most once; the
   dashboard shows the warning whether or not a webhook got through;
3. **ends retention**: prunes the usage entries of terminated charters whose retention
   period is over and destroys watermark keys that are due
   (:mod:`modelpact.services.retention`).

Every step is idempotent (terminate, the trail of warnings and prunes in the log), so
running the sweep twice, or from a cron job while ``serve`` runs, does nothing twice.  A
failure with one charter is reported and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from modelpact.audit.entries import AdminEntry
from modelpact.audit.log import append_within
from modelpact.charter import Charter
from modelpact.errors import InvalidInput, ModelpactError
from modelpact.services.charters import CharterDesk
from modelpact.services.exit import ExitDesk, ExitReport
from modelpact.services.retention import EXPIRING_ACTION, AdminTrail, RetentionDesk, RetentionEnd
from modelpact.services.webhooks import Notifier
from modelpact.services.workspace import Workspace

__all__ = [
    "ACTOR",
    "DEFAULT_INTERVAL",
    "DEFAULT_WARNINGS",
    "EXITS_FOLDER",
    "WARNING_WINDOW",
    "Ended",
    "ExpirySweep",
    "ExpiryWarning",
    "Sweep",
    "Sweeper",
    "expiring_within",
]

#: Who the log says acted: the sweep, not a person.
ACTOR = "expiry"
#: Days before the end of a charter's window when a warning goes out (each once).
DEFAULT_WARNINGS: tuple[int, ...] = (14, 1)
#: The widest of them: how close to its end the dashboard flags a charter.
WARNING_WINDOW = max(DEFAULT_WARNINGS)
#: Seconds between two sweeps while serving.
DEFAULT_INTERVAL = 60.0
#: Where exit reports go, inside the workspace.
EXITS_FOLDER = "exits"
_log = logging.getLogger(__name__)

#: Writes a file whole or not at all (the CLI's ``replace_durably``, mode 0644).
Writer = Callable[[Path, bytes], None]


def expiring_within(until: datetime | None, now: datetime, days: int) -> bool:
    """Whether a window ending at ``until`` is still open and closes within ``days``."""
    return until is not None and now < until <= now + timedelta(days=days)


@dataclass(frozen=True)
class Ended:
    """A charter the sweep ended (or whose interrupted exit it completed)."""

    charter: str
    version: int
    partner: str
    terminated_at: datetime
    resumed: bool
    report: Path


@dataclass(frozen=True)
class ExpiryWarning:
    """A ``charter.expiring`` warning recorded (and queued to the webhook, if any)."""

    charter: str
    version: int
    partner: str
    until: datetime
    days: int  # the threshold crossed
    index: int  # its audit entry
    webhook: bool  # queued to the charter's webhook


@dataclass
class Sweep:
    """What one pass did."""

    at: datetime
    ended: list[Ended] = field(default_factory=list)
    warned: list[ExpiryWarning] = field(default_factory=list)
    pruned: list[RetentionEnd] = field(default_factory=list)
    watermarks: list[str] = field(default_factory=list)  # partners whose keys were destroyed
    failures: list[str] = field(default_factory=list)

    @property
    def idle(self) -> bool:
        return not (self.ended or self.warned or self.pruned or self.watermarks or self.failures)


class ExpirySweep:
    """One workspace's expiry, warnings and end of retention (see the module docstring)."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        write: Writer,
        warnings: Sequence[int] = DEFAULT_WARNINGS,
        notifier: Notifier | None = None,
        reports: Path | None = None,
    ) -> None:
        if not warnings or any(days < 1 or days > 3650 for days in warnings):
            raise InvalidInput("expiry warnings are whole days from 1 to 3650")
        self._ws = workspace
        self._write = write
        self.warnings = tuple(sorted(set(warnings)))
        self._notifier = notifier
        self.reports = reports or workspace.root / EXITS_FOLDER
        self._trail = AdminTrail()  # kept between passes: each reads only new entries

    @property
    def warn_days(self) -> int:
        """The widest warning window (what the dashboard flags)."""
        return self.warnings[-1]

    def run(self) -> Sweep:
        sweep = Sweep(at=self._ws.clock())
        self._end(sweep)
        self._warn(sweep)
        try:
            sweep.pruned, sweep.watermarks = RetentionDesk(self._ws, trail=self._trail).end(
                actor=ACTOR
            )
        except ModelpactError as error:
            sweep.failures.append(f"retention: {error.summary}")
        return sweep

    # -- 1. expiry ---------------------------------------------------------------------------

    def _end(self, sweep: Sweep) -> None:
        ws = self._ws
        desk = CharterDesk(ws)
        exits = ExitDesk(ws)
        now = sweep.at
        try:
            with ws.store.unit_of_work(read_only=True) as uow:
                self._trail.catch_up(uow)  # which exits the log says destroyed their key
        except ModelpactError as error:
            sweep.failures.append(f"expiry: {error.summary}")
            return
        for record in desk.all():
            try:
                if record.status == "active":
                    until = desk.trusted(record).valid.until
                    if until is None or now < until:
                        continue
                    reason = f"the charter expired at {until.isoformat()}"
                elif record.status == "terminated":
                    if self._exited(exits, record.partner_id, record.charter_id):
                        continue  # done
                    reason = "completing an interrupted exit"
                else:
                    continue
                report = exits.terminate(record.charter_id, reason=reason, actor=ACTOR)
                sweep.ended.append(self._publish(report, record.version))
            except ModelpactError as error:
                sweep.failures.append(f"{record.charter_id}: {error.summary}")
                _log.warning("expiry of %s failed: %s", record.charter_id, error.summary)

    def _exited(self, exits: ExitDesk, partner: str, charter: str) -> bool:
        """Whether the exit is complete: the log records the partner's data key destroyed,
        and nothing of it is left in the artifact store (a tombstone alone is not enough:
        a destruction interrupted after it leaves later generations readable)."""
        return f"{partner}/{charter}" in self._trail.destroyed and not exits.leftovers(
            partner, charter
        )

    def _publish(self, report: ExitReport, version: int) -> Ended:
        self.reports.mkdir(mode=0o755, exist_ok=True)
        path = self.reports / f"{report.charter}-v{version}.json"
        self._write(path, report.text.encode("utf-8"))
        return Ended(
            report.charter, version, report.partner, report.terminated_at, report.resumed, path
        )

    # -- 2. warnings -------------------------------------------------------------------------

    def _warn(self, sweep: Sweep) -> None:
        ws = self._ws
        desk = CharterDesk(ws)
        now = sweep.at
        due: list[tuple[Charter, str, int]] = []
        for record in desk.all():
            if record.status != "active":
                continue
            try:
                charter = desk.trusted(record)
            except ModelpactError as error:
                sweep.failures.append(f"{record.charter_id}: {error.summary}")
                continue
            crossed = [d for d in self.warnings if expiring_within(charter.valid.until, now, d)]
            if crossed:
                due.append((charter, record.partner_id, crossed[0]))
        if not due:
            return
        made: list[tuple[ExpiryWarning, AdminEntry, str | None]] = []
        try:
            with ws.store.unit_of_work() as uow:
                uow.audit.lock_for_append()  # read what was sent, and record, in one turn
                self._trail.catch_up(uow)
                entries = []
                for charter, partner, days in due:
                    sent = {d for c, v, d in self._trail.warned
                            if c == charter.charter and v == charter.version}  # fmt: skip
                    if any(d <= days for d in sent):
                        continue  # this threshold, or a closer one, was warned of already
                    assert charter.valid.until is not None
                    left = charter.valid.until - now
                    entries.append(
                        (
                            charter,
                            partner,
                            days,
                            AdminEntry(
                                time=now, actor=ACTOR, subject=charter.ref,
                                action=EXPIRING_ACTION,
                                detail={
                                    "charter": charter.charter, "version": charter.version,
                                    "partner": partner, "days": days,
                                    "until": charter.valid.until.isoformat(),
                                    "hours_left": int(left.total_seconds() // 3600),
                                },
                            ),
                        )
                    )  # fmt: skip
                receipts = append_within(uow, [e for *_, e in entries], now=now)
        except ModelpactError as error:
            sweep.failures.append(f"expiry warnings: {error.summary}")
            return
        for (charter, partner, days, entry), receipt in zip(entries, receipts, strict=True):
            self._trail.warned.add((charter.charter, charter.version, days))
            url = charter.incident_response.webhook if charter.incident_response else None
            assert charter.valid.until is not None
            warning = ExpiryWarning(
                charter.charter, charter.version, partner, charter.valid.until, days,
                receipt.index, webhook=url is not None and self._notifier is not None,
            )  # fmt: skip
            made.append((warning, entry, url))
        for warning, entry, url in made:
            if url is not None and self._notifier is not None:
                self._notifier.notify(url, entry, warning.index)
            sweep.warned.append(warning)


class Sweeper:
    """Runs an :class:`ExpirySweep` on a background thread every ``interval`` seconds
    (and at once on :meth:`wake`) until :meth:`close`."""

    def __init__(self, sweep: ExpirySweep, *, interval: float = DEFAULT_INTERVAL) -> None:
        if not 0 < interval <= 86_400:
            raise InvalidInput("the sweep interval is between 0 and 86400 seconds")
        self.sweep = sweep
        self.interval = interval
        self.passes = 0
        self.last: Sweep | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def warn_days(self) -> int:
        return self.sweep.warn_days

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="modelpact-expiry", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Sweep now rather than at the end of the interval."""
        self._wake.set()

    def wait(self, passes: int, timeout: float = 30.0) -> bool:
        """Block until at least ``passes`` sweeps have finished (False after ``timeout``)."""
        with self._done:
            return self._done.wait_for(lambda: self.passes >= passes, timeout=timeout)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _run(self) -> None:
        while not self._stop.is_set():
            result: Sweep | None = None
            try:
                result = self.sweep.run()
            except Exception as error:  # the thread must outlive one bad pass
                _log.warning("expiry sweep failed: %s: %s", type(error).__name__, error)
            for ended in result.ended if result is not None else ():
                _log.warning("charter %s ended; exit report %s", ended.charter, ended.report)
            with self._done:
                self.last = result or self.last
                self.passes += 1
                self._done.notify_all()
            self._wake.wait(self.interval)
            self._wake.clear()
