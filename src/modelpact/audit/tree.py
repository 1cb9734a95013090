"""The Merkle tree of the audit log (RFC 9162 section 2.1): hashes, proofs, verifiers.

Why it exists: partners and auditors must be able to check, with nothing but
this module, that an access record is in the log (inclusion) and that the log
only ever grew (consistency).  The hashing follows RFC 9162 exactly, so any
RFC 6962/9162 implementation agrees with it::

    leaf_hash(entry)  = SHA-256(0x00 || entry)
    node_hash(l, r)   = SHA-256(0x01 || l || r)
    EMPTY_ROOT        = SHA-256("")

Nodes are addressed by :data:`NodeId` ``(level, index)``: the complete subtree
of ``2**level`` leaves that starts at leaf ``index * 2**level``; level 0 holds
the leaf hashes.  Only complete subtrees are ever stored, and a complete
subtree never changes once the log has grown past it, so the store is
append-only too.  The log writer appends through a :class:`Frontier`, which
returns every node that becomes complete; the store keeps those.

Proofs are built from stored nodes only, never by rehashing the log: the nodes
a proof needs are planned first (pure arithmetic on sizes), read in ONE
:meth:`NodeReader.nodes` call of at most about ``2 * log2(size)`` ids, then
assembled.

Errors:

- a proof argument out of range (index past the end, sizes reversed) is the
  caller's mistake: :class:`~modelpact.errors.InvalidInput`;
- a node the store should hold but does not return, or returns with the wrong
  length, is the store's fault, not the caller's and not evidence of a bad
  proof: :class:`~modelpact.errors.StorageUnavailable` (so an API answers 503,
  not 400 and not "tampered");
- a proof that does not verify: :class:`~modelpact.errors.ProofInvalid`, with a
  one-line reason.

The verifiers follow RFC 9162 sections 2.1.3.2 and 2.1.4.2 and the
transparency-dev test vectors, which treat every consistency proof from size 0
as invalid (0 -> 0 included): the empty tree is trivially a prefix of every
tree, so a caller that holds a size-0 checkpoint has nothing to check and
must say so itself (see :mod:`modelpact.audit.witness`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol, TypeAlias

from modelpact.errors import InvalidInput, ProofInvalid, StorageUnavailable

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Frontier",
    "NodeId",
    "NodeReader",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_node_ids",
    "tree_root",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Bytes in every hash of the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves (RFC 9162: the hash of the empty string)."""

NodeId: TypeAlias = tuple[int, int]
"""``(level, index)``: the subtree of ``2**level`` leaves from leaf ``index * 2**level``."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


class NodeReader(Protocol):
    """Where proofs read stored complete-subtree hashes from (the log's store).

    ``nodes`` answers every id it is given, in one round trip; an id it does not
    hold is simply absent from the mapping (the caller reports it).
    """

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]: ...


def leaf_hash(entry: bytes) -> bytes:
    """RFC 9162 leaf hash: ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


# -- planning: which stored nodes a root or a proof needs (pure arithmetic) -------------


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n >= 2``): RFC 9162's ``k``."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_ids(start: int, end: int) -> list[NodeId]:
    """The maximal complete subtrees covering leaves ``[start, end)``, left to right.

    Only for the ranges RFC 9162's recursion produces, whose ``start`` is a
    multiple of a power of two at least ``end - start``: for those, the subtree
    sizes are the binary digits of ``end - start``, largest first, and the
    range's hash is the right fold of their hashes (see :func:`_fold`).
    """
    ids: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        ids.append((level, start >> level))
        start += 1 << level
    return ids


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form RFC 9162 ``PATH(index, D[0:size])``, in proof order."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()  # PATH lists the sibling nearest the leaf first
    return ranges


def _consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form RFC 9162 ``SUBPROOF(old, D[0:new], true)``, in order."""
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, new_size
    whole_old_tree = True  # RFC 9162's flag b: the old tree is D[0:hi] itself
    while old_size != hi:
        k = _split(hi - lo)
        if old_size <= lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            whole_old_tree = False
    if not whole_old_tree:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


def root_node_ids(size: int) -> list[NodeId]:
    """The stored nodes whose hashes make the root of a tree of ``size`` leaves.

    They are the maximal complete subtrees, left to right, one per set bit of
    ``size`` (so at most 64 for any 64-bit size); empty for the empty tree.
    """
    if size < 0:
        raise InvalidInput(f"a tree size cannot be negative ({size})")
    return _range_ids(0, size)


# -- fetching and assembling ------------------------------------------------------------


def _fetch(reader: NodeReader, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
    """Read ``ids`` in one call and check the store answered all of them properly."""
    if not ids:
        return {}
    found = reader.nodes(ids)
    for node in ids:
        value = found.get(node)
        if value is None:
            raise StorageUnavailable(
                f"the audit log store is missing tree node {node}",
                hint="the node table is incomplete; restore the store from a backup",
            )
        if len(value) != HASH_SIZE:
            raise StorageUnavailable(
                f"the audit log store holds a {len(value)}-byte hash for tree node {node}",
                hint="the node table is corrupt; restore the store from a backup",
            )
    return found


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its maximal complete subtrees: ``h1 . (h2 . (... hn))``."""
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def _assemble(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    plans = [_range_ids(start, end) for start, end in ranges]
    found = _fetch(reader, {node for plan in plans for node in plan})
    return [_fold([found[node] for node in plan]) for plan in plans]


def tree_root(size: int, reader: NodeReader) -> bytes:
    """The root hash of the first ``size`` leaves, from at most 64 stored nodes."""
    ids = root_node_ids(size)
    if not ids:
        return EMPTY_ROOT
    found = _fetch(reader, ids)
    return _fold([found[node] for node in ids])


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 ``PATH``: the audit path of leaf ``index`` in the tree of ``size`` leaves."""
    if size < 0 or not 0 <= index < size:
        raise InvalidInput(
            f"no leaf {index} in a tree of size {size}",
            hint="ask for a leaf index below the tree size",
        )
    return _assemble(_inclusion_ranges(index, size), reader)


def consistency_proof(old_size: int, new_size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 ``SUBPROOF``: proof that the first ``old_size`` leaves are a prefix.

    Empty when ``old_size`` is 0 or equals ``new_size`` (nothing to prove).
    """
    if not 0 <= old_size <= new_size:
        raise InvalidInput(
            f"no consistency proof from size {old_size} to size {new_size}",
            hint="the old size must be between 0 and the new size",
        )
    if old_size in (0, new_size):
        return []
    return _assemble(_consistency_ranges(old_size, new_size), reader)


# -- the writer's view: the frontier of complete subtrees ---------------------------------


class Frontier:
    """The maximal complete subtrees of the tree so far: enough to append and to give the root.

    ``append`` takes the next leaf hash and returns every node that became
    complete (the leaf at level 0, then each new parent); the writer
    stores exactly those, which is how the store comes to hold every complete
    subtree that proofs read.  At most one hash per set bit of ``size`` is kept.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self) -> None:
        """The frontier of the empty tree."""
        self._size = 0
        self._hashes: list[bytes] = []

    @classmethod
    def load(cls, size: int, reader: NodeReader) -> Frontier:
        """The frontier of a stored tree of ``size`` leaves, read in one ``nodes()`` call."""
        ids = root_node_ids(size)
        found = _fetch(reader, ids)
        frontier = cls()
        frontier._size = size
        frontier._hashes = [found[node] for node in ids]
        return frontier

    @property
    def size(self) -> int:
        """How many leaves the tree holds."""
        return self._size

    @property
    def nodes(self) -> list[tuple[NodeId, bytes]]:
        """The maximal complete subtrees, left to right, with their hashes."""
        return list(zip(root_node_ids(self._size), self._hashes, strict=True))

    def append(self, leaf: bytes) -> list[tuple[NodeId, bytes]]:
        """Add the next leaf, given as its leaf hash (:func:`leaf_hash` of the entry).

        Returns the nodes that became complete, lowest first: ``((0, index),
        leaf)`` and then each parent that the new leaf completes.  A ``leaf``
        that is not 32 bytes (an entry passed unhashed, say) raises
        :class:`InvalidInput`.
        """
        if len(leaf) != HASH_SIZE:
            raise InvalidInput(
                f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}",
                hint="append leaf_hash(entry), not the entry itself",
            )
        index = self._size
        current = bytes(leaf)
        created: list[tuple[NodeId, bytes]] = [((0, index), current)]
        level, position = 0, index
        while position & 1:
            current = node_hash(self._hashes.pop(), current)
            level, position = level + 1, position >> 1
            created.append(((level, position), current))
        self._hashes.append(current)
        self._size = index + 1
        return created

    def extend(self, leaves: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
        """Append many leaf hashes; return the inner nodes they complete as ``(level, index,
        hash)`` rows, level >= 1 (the writer's batch form of :meth:`append`)."""
        for leaf in leaves:
            if len(leaf) != HASH_SIZE:
                raise InvalidInput(f"a leaf hash has {HASH_SIZE} bytes, not {len(leaf)}")
        hashes, size = self._hashes, self._size
        made: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            current, level, position = bytes(leaf), 0, size
            while position & 1:
                current = node_hash(hashes.pop(), current)
                level, position = level + 1, position >> 1
                made.append((level, position, current))
            hashes.append(current)
            size += 1
        self._size = size
        return made

    def root(self) -> bytes:
        """The root hash of the tree so far (:data:`EMPTY_ROOT` when empty)."""
        return _fold(self._hashes) if self._hashes else EMPTY_ROOT

    def __repr__(self) -> str:
        return f"Frontier(size={self._size}, root={self.root().hex()})"


# -- verifiers (RFC 9162 2.1.3.2 and 2.1.4.2) ---------------------------------------------


def _check_hashes(what: str, proof: Sequence[bytes]) -> None:
    for position, value in enumerate(proof):
        if len(value) != HASH_SIZE:
            raise ProofInvalid(
                f"{what} proof does not verify: hash {position} has {len(value)} bytes, "
                f"not {HASH_SIZE}"
            )


def verify_inclusion(
    index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofInvalid` unless ``proof`` puts ``leaf_hash`` at ``index`` under ``root``.

    ``root`` must be the root of the tree of ``size`` leaves (from a verified
    checkpoint); ``leaf_hash`` is :func:`leaf_hash` of the entry.
    """
    if not 0 <= index < size:
        raise ProofInvalid(
            f"inclusion proof does not verify: leaf index {index} is not in a tree of size {size}"
        )
    if len(leaf_hash) != HASH_SIZE:
        raise ProofInvalid(
            f"inclusion proof does not verify: the leaf hash has {len(leaf_hash)} bytes, "
            f"not {HASH_SIZE}"
        )
    _check_hashes("inclusion", proof)
    fn, sn = index, size - 1
    result = leaf_hash
    for sibling in proof:
        if sn == 0:
            raise ProofInvalid(
                f"inclusion proof does not verify: {len(proof)} hashes are too many "
                f"for leaf {index} of {size}"
            )
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = node_hash(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid(
            f"inclusion proof does not verify: {len(proof)} hashes are too few "
            f"for leaf {index} of {size}"
        )
    if result != root:
        raise ProofInvalid(
            f"inclusion proof does not verify: leaf {index} does not lead to the root "
            f"of the tree of size {size}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofInvalid` unless the tree ``old_root`` is a prefix of ``new_root``.

    Equal sizes need an empty proof and identical roots.  A proof from size 0
    is always refused (as in the RFC 9162 test vectors): there is nothing to
    prove, and accepting one would let any bytes pass as the old root.
    """
    if old_size < 0 or new_size < old_size:
        raise ProofInvalid(
            f"consistency proof does not verify: size {old_size} cannot grow into {new_size}"
        )
    if old_size == 0:
        raise ProofInvalid(
            "consistency proof does not verify: a proof from the empty tree proves nothing"
        )
    if old_size == new_size:
        if proof:
            raise ProofInvalid(
                "consistency proof does not verify: equal sizes need an empty proof, "
                f"got {len(proof)} hashes"
            )
        if old_root != new_root:
            raise ProofInvalid(
                f"consistency proof does not verify: two different roots for size {old_size}"
            )
        return
    if not proof:
        raise ProofInvalid(
            f"consistency proof does not verify: the proof from {old_size} to {new_size} is empty"
        )
    _check_hashes("consistency", proof)
    path = list(proof)
    if (old_size & (old_size - 1)) == 0:  # a complete subtree: the proof omits its root
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    old_result = new_result = path[0]
    for value in path[1:]:
        if sn == 0:
            raise ProofInvalid(
                f"consistency proof does not verify: {len(proof)} hashes are too many "
                f"from {old_size} to {new_size}"
            )
        if fn & 1 or fn == sn:
            old_result = node_hash(value, old_result)
            new_result = node_hash(value, new_result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            new_result = node_hash(new_result, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofInvalid(
            f"consistency proof does not verify: {len(proof)} hashes are too few "
            f"from {old_size} to {new_size}"
        )
    if old_result != old_root:
        raise ProofInvalid(
            f"consistency proof does not verify: it does not lead to the root of size {old_size}"
        )
    if new_result != new_root:
        raise ProofInvalid(
            f"consistency proof does not verify: it does not lead to the root of size {new_size}"
        )
