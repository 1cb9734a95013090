"""Audit use cases for the owner: checkpoints, inclusion proofs, exports for auditors."""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass

from modelpact.audit.bundle import build_export
from modelpact.audit.tree import consistency_proof, inclusion_proof
from modelpact.errors import NotFound
from modelpact.services.workspace import Workspace
from modelpact.store import CheckpointRecord

__all__ = ["AuditDesk", "InclusionEvidence"]


@dataclass(frozen=True, slots=True)
class InclusionEvidence:
    """Everything a partner needs to check that entry ``index`` is in the signed log."""

    origin: str
    index: int
    size: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    checkpoint: str

    def to_document(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "index": self.index,
            "size": self.size,
            "leaf_hash": base64.b64encode(self.leaf_hash).decode(),
            "proof": [base64.b64encode(p).decode() for p in self.proof],
            "checkpoint": self.checkpoint,
        }


class AuditDesk:
    """The owner's view of the workspace's audit log."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def checkpoint(self) -> CheckpointRecord:
        """A signed checkpoint covering every entry so far (issued now if needed)."""
        return self._ws.checkpoint()

    def prove(self, index: int) -> InclusionEvidence:
        """An inclusion proof for entry ``index`` against a checkpoint that covers it."""
        ws = self._ws
        with ws.store.unit_of_work() as uow:
            size = uow.audit.size()
            latest = uow.audit.latest_checkpoint()
        if not 0 <= index < size:
            raise NotFound(f"the audit log has no entry {index} (it holds {size})")
        if latest is None or latest.size <= index:
            latest = ws.checkpoint()
        with ws.store.unit_of_work() as uow:
            leaf = uow.audit.entry(index).leaf_hash
            proof = inclusion_proof(index, latest.size, uow.audit)
        return InclusionEvidence(ws.log_origin, index, latest.size, leaf, tuple(proof), latest.note)

    def export(self) -> str:
        """The log up to its latest checkpoint: entries, signed checkpoints, consistency proofs.

        Exactly the entries the newest checkpoint covers are exported (both are immutable),
        so entries or checkpoints other writers add meanwhile never make a sound log look
        tampered.
        """
        ws = self._ws
        ws.checkpoint()
        with ws.store.unit_of_work() as uow:
            checkpoints = uow.audit.checkpoints()
            size = checkpoints[-1].size if checkpoints else 0
            records = uow.audit.entries(0, size)
            sizes = [c.size for c in checkpoints if c.size > 0]
            proofs = [
                (old, new, consistency_proof(old, new, uow.audit))
                for old, new in itertools.pairwise(sizes)
            ]
        return build_export(
            origin=ws.log_origin,
            public_key=ws.owner_verify_key,
            entries=[(r.idx, r.leaf_hash, r.entry) for r in records],
            checkpoints=[c.note for c in checkpoints],
            consistency=proofs,
        )
