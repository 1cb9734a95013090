"""Each partner's watermark key, and the marked queries attribution replays later.

A partner's keys are made the first time a charter that asks for watermarks serves it:
a PRF key (which answers to mark, and how: :class:`~modelpact.marks.Watermark`) and a
*mark key* that seals the queries it marked.  Both are kept in one row, sealed under a
data key wrapped by the workspace's KEK and bound to the partner's id.  They outlive the
partnership for the charter's retention period (``exit.retention_days`` after its last
day, or after its termination if it was terminated earlier) — leaks surface late — and
:meth:`WatermarkDesk.expire` then destroys the keys and the marks together, with an audit
entry.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelpact.crypto import DataKey, PrfKey
from modelpact.errors import AlreadyExists, InvalidInput
from modelpact.services.charters import CharterDesk
from modelpact.services.envelopes import open_envelope, rewrap_envelope, seal_envelope
from modelpact.services.events import record_event
from modelpact.services.kek import RewrapTally, Tick
from modelpact.services.partner_keys import PartnerDataKeys
from modelpact.services.workspace import Workspace
from modelpact.store import MarkRecord

__all__ = ["Expiry", "Marks", "PartnerKeys", "WatermarkDesk", "rewrap_watermark_keys"]

_KEYS = "modelpact-watermark-keys/v1"
_KEY_FIELDS = ("wrapped", "sealed")
_MARKS = "modelpact-watermark-marks/v1"


@dataclass(frozen=True)
class PartnerKeys:
    prf: PrfKey
    marks: DataKey


@dataclass(frozen=True)
class Marks:
    """One request's marked queries of a model version, and the labels they were given."""

    charter: str
    model: str
    version: str
    rows: list[list[float]]
    labels: list[Any]


@dataclass(frozen=True)
class Expiry:
    """One partner's watermark: kept until ``until`` (None: while a charter has no end)."""

    partner: str
    until: datetime | None
    due: bool  # the retention period is over
    destroyed: bool = False
    marked_rows: int = 0


def rewrap_watermark_keys(ws: Workspace, tick: Tick) -> RewrapTally:
    """Wrap every partner's watermark-keys data key again under the newest KEK (a KEK
    rotation), each row one compare-and-set; the marks, sealed under the mark key, stay."""
    tally = RewrapTally()
    with ws.store.unit_of_work(read_only=True) as uow:
        rows = uow.keys.watermark_keys()
    for partner, sealed in rows:
        ad = f"watermark-keys/{partner}".encode()
        what = "sealed watermark keys"
        new = rewrap_envelope(ws, sealed, ad, kind=_KEYS, fields=_KEY_FIELDS, what=what)
        if new is None:
            tally.already += 1
        else:
            with ws.store.unit_of_work() as uow:
                tally.count(uow.keys.replace_watermark_key(partner, sealed, new))
        tick()
    return tally


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class WatermarkDesk:
    """Partners' watermark keys (kept in memory once read) and their marked queries."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._lock = threading.Lock()
        self._keys: dict[str, PartnerKeys] = {}

    def kept(self, partner: str) -> PartnerKeys | None:
        """The partner's keys if they are in memory already (for the event loop)."""
        return self._keys.get(partner)

    def keys(self, partner: str) -> PartnerKeys:
        """The partner's keys, made and kept on first use."""
        found = self._keys.get(partner)
        if found is not None:
            return found
        ad = f"watermark-keys/{partner}".encode()
        with self._ws.store.unit_of_work(read_only=True) as uow:
            sealed = uow.watermarks.key(partner)
        if sealed is None:
            # Made inside the KEK lock, taken before the unit of work (the lock's order),
            # until the row is committed: a KEK rotation waits for the commit.
            with self._ws.kek().wrapping() as wrap, self._ws.store.unit_of_work() as uow:
                sealed = uow.watermarks.key(partner)  # made meanwhile?
                if sealed is None:
                    keys = PartnerKeys(PrfKey.generate(), DataKey.generate())
                    secret = keys.prf.secret() + keys.marks.secret()
                    document = seal_envelope(wrap, secret, ad, kind=_KEYS, fields=_KEY_FIELDS)
                    try:
                        uow.watermarks.add_key(partner, document, self._ws.clock())
                    except AlreadyExists:  # another gateway made them meanwhile: read theirs
                        sealed = uow.watermarks.key(partner)
        if sealed is not None:
            keys = self._open(sealed, ad)
        with self._lock:
            return self._keys.setdefault(partner, keys)

    def _open(self, sealed: str, ad: bytes) -> PartnerKeys:
        secret = open_envelope(
            self._ws, sealed, ad, kind=_KEYS, fields=_KEY_FIELDS, what="sealed watermark keys"
        )  # Tampered if changed
        return PartnerKeys(PrfKey(secret[: PrfKey.SIZE]), DataKey(secret[PrfKey.SIZE :]))

    def record(
        self,
        partner: str,
        charter: str,
        model: str,
        version: str,
        rows: Sequence[Sequence[float]],
        labels: Sequence[Any],
    ) -> None:
        """Keep one request's marked queries, sealed under the partner's mark key."""
        if not rows or len(rows) != len(labels):
            raise InvalidInput("marks need one label per row")
        keys = self.keys(partner)
        ad = f"watermark-marks/{partner}/{charter}/{model}/{version}".encode()
        body = json.dumps({"rows": [list(r) for r in rows], "labels": list(labels)}).encode()
        document = {"format": _MARKS, "sealed": _b64(keys.marks.seal(body, ad))}
        with self._ws.store.unit_of_work() as uow:
            uow.watermarks.add_marks(
                MarkRecord(
                    partner_id=partner,
                    charter_id=charter,
                    model=model,
                    version=version,
                    rows=len(rows),
                    sealed=json.dumps(document),
                    created_at=self._ws.clock(),
                )
            )

    def partners(self) -> list[str]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            return uow.watermarks.partners()

    def marks(self, partner: str, model: str | None = None) -> list[Marks]:
        """The partner's marked queries (of one model), opened; none once its keys are gone."""
        with self._ws.store.unit_of_work(read_only=True) as uow:
            sealed = uow.watermarks.key(partner)
            records = uow.watermarks.marks(partner, model)
        if sealed is None:
            return []
        keys = self._open(sealed, f"watermark-keys/{partner}".encode())
        opened = []
        for record in records:
            ad = (
                f"watermark-marks/{partner}/{record.charter_id}/{record.model}/{record.version}"
            ).encode()
            try:
                document = json.loads(record.sealed)
                box = base64.b64decode(document["sealed"], validate=True)
            except (KeyError, TypeError, ValueError):
                raise InvalidInput("not sealed watermark marks") from None
            body = json.loads(keys.marks.open(box, ad))
            opened.append(
                Marks(record.charter_id, record.model, record.version, body["rows"], body["labels"])
            )
        return opened

    def retained_until(self, partner: str) -> datetime | None:
        """When the partner's watermark may go: the latest end of retention over every version
        of its charters, each ``retention_days`` after the charter's end — its termination
        (:mod:`modelpact.services.exit`) if it was terminated before ``valid.until``, else
        ``valid.until``; None while one has no end (or none is found)."""
        desk = CharterDesk(self._ws)
        with self._ws.store.unit_of_work(read_only=True) as uow:
            records = uow.charters.list(partner_id=partner)
        terminated = {r.charter_id for r in records if r.status == "terminated"}
        tombstones = PartnerDataKeys(self._ws)
        latest: datetime | None = None
        for record in records:
            charter = desk.trusted(record)
            end = charter.valid.until
            if record.charter_id in terminated:
                tombstone = tombstones.tombstone(partner, record.charter_id)
                if tombstone is not None and (end is None or tombstone.terminated_at < end):
                    end = tombstone.terminated_at
            if end is None:
                return None
            ends = end + timedelta(days=charter.exit.retention_days)
            latest = ends if latest is None or ends > latest else latest
        return latest

    def expire(self, *, dry_run: bool = False, actor: str = "owner") -> list[Expiry]:
        """Destroy the keys and marks of every partner whose retention period is over (each in
        one transaction with its audit entry); report every partner's watermark either way."""
        now = self._ws.clock()
        found = []
        for partner in self.partners():
            until = self.retained_until(partner)
            due = until is not None and now >= until
            if not due or dry_run:
                found.append(Expiry(partner, until, due=due))
                continue
            assert until is not None
            with self._ws.store.unit_of_work() as uow:
                gone = uow.watermarks.destroy(partner)
                record_event(
                    self._ws, uow, actor=actor, kind="watermark.destroyed", subject=partner,
                    marked_rows=gone, retained_until=until.isoformat(),
                )  # fmt: skip
            with self._lock:
                self._keys.pop(partner, None)
            found.append(Expiry(partner, until, due=True, destroyed=True, marked_rows=gone))
        return found
