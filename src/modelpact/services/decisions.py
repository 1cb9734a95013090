"""Policy decisions over the workspace's active charters and partners' current status."""

from __future__ import annotations

from modelpact.errors import NotFound
from modelpact.policy import AccessRequest, Decision, PolicyEngine
from modelpact.services.charters import CharterDesk
from modelpact.services.workspace import Workspace
from modelpact.store import UnitOfWork

__all__ = ["Decider"]


class Decider:
    """Answers access requests.  The compiled policy set is rebuilt only when charters change."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._key: tuple[tuple[str, int, str], ...] | None = None
        self._engine = PolicyEngine()

    def engine(self, uow: UnitOfWork | None = None) -> PolicyEngine:
        """The engine for the charters active now; a stored charter that fails its checks
        raises :class:`~modelpact.errors.Tampered` and stops every decision (fail closed).

        Reads the charter list in ``uow`` when given (the gateway's one read per request);
        charters are compiled again only when that list changed.
        """
        if uow is None:
            with self._ws.store.unit_of_work(read_only=True) as own:
                return self.engine(own)
        records = [r for r in uow.charters.list() if r.status == "active"]
        key = tuple(sorted((r.charter_id, r.version, r.digest) for r in records))
        if key != self._key:
            engine = PolicyEngine(CharterDesk(self._ws).compile_active(records))
            self._engine, self._key = engine, key
        return self._engine

    def decide(self, request: AccessRequest, uow: UnitOfWork | None = None) -> Decision:
        """Default deny: an unknown partner, an unknown charter or no grant all deny."""
        if uow is None:
            with self._ws.store.unit_of_work(read_only=True) as own:
                return self.decide(request, own)
        try:
            status = uow.partners.get(request.partner).status
        except NotFound:
            return Decision(False, (f"no partner named {request.partner}",))
        return self.engine(uow).decide(request, partner_status=status)
