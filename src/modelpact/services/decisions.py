"""Policy decisions over the workspace's active charters and partners' current status."""

from __future__ import annotations

from modelpact.errors import NotFound
from modelpact.policy import AccessRequest, Decision, PolicyEngine
from modelpact.services.charters import CharterDesk
from modelpact.services.workspace import Workspace

__all__ = ["Decider"]


class Decider:
    """Answers access requests.  The compiled policy set is rebuilt only when charters change."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace
        self._key: tuple[tuple[str, int, str], ...] | None = None
        self._engine = PolicyEngine()

    def engine(self) -> PolicyEngine:
        """The engine for the charters active now; a stored charter that fails its checks
        raises :class:`~modelpact.errors.Tampered` and stops every decision (fail closed)."""
        desk = CharterDesk(self._ws)
        records = [r for r in desk.all() if r.status == "active"]
        key = tuple(sorted((r.charter_id, r.version, r.digest) for r in records))
        if key != self._key:
            self._engine = PolicyEngine(desk.compile_active(records))
            self._key = key
        return self._engine

    def decide(self, request: AccessRequest) -> Decision:
        """Default deny: an unknown partner, an unknown charter or no grant all deny."""
        try:
            with self._ws.store.unit_of_work(read_only=True) as uow:
                status = uow.partners.get(request.partner).status
        except NotFound:
            return Decision(False, (f"no partner named {request.partner}",))
        return self.engine().decide(request, partner_status=status)
