"""What every request reads and rarely changes, kept until the store's change counter moves.

A prediction reads the session, its partner, the charter's active version, the
charter list (the policy engine's key), the model's served version and the
extraction monitor's response in force.  These
change rarely, but a change must hold from the very next request, even when
another process (the owner's CLI) made it.  The store keeps a counter that each
such write increments in its own transaction (:class:`~modelpact.store.StateRepository`);
:class:`StateCache` reads it once per unit of work and keeps what it read for as
long as the counter stays the same::

    cache = StateCache(workspace)
    with workspace.store.unit_of_work(read_only=True) as uow:
        view = cache.view(uow)          # one read: the counter
        partner = view.partner("acme")  # read through uow only the first time

An event loop that must not wait on the database asks :meth:`StateCache.cached_only`
for a unit of work that answers only from what is kept, at a counter read with
:meth:`~modelpact.store.Store.state_counter`: any question the cache cannot answer
raises :class:`CacheMiss`, and the caller starts again in a real unit of work.

Only rows are kept, never a judgement about time: session expiry and charter
validity are checked against the clock on every request by the callers.
Absence is never kept for sessions (adding one does not move the counter), nor
for partners, models or versions (a caller may name anything).  A change made
to the database outside modelpact (by hand, in SQL) does not move the counter
and is not seen until the counter moves or the process restarts.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, cast

from modelpact.errors import NotFound
from modelpact.services.workspace import Workspace
from modelpact.store import (
    CharterRecord,
    ModelRecord,
    PartnerRecord,
    ProtectionRecord,
    SessionRecord,
    UnitOfWork,
)

__all__ = ["CacheMiss", "StateCache", "StateView", "active_record"]

_MAX_SESSIONS = 65_536


def active_record(uow: UnitOfWork, charter_id: str, partner_id: str) -> CharterRecord | None:
    """The charter's active version if it is ``partner_id``'s; None otherwise.

    Applying a version supersedes the active one and a rollback swaps two, so a charter
    has at most one active version: one indexed read.
    """
    try:
        current = uow.charters.current(charter_id)
    except NotFound:
        return None
    if current.status != "active" or current.partner_id != partner_id:
        return None
    return current


class CacheMiss(Exception):  # not a ModelpactError: a signal to read for real, never shown
    """A unit of work from :meth:`StateCache.cached_only` was asked what is not kept."""


class _CountOnly:
    """The change counter read before; nothing else."""

    __slots__ = ("_counter",)

    def __init__(self, counter: int) -> None:
        self._counter = counter

    def counter(self) -> int:
        return self._counter

    def bump(self) -> None:
        raise CacheMiss("a cached-only unit of work cannot write")


class _CachedOnly:
    """A unit of work with no transaction: its counter, and a miss for any other read."""

    __slots__ = ("__weakref__", "state")

    def __init__(self, counter: int) -> None:
        self.state = _CountOnly(counter)

    def __getattr__(self, name: str) -> Any:
        raise CacheMiss(f"{name} is not kept in the state cache")


class _Snapshot:
    """Rows read while the counter stood at ``counter``."""

    __slots__ = (
        "active",
        "charters",
        "counter",
        "lock",
        "models",
        "partners",
        "protections",
        "sessions",
        "version_lists",
        "versions",
    )

    def __init__(self, counter: int) -> None:
        self.counter = counter
        self.lock = threading.Lock()
        self.partners: dict[str, PartnerRecord] = {}
        self.active: dict[tuple[str, str], CharterRecord | None] = {}
        self.charters: tuple[CharterRecord, ...] | None = None
        self.models: dict[str, ModelRecord] = {}
        self.versions: set[tuple[str, str]] = set()
        self.version_lists: dict[str, tuple[str, ...]] = {}
        self.sessions: OrderedDict[bytes, SessionRecord] = OrderedDict()
        self.protections: dict[tuple[str, str, str], ProtectionRecord | None] = {}


class StateView:
    """Partners, charters, models and sessions as one unit of work sees them.

    A view from :meth:`StateCache.view` answers from what was read before at the
    same counter and reads misses through its unit of work; :meth:`direct` reads
    everything through the unit of work, every time.  Either way the answers are
    the same.
    """

    __slots__ = ("_snapshot", "_uow")

    def __init__(self, uow: UnitOfWork, snapshot: _Snapshot | None) -> None:
        self._uow = uow
        self._snapshot = snapshot

    @classmethod
    def direct(cls, uow: UnitOfWork) -> StateView:
        """A view that keeps nothing: each question is a read in ``uow``."""
        return cls(uow, None)

    def partner(self, partner_id: str) -> PartnerRecord:
        """The partner; :class:`NotFound` if there is none."""
        snap = self._snapshot
        if snap is None:
            return self._uow.partners.get(partner_id)
        found = snap.partners.get(partner_id)
        if found is None:
            found = self._uow.partners.get(partner_id)
            snap.partners[partner_id] = found
        return found

    def active_charter(self, charter_id: str, partner_id: str) -> CharterRecord | None:
        """:func:`active_record` of the charter and partner."""
        snap = self._snapshot
        if snap is None:
            return active_record(self._uow, charter_id, partner_id)
        key = (charter_id, partner_id)
        try:
            return snap.active[key]
        except KeyError:
            pass
        found = active_record(self._uow, charter_id, partner_id)
        snap.active[key] = found  # the ids come from stored sessions: a bounded set
        return found

    def charters(self) -> tuple[CharterRecord, ...]:
        """Every charter version, in the order the repository lists them.

        From one cache, the same tuple object for as long as the counter stands.
        """
        snap = self._snapshot
        if snap is None:
            return tuple(self._uow.charters.list())
        found = snap.charters
        if found is None:
            found = tuple(self._uow.charters.list())
            with snap.lock:
                if snap.charters is None:
                    snap.charters = found
                found = snap.charters
        return found

    def model(self, name: str) -> ModelRecord:
        """The model, with the version it serves; :class:`NotFound` if there is none."""
        snap = self._snapshot
        if snap is None:
            return self._uow.models.get_model(name)
        found = snap.models.get(name)
        if found is None:
            found = self._uow.models.get_model(name)
            snap.models[name] = found
        return found

    def require_version(self, model: str, version: str) -> None:
        """Nothing if ``model`` has ``version``; :class:`NotFound` otherwise."""
        snap = self._snapshot
        key = (model, version)
        if snap is not None and key in snap.versions:
            return
        self._uow.models.get_version(model, version)
        if snap is not None:
            snap.versions.add(key)

    def versions(self, model: str) -> tuple[str, ...]:
        """``model``'s registered versions, oldest registration first; :class:`NotFound`
        if there is no such model.  Registering a version moves the counter."""
        snap = self._snapshot
        if snap is not None:
            found = snap.version_lists.get(model)
            if found is not None:
                return found
        listed = tuple(record.version for record in self._uow.models.list_versions(model))
        if snap is not None:
            with snap.lock:
                if len(snap.version_lists) < _MAX_SESSIONS:  # names come from grants
                    snap.version_lists[model] = listed
        return listed

    def protection(self, partner: str, charter: str, model: str) -> ProtectionRecord | None:
        """The extraction monitor's response in force, or None.  Absence is kept too:
        setting or lifting a response moves the counter."""
        snap = self._snapshot
        if snap is None:
            return self._uow.monitor.protection(partner, charter, model)
        key = (partner, charter, model)
        try:
            return snap.protections[key]
        except KeyError:
            pass
        found = self._uow.monitor.protection(partner, charter, model)
        with snap.lock:
            if len(snap.protections) < _MAX_SESSIONS:  # keys come from authenticated sessions
                snap.protections[key] = found
        return found

    def session(self, token_hash: bytes) -> SessionRecord:
        """The session with this token hash, revoked or expired ones included; else NotFound."""
        snap = self._snapshot
        if snap is None:
            return self._uow.sessions.get(token_hash)
        found = snap.sessions.get(token_hash)
        if found is None:
            found = self._uow.sessions.get(token_hash)
            with snap.lock:
                snap.sessions[token_hash] = found
                if len(snap.sessions) > _MAX_SESSIONS:
                    snap.sessions.popitem(last=False)
        return found


class StateCache:
    """Rows a request depends on, for the workspace's current change counter; thread-safe.

    :meth:`view` reads the counter once per unit of work; when it differs from
    the one the kept rows were read at, they are all dropped.  Rows read in a
    unit of work that saw counter ``n`` are kept under ``n`` only, so a request
    that saw an older counter never adds to what a newer one keeps.  Only read
    through a view in a unit of work that has not changed these rows itself.
    """

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._lock = threading.Lock()
        self._snapshot: _Snapshot | None = None
        # The snapshot each live unit of work saw; a snapshot never refers to its unit
        # of work, so an entry goes as soon as the unit of work does.
        self._seen: weakref.WeakKeyDictionary[UnitOfWork, _Snapshot] = weakref.WeakKeyDictionary()

    def view(self, uow: UnitOfWork) -> StateView:
        """A view through ``uow``: the first call in a unit of work reads the counter."""
        with self._lock:
            snapshot = self._seen.get(uow)
        if snapshot is None:
            counter = uow.state.counter()
            with self._lock:
                snapshot = self._snapshot
                if snapshot is None or snapshot.counter < counter:
                    snapshot = self._snapshot = _Snapshot(counter)
                elif snapshot.counter > counter:
                    # A unit of work that began before the latest change: what it reads
                    # is kept for itself only, never under the newer counter.
                    snapshot = _Snapshot(counter)
                self._seen[uow] = snapshot
        return StateView(uow, snapshot)

    def cached_only(self, counter: int) -> UnitOfWork:
        """A unit of work that sees the store as it stood at ``counter`` and reads nothing.

        ``counter`` must come from :meth:`~modelpact.store.Store.state_counter` just
        now.  Views through it answer from the rows kept at that counter and raise
        :class:`CacheMiss` for anything else, and so does every repository of it.
        """
        return cast(UnitOfWork, _CachedOnly(counter))
