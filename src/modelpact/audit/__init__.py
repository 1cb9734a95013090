"""The audit log's verifiable core: Merkle tree and proofs, signed checkpoints, a witness.

Every access to a shared model is an entry in an append-only log.  This package
holds the parts that partners and auditors run themselves, with no server
installed (no database, web or policy imports):

- :mod:`~modelpact.audit.tree`: RFC 9162 hashing, proofs built from stored
  complete-subtree hashes, their verifiers, and the writer's :class:`Frontier`;
- :mod:`~modelpact.audit.note`: C2SP signed notes with Ed25519 keys;
- :mod:`~modelpact.audit.checkpoint`: signed tree heads (C2SP tlog-checkpoint);
- :mod:`~modelpact.audit.witness`: keeps the last checkpoint and refuses forks
  and rollbacks, keeping the evidence.
"""

from modelpact.audit.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    open_checkpoint,
    sign_checkpoint,
)
from modelpact.audit.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    key_id,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from modelpact.audit.tree import (
    EMPTY_ROOT,
    HASH_SIZE,
    Frontier,
    NodeId,
    NodeReader,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_node_ids,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from modelpact.audit.witness import Witness

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "Frontier",
    "NodeId",
    "NodeReader",
    "Witness",
    "consistency_proof",
    "inclusion_proof",
    "key_id",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "open_note",
    "parse_verifier_key",
    "root_node_ids",
    "sign_checkpoint",
    "sign_note",
    "tree_root",
    "verifier_key",
    "verify_consistency",
    "verify_inclusion",
]
