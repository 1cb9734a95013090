"""Policy decisions over the workspace's active charters and partners' current status."""

from __future__ import annotations

from modelpact.errors import NotFound
from modelpact.policy import AccessRequest, Decision, PolicyEngine
from modelpact.services.charters import CharterDesk
from modelpact.services.state_cache import StateCache, StateView
from modelpact.services.workspace import Workspace
from modelpact.store import CharterRecord, UnitOfWork

__all__ = ["Decider"]


class Decider:
    """Answers access requests.  The compiled policy set is rebuilt only when charters change.

    ``cache``: read the charter list and partners (when given a unit of work) through
    it, so that while the store's change counter stands a decision reads nothing more.
    """

    def __init__(self, workspace: Workspace, *, cache: StateCache | None = None) -> None:
        self._ws = workspace
        self._cache = cache
        # Each replaced whole, so a thread never sees one's key with another's engine.
        self._compiled: tuple[tuple[tuple[str, int, str], ...], PolicyEngine] | None = None
        self._seen: tuple[tuple[CharterRecord, ...], PolicyEngine] | None = None

    def _view(self, uow: UnitOfWork) -> StateView:
        return StateView.direct(uow) if self._cache is None else self._cache.view(uow)

    def engine(self, uow: UnitOfWork | None = None) -> PolicyEngine:
        """The engine for the charters active now; a stored charter that fails its checks
        raises :class:`~modelpact.errors.Tampered` and stops every decision (fail closed).

        Reads the charter list in ``uow`` when given (through the cache, if any: then
        only while the change counter moves); charters are compiled again only when the
        list of active versions changed.
        """
        if uow is None:
            with self._ws.store.unit_of_work(read_only=True) as own:
                return self.engine(own)
        listed = self._view(uow).charters()
        seen = self._seen
        if seen is not None and seen[0] is listed:  # the same cached list: nothing changed
            return seen[1]
        records = [r for r in listed if r.status == "active"]
        key = tuple(sorted((r.charter_id, r.version, r.digest) for r in records))
        compiled = self._compiled
        if compiled is None or key != compiled[0]:
            compiled = (key, PolicyEngine(CharterDesk(self._ws).compile_active(records)))
            self._compiled = compiled
        if self._cache is not None:
            self._seen = (listed, compiled[1])
        return compiled[1]

    def decide(self, request: AccessRequest, uow: UnitOfWork | None = None) -> Decision:
        """Default deny: an unknown partner, an unknown charter or no grant all deny."""
        if uow is None:
            with self._ws.store.unit_of_work(read_only=True) as own:
                return self.decide(request, own)
        try:
            status = self._view(uow).partner(request.partner).status
        except NotFound:
            return Decision(False, (f"no partner named {request.partner}",))
        return self.engine(uow).decide(request, partner_status=status)
