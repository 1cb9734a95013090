"""Administrative events: every change the owner makes becomes an audit log entry."""

from __future__ import annotations

from modelpact.audit.entries import AdminEntry
from modelpact.audit.log import Receipt, append_within
from modelpact.services.workspace import Workspace
from modelpact.store import UnitOfWork

__all__ = ["record_event"]


def record_event(
    ws: Workspace,
    uow: UnitOfWork,
    *,
    actor: str,
    kind: str,
    subject: str,
    **detail: str | int | bool | None,
) -> Receipt:
    """Append to the audit log in the caller's transaction: it lands with the change or not at all.

    Call it last in the unit of work: it takes the log's sequencer lock.
    """
    now = ws.clock()
    entry = AdminEntry(time=now, actor=actor, subject=subject, action=kind, detail=detail)
    return append_within(uow, [entry], now=now)[0]
