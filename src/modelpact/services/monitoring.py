"""The extraction monitor as the gateway runs it: detectors per partner, charter and model,
fed off the request path, and the charter's responses when they alarm.

The gateway hands each answered batch to :meth:`Monitor.submit` (rows, and the label
each row was answered with) and goes on; one background thread feeds them to a
:class:`~modelpact.monitor.Watch` per partner, charter and model.  When a watch
alarms, the charter's :class:`~modelpact.monitor.Ladder` says whether to take a step
and which response it is; the step is one transaction: the response in force
(``protections`` row, which the gateway reads on the next request), the partner's
status for ``suspend`` and ``revoke``, the watch's state, and an ``incident`` audit
entry carrying the evidence (detector, statistic, threshold, window).  Then the
charter's webhook is told (:class:`~modelpact.services.webhooks.Notifier`).

Bounded: at most ``max_watches`` watches in memory (the least recently used is saved
and dropped), each of bounded size; a full queue refuses the request rather than
let it go unwatched (the gateway answers 503).  Watches are saved every
``save_every`` seconds when they changed, at every step, and on close, so a restart
loses at most that much of the detectors' history, never a response.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from modelpact.audit.entries import IncidentEntry
from modelpact.audit.log import append_within
from modelpact.charter import ExtractionMonitor, IncidentResponse, OutputKind, OutputPolicy
from modelpact.charter import Response as Step
from modelpact.errors import InvalidInput, ModelpactError, NotFound
from modelpact.monitor import ORDER, Alarm, Ladder, TrainingSummary, Watch
from modelpact.services.envelopes import (
    envelope_format,
    open_envelope,
    open_for_partner,
    rewrap_envelope,
    seal_for_partner,
)
from modelpact.services.events import record_event
from modelpact.services.kek import RewrapTally, Tick
from modelpact.services.partner_keys import KeyDestroyed
from modelpact.services.webhooks import Notifier
from modelpact.services.workspace import Workspace
from modelpact.store import MonitorStateRecord, ProtectionRecord, UnitOfWork

__all__ = [
    "LABEL_ONLY",
    "Monitor",
    "Observation",
    "ProtectionDesk",
    "hardened",
    "in_force",
    "rewrap_legacy_states",
    "throttled_rate",
    "watched_label",
]

_log = logging.getLogger(__name__)
Key = tuple[str, str, str]  # partner, charter, model

LABEL_ONLY = OutputPolicy(kind=OutputKind.LABEL)
_SEVERITY = {
    Step.ALERT: "info",
    Step.THROTTLE: "warning",
    Step.HARDEN: "warning",
    Step.SUSPEND: "critical",
    Step.REVOKE: "critical",
}
_PARTNER_STATUS = {Step.SUSPEND: "suspended", Step.REVOKE: "revoked"}


def _measure(value: float) -> str:
    text = format(value, ".6g")
    return text if text not in ("inf", "-inf", "nan") else "0"


def in_force(response: str | None, at_least: Step) -> bool:
    """Whether ``response`` (the step in force, or None) includes ``at_least``: each step
    includes every milder one."""
    return response is not None and ORDER.index(Step(response)) >= ORDER.index(at_least)


def throttled_rate(per_minute: int | None) -> int:
    """The request rate while throttled: a tenth of the charter's, at least 1 a minute, or 6
    a minute when the charter sets none."""
    return 6 if per_minute is None else max(1, per_minute // 10)


def hardened(policy: OutputPolicy) -> OutputPolicy:
    """The stricter output a hardened partner gets: the label only."""
    return LABEL_ONLY if policy.kind is not OutputKind.LABEL else policy


def watched_label(output: dict[str, object]) -> str | int:
    """The class a shaped answer gave (what PRADA groups queries by)."""
    label = output.get("label")
    if isinstance(label, str | int):
        return label
    for key in ("top_k", "scores"):
        items = output.get(key)
        if isinstance(items, list) and items:
            best = max(items, key=lambda item: float(item.get("score", 0.0)))
            found = best.get("label")
            if isinstance(found, str | int):
                return found
    return "value"  # a regressor: one group


@dataclass(frozen=True, slots=True)
class Observation:
    """One answered batch, as the monitor needs it."""

    partner: str
    charter: str
    model: str
    version: str
    rows: Sequence[Sequence[float]]
    labels: Sequence[str | int]
    at: datetime
    settings: ExtractionMonitor
    incident_response: IncidentResponse | None = None
    margins: Sequence[float] | None = None

    @property
    def key(self) -> Key:
        return (self.partner, self.charter, self.model)


#: Batches taken off the queue at once; consecutive ones of the same partner, charter and
#: model version are observed together (one-row requests cost the monitor less that way).
_DRAIN = 256


def _merged(items: list[Observation]) -> list[Observation]:
    """Runs of consecutive observations of one key, version and settings, as one each."""
    runs: list[list[Observation]] = []
    for item in items:
        last = runs[-1][-1] if runs else None
        if (
            last is not None
            and (last.key, last.version, last.settings, last.incident_response)
            == (item.key, item.version, item.settings, item.incident_response)
            and last.at.date() == item.at.date()
            and (last.margins is None) == (item.margins is None)
            and len(last.rows[0]) == len(item.rows[0])
        ):
            runs[-1].append(item)
        else:
            runs.append([item])
    return [run[0] if len(run) == 1 else _join(run) for run in runs]


def _join(run: list[Observation]) -> Observation:
    margins = None
    if run[0].margins is not None:
        margins = [m for item in run for m in (item.margins or ())]
    return dataclasses.replace(
        run[-1],
        rows=[row for item in run for row in item.rows],
        labels=[label for item in run for label in item.labels],
        margins=margins,
    )


class Monitor:
    """Watches every partner's queries; thread-safe :meth:`submit`, one worker thread."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        notifier: Notifier | None = None,
        queue_size: int = 4096,
        save_every: float = 10.0,
        max_watches: int = 1024,
        spacing: int = 100,
    ) -> None:
        if queue_size < 1 or max_watches < 1 or spacing < 1 or save_every <= 0:
            raise InvalidInput("monitor sizes and intervals must be positive")
        self._ws = workspace
        self._notifier = notifier
        self._save_every = save_every
        self._max_watches = max_watches
        self.spacing = spacing
        self._queue: queue.Queue[Observation | None] = queue.Queue(queue_size)
        self._watches: OrderedDict[Key, tuple[str, Watch]] = OrderedDict()  # version, watch
        self._dirty: set[Key] = set()
        self._summaries: dict[tuple[str, str], TrainingSummary | None] = {}
        self._lock = threading.Lock()  # watches and dirty set: the worker and close()
        self._thread: threading.Thread | None = None
        self.failures = 0

    # -- the gateway's side ----------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="modelpact-monitor", daemon=True)
            self._thread.start()

    def submit(self, observation: Observation) -> bool:
        """Queue one batch; False when the queue is full (the caller refuses the request)."""
        try:
            self._queue.put_nowait(observation)
        except queue.Full:
            return False
        return True

    def flush(self) -> None:
        """Wait until every queued batch was observed (tests and benchmarks)."""
        self._queue.join()

    def close(self) -> None:
        """Observe what is queued, save every watch and stop."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=60)
            self._thread = None
        self.save()

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        saved = time.monotonic()
        while True:
            try:
                first = self._queue.get(timeout=self._save_every)
            except queue.Empty:  # a quiet spell: save what changed
                self._save_quietly()
                saved = time.monotonic()
                continue
            items = [first]
            while first is not None and len(items) < _DRAIN:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                for batch in _merged([i for i in items if i is not None]):
                    try:
                        self.observe(batch)
                    except Exception as error:
                        self.failures += 1
                        why = (
                            error.summary
                            if isinstance(error, ModelpactError)
                            else type(error).__name__
                        )
                        _log.warning("extraction monitor: a batch was not observed (%s)", why)
            finally:
                for _ in items:
                    self._queue.task_done()
            if any(i is None for i in items):
                return
            if time.monotonic() - saved >= self._save_every:
                self._save_quietly()
                saved = time.monotonic()

    def _save_quietly(self) -> None:
        try:
            self.save()
        except ModelpactError as error:
            self.failures += 1
            _log.warning("extraction monitor could not save its state: %s", error.summary)

    def observe(self, observation: Observation) -> IncidentEntry | None:
        """Feed one batch to its watch; take an escalation step if the charter says so.

        Returns the incident entry of the step taken, if any.
        """
        key = observation.key
        watch = self._watch(key, observation)
        alarms = watch.observe(
            observation.rows, observation.labels, observation.at.date(), observation.margins
        )
        with self._lock:
            self._dirty.add(key)
        if not alarms:
            return None
        ladder = Ladder.of(observation.settings, spacing=self.spacing)
        entry, index = self._escalate(observation, watch, ladder, alarms)
        if entry is not None and self._notifier is not None:
            hook = observation.incident_response
            if hook is not None and hook.webhook is not None and index is not None:
                self._notifier.notify(hook.webhook, entry, index)
        return entry

    def _escalate(
        self, obs: Observation, watch: Watch, ladder: Ladder, alarms: list[Alarm]
    ) -> tuple[IncidentEntry | None, int | None]:
        now = self._ws.clock()
        with self._ws.store.unit_of_work() as uow:
            current = uow.monitor.protection(*obs.key)
            taken = 0 if current is None else current.step
            if taken < watch.step:
                # An owner lifted the response ('modelpact monitor clear'): watch afresh.
                self._replace(obs, watch)
                return None, None
            step = ladder.next_step(taken, watch.since_step, True)
            if step is None:
                return None, None
            response = ladder.response(step)
            alarm = alarms[0]
            detail = alarm.detail
            if len(alarms) > 1:
                detail += f" (also: {', '.join(a.detector for a in alarms[1:])})"
            uow.monitor.set_protection(
                ProtectionRecord(
                    partner_id=obs.partner,
                    charter_id=obs.charter,
                    model=obs.model,
                    step=step,
                    response=response.value,
                    since=now,
                    evidence=json.dumps([a.as_dict() for a in alarms], sort_keys=True),
                )
            )
            status = _PARTNER_STATUS.get(response)
            if status is not None:
                partner = uow.partners.get(obs.partner)
                if partner.status != "revoked" and partner.status != status:
                    uow.partners.set_status(obs.partner, status, now)
                    detail += f"; partner {obs.partner} {status}"
            watch.stepped(step)
            uow.monitor.save_state(self._record(obs.key, watch, now))
            entry = IncidentEntry(
                time=now,
                actor=obs.partner,
                subject=f"{obs.partner}/{obs.charter}/{obs.model}",
                charter=obs.charter,
                model=obs.model,
                detector=alarm.detector,
                statistic=_measure(alarm.statistic),
                threshold=_measure(alarm.threshold),
                window=alarm.window,
                detail=detail[:500],
                response=response.value,
                severity=_SEVERITY[response],
                step=step,
            )
            receipt = append_within(uow, [entry], now=now)[0]
        with self._lock:
            self._dirty.discard(obs.key)
        return entry, receipt.index

    # -- watches ---------------------------------------------------------------------------

    def _summary(self, uow: UnitOfWork, model: str, version: str) -> TrainingSummary | None:
        key = (model, version)
        if key not in self._summaries:
            text = uow.monitor.summary(model, version)
            self._summaries[key] = (
                None if text is None else TrainingSummary.from_state(json.loads(text))
            )
        return self._summaries[key]

    def _watch(self, key: Key, obs: Observation) -> Watch:
        with self._lock:
            kept = self._watches.get(key)
            if kept is not None and kept[0] == obs.version:
                self._watches.move_to_end(key)
                return kept[1]
        width = len(obs.rows[0])
        with self._ws.store.unit_of_work(read_only=True) as uow:
            summary = self._summary(uow, obs.model, obs.version)
            if kept is not None and kept[1].summary is summary:
                watch = kept[1]  # a new version with the same summary: carry on
            else:
                record = uow.monitor.state(*key)
                watch = self._restore(self._ws, record, summary, width)
        if watch.width != width:
            watch = Watch(summary if summary and summary.width == width else None, width)
        evicted: list[tuple[Key, Watch]] = []
        with self._lock:
            self._watches[key] = (obs.version, watch)
            self._watches.move_to_end(key)
            while len(self._watches) > self._max_watches:
                old_key, (_, old) = self._watches.popitem(last=False)
                if old_key in self._dirty:
                    evicted.append((old_key, old))
                    self._dirty.discard(old_key)
        if evicted:
            self._save_watches(evicted)
        return watch

    @staticmethod
    def _restore(
        ws: Workspace,
        record: MonitorStateRecord | None,
        summary: TrainingSummary | None,
        width: int,
    ) -> Watch:
        if record is not None:
            key = (record.partner_id, record.charter_id, record.model)
            try:
                text = _open_state(ws, key, record.state)
                return Watch.from_state(json.loads(text), summary)
            except (ModelpactError, ValueError) as error:
                # Saved against another summary, unreadable or tampered with: start afresh.
                reason = error.summary if isinstance(error, ModelpactError) else "not JSON"
                _log.warning("extraction monitor: a saved watch was not restored (%s)", reason)
        return Watch(summary if summary and summary.width == width else None, width)

    def _record(self, key: Key, watch: Watch, now: datetime) -> MonitorStateRecord:
        text = json.dumps(watch.to_state(), separators=(",", ":"))
        return MonitorStateRecord(*key, state=_seal_state(self._ws, key, text), updated_at=now)

    def save(self) -> None:
        """Save every watch that changed since it was last saved."""
        with self._lock:
            pending = [(k, self._watches[k][1]) for k in self._dirty if k in self._watches]
            self._dirty.clear()
        self._save_watches(pending)

    def _save_watches(self, pending: list[tuple[Key, Watch]]) -> None:
        if not pending:
            return
        now = self._ws.clock()
        records = []
        for key, watch in pending:  # sealed before the transaction: sealing reads a key
            try:
                records.append(self._record(key, watch, now))
            except KeyDestroyed:  # the charter was terminated: its partner's data is gone
                with self._lock:
                    self._watches.pop(key, None)
        if not records:
            return
        with self._ws.store.unit_of_work() as uow:
            for record in records:
                uow.monitor.save_state(record)

    def _replace(self, obs: Observation, old: Watch) -> None:
        fresh = Watch(old.summary if old.trained else None, old.width)
        with self._lock:
            self._watches[obs.key] = (obs.version, fresh)
            self._dirty.add(obs.key)


_LEGACY = "modelpact-sealed-watch/v1"  # a data key wrapped by the KEK itself
_SEALED = "modelpact-sealed-watch/v2"  # a data key wrapped by the partner's key
_FIELDS = ("key", "state")


def _seal_state(ws: Workspace, key: Key, text: str) -> str:
    """A watch's state sealed under a fresh data key wrapped by the partner's data key under
    the charter: it holds (standardised) partner queries, which are the partner's data, stay
    encrypted at rest and are shredded with that key at exit."""
    ad = ("monitor-state/" + "/".join(key)).encode()
    partner, charter, _ = key
    return seal_for_partner(ws, partner, charter, text.encode(), ad, kind=_SEALED, fields=_FIELDS)


def rewrap_legacy_states(ws: Workspace, tick: Tick) -> RewrapTally:
    """Wrap the data key of every state saved before partner keys (the KEK wraps it) again
    under the newest KEK, for a KEK rotation; each row one compare-and-set, so a state saved
    meanwhile (under the partner's key) is left alone."""
    tally = RewrapTally()
    with ws.store.unit_of_work(read_only=True) as uow:
        rows = uow.keys.monitor_states()
    for partner, charter, model, text in rows:
        if envelope_format(text) != _LEGACY:
            continue
        ad = ("monitor-state/" + "/".join((partner, charter, model))).encode()
        new = rewrap_envelope(ws, text, ad, kind=_LEGACY, fields=_FIELDS, what="a sealed watch")
        if new is None:
            tally.already += 1
        else:
            with ws.store.unit_of_work() as uow:
                tally.count(uow.keys.replace_monitor_state(partner, charter, model, text, new))
        tick()
    return tally


def _open_state(ws: Workspace, key: Key, text: str) -> str:
    ad = ("monitor-state/" + "/".join(key)).encode()
    what = "a sealed watch"
    if envelope_format(text) == _LEGACY:  # saved before partner keys: still readable
        opened = open_envelope(ws, text, ad, kind=_LEGACY, fields=_FIELDS, what=what)
    else:
        partner, charter, _ = key
        opened = open_for_partner(
            ws, partner, charter, text, ad, kind=_SEALED, fields=_FIELDS, what=what
        )
    return opened.decode("utf-8")


class ProtectionDesk:
    """The owner's view of the responses in force, and the way to lift one."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def all(self) -> list[ProtectionRecord]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            return uow.monitor.protections()

    def clear(
        self, partner: str, charter: str, model: str, *, reason: str, actor: str = "owner"
    ) -> ProtectionRecord:
        """Lift the response in force and restart the detectors, on the record.

        A suspended partner stays suspended until resumed ('modelpact partner resume'):
        that is a separate decision.  Raises :class:`NotFound` when nothing is in force.
        """
        reason = reason.strip()
        if not reason:
            raise InvalidInput("say why the response is lifted (--reason)")
        with self._ws.store.unit_of_work() as uow:
            current = uow.monitor.protection(partner, charter, model)
            if current is None:
                raise NotFound(f"no response in force for {partner} under {charter} on {model}")
            uow.monitor.clear_protection(partner, charter, model)
            uow.monitor.delete_state(partner, charter, model)
            record_event(
                self._ws,
                uow,
                actor=actor,
                kind="monitor.clear",
                subject=f"{partner}/{charter}/{model}",
                response=current.response,
                step=current.step,
                reason=reason[:500],
            )
        return current
