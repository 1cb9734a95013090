"""Administrative events: every change the owner makes is recorded with who, what and when."""

from __future__ import annotations

import json
from typing import Any

from modelpact.services.workspace import Workspace
from modelpact.store import UnitOfWork

__all__ = ["record_event"]


def record_event(
    ws: Workspace, uow: UnitOfWork, *, actor: str, kind: str, subject: str, **detail: Any
) -> int:
    """Append an event in the caller's transaction: it lands with the change or not at all."""
    return uow.events.append(
        ws.clock(), actor, kind, subject, json.dumps(detail, sort_keys=True, default=str)
    )
