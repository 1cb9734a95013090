"""Key routes: the owner's handovers (anyone may read them) and a partner's key rotation.

- ``GET /v1/log/handovers`` — every owner-key handover in the log, each with its stored
  entry and an inclusion proof against the latest signed checkpoint (sent along).  Public,
  like the checkpoint: a partner who knows only the charter's owner key follows them to
  the key that signs now (:func:`~modelpact.audit.handover.follow_handovers`).
- ``POST /v1/partner/key`` — a partner enrols a new key, signed by its enrolled key and by
  the new one over a fresh challenge
  (:meth:`~modelpact.services.sessions.SessionDesk.rotate_partner_key`).  A refusal is
  recorded in the audit log (``partner.key_rotate_refused``) before the error goes out.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from fastapi import APIRouter, Request

from modelpact.audit.entries import AdminEntry
from modelpact.errors import ModelpactError
from modelpact.services.owner_keys import handover_proofs
from modelpact.wire import HandoverChain, HandoverEvidence, PartnerKeyRotated, PartnerKeyRotation

if TYPE_CHECKING:
    from modelpact.gateway.app import Gateway

__all__ = ["router"]

T = TypeVar("T")
router = APIRouter()


async def _thread(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


@router.get("/v1/log/handovers", operation_id="getHandovers", tags=["log"])
async def get_handovers(request: Request) -> HandoverChain:
    """The owner-key handovers, proved against the latest signed checkpoint."""
    gw = _gateway(request)

    def build() -> HandoverChain:
        with gw.workspace.store.unit_of_work(read_only=True) as uow:
            record = uow.audit.latest_checkpoint()
        if record is None:
            record = gw.log.checkpoint()
        proofs = handover_proofs(gw.workspace, record.size)
        return HandoverChain(
            checkpoint=record.note,
            handovers=[
                HandoverEvidence(
                    index=p.index, entry=_b64(p.entry), proof=[_b64(h) for h in p.proof]
                )
                for p in proofs
            ],
        )

    return await _thread(build)


@router.post("/v1/partner/key", operation_id="rotatePartnerKey", tags=["sessions"], status_code=200)
async def rotate_partner_key(request: Request, body: PartnerKeyRotation) -> PartnerKeyRotated:
    """Enrol the partner's new key (proved by the enrolled key and the new key)."""
    gw = _gateway(request)
    try:
        return await _thread(gw.sessions.rotate_partner_key, body)
    except ModelpactError as error:
        await gw.audit(
            AdminEntry(
                time=gw.workspace.clock(),
                actor=body.partner,
                subject=body.partner,
                action="partner.key_rotate_refused",
                detail={"new_key": body.new_key, "reason": error.summary[:500]},
            )
        )
        raise
