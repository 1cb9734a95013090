"""The Merkle tree against RFC 9162's vectors, a naive reference, and every corruption."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import random
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpact.audit.tree import (
    EMPTY_ROOT,
    Frontier,
    NodeId,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_node_ids,
    tree_root,
    verify_consistency,
    verify_inclusion,
)
from modelpact.errors import InvalidInput, ProofInvalid, StorageUnavailable

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "rfc9162"

# The leaves of RFC 6962's test tree, which transparency-dev's vectors are drawn from.
RFC6962_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]


# -- a naive reference: RFC 9162 2.1.1, 2.1.3.1 and 2.1.4.1 written as recursion -----------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class Reference:
    """MTH, PATH and SUBPROOF computed straight from the definitions over a leaf list."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self.mth = functools.lru_cache(maxsize=None)(self._mth)

    def _mth(self, start: int, end: int) -> bytes:
        n = end - start
        if n == 0:
            return hashlib.sha256(b"").digest()
        if n == 1:
            return hashlib.sha256(b"\x00" + self.entries[start]).digest()
        k = _k(n)
        return hashlib.sha256(
            b"\x01" + self.mth(start, start + k) + self.mth(start + k, end)
        ).digest()

    def path(self, m: int, start: int, end: int) -> list[bytes]:
        n = end - start
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return [*self.path(m, start, start + k), self.mth(start + k, end)]
        return [*self.path(m - k, start + k, end), self.mth(start, start + k)]

    def subproof(self, m: int, start: int, end: int, b: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if b else [self.mth(start, end)]
        k = _k(n)
        if m <= k:
            return [*self.subproof(m, start, start + k, b), self.mth(start + k, end)]
        return [*self.subproof(m - k, start + k, end, False), self.mth(start, start + k)]


class DictReader:
    """A node store in a dict that counts its calls and refuses nodes incomplete at ``size``."""

    def __init__(self, store: Mapping[NodeId, bytes], size: int) -> None:
        self.store = store
        self.size = size
        self.calls = 0
        self.ids = 0

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        self.calls += 1
        self.ids += len(ids)
        for level, index in ids:
            assert (index + 1) << level <= self.size, f"node {(level, index)} read at {self.size}"
        return {node: self.store[node] for node in ids if node in self.store}


def _build(entries: Sequence[bytes]) -> dict[NodeId, bytes]:
    frontier = Frontier()
    store: dict[NodeId, bytes] = {}
    for entry in entries:
        for node, value in frontier.append(leaf_hash(entry)):
            assert node not in store
            store[node] = value
    return store


ENTRIES = [f"entry {i}".encode() for i in range(1024)]
STORE = _build(ENTRIES)
REF = Reference(ENTRIES)


def reader(size: int) -> DictReader:
    return DictReader(STORE, size)


# -- the published vectors ---------------------------------------------------------------


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _vector_files(kind: str) -> list[Any]:
    folder = VECTORS / "testdata" / kind
    files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    if not files:  # a missing vector set must fail, not be skipped for an empty parameter list
        return [pytest.param(None, id=f"{kind}-vectors-missing")]
    return [pytest.param(path, id=str(path.relative_to(folder))) for path in files]


def _load(path: Path | None) -> dict[str, Any]:
    if path is None:
        pytest.fail(f"the RFC 9162 test vectors are missing from {VECTORS}")
    case: dict[str, Any] = json.loads(path.read_text())
    return case


def test_vector_sets_are_complete() -> None:
    assert VECTORS.is_dir(), f"the RFC 9162 test vectors are missing from {VECTORS}"
    assert len(list((VECTORS / "testdata" / "inclusion").rglob("*.json"))) == 98
    assert len(list((VECTORS / "testdata" / "consistency").rglob("*.json"))) == 98


@pytest.mark.parametrize("path", _vector_files("inclusion"))
def test_inclusion_vectors(path: Path | None) -> None:
    case = _load(path)
    args = (
        case["leafIdx"],
        case["treeSize"],
        _b64(case["leafHash"]),
        [_b64(p) for p in case["proof"] or []],
        _b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(ProofInvalid):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", _vector_files("consistency"))
def test_consistency_vectors(path: Path | None) -> None:
    case = _load(path)
    args = (
        case["size1"],
        case["size2"],
        _b64(case["root1"]),
        _b64(case["root2"]),
        [_b64(p) for p in case["proof"] or []],
    )
    if case["wantErr"]:
        with pytest.raises(ProofInvalid):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_known_answers() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )


def test_prover_reproduces_every_happy_path_vector() -> None:
    # The vectors' trees are RFC 6962's test leaves: our proofs must be theirs, byte for byte.
    store = _build(RFC6962_LEAVES)
    checked = 0
    for path in sorted((VECTORS / "testdata" / "inclusion").glob("*/happy-path.json")):
        case = json.loads(path.read_text())
        size = case["treeSize"]
        assert tree_root(size, DictReader(store, size)) == _b64(case["root"])
        got = inclusion_proof(case["leafIdx"], size, DictReader(store, size))
        assert got == [_b64(p) for p in case["proof"] or []], path
        checked += 1
    for path in sorted((VECTORS / "testdata" / "consistency").glob("*/happy-path.json")):
        case = json.loads(path.read_text())
        old, new = case["size1"], case["size2"]
        assert tree_root(old, DictReader(store, old)) == _b64(case["root1"])
        assert tree_root(new, DictReader(store, new)) == _b64(case["root2"])
        got = consistency_proof(old, new, DictReader(store, new))
        assert got == [_b64(p) for p in case["proof"] or []], path
        checked += 1
    assert checked == 10


# -- the prover against the reference, for every size ---------------------------------------


def _indices(size: int, rng: random.Random) -> list[int]:
    if size <= 64:
        return list(range(size))
    picks = {0, 1, size // 2, size - 2, size - 1}
    power = 1
    while power < size:
        picks.update(i for i in (power - 1, power, power + 1) if i < size)
        power *= 2
    picks.update(rng.randrange(size) for _ in range(8))
    return sorted(picks)


def test_roots_and_frontiers_match_the_reference_for_every_size() -> None:
    frontier = Frontier()
    for size in range(1025):
        expected = REF.mth(0, size)
        assert frontier.root() == expected
        assert tree_root(size, reader(size)) == expected
        loaded = Frontier.load(size, reader(size))
        assert loaded.size == size
        assert loaded.root() == expected
        assert loaded.nodes == frontier.nodes
        assert len(root_node_ids(size)) == bin(size).count("1")
        if size < 1024:
            created = frontier.append(leaf_hash(ENTRIES[size]))
            assert loaded.append(leaf_hash(ENTRIES[size])) == created


def test_every_stored_node_is_the_hash_of_its_leaves() -> None:
    assert len(STORE) == 2 * 1024 - 1  # every complete subtree of a 1024-leaf tree, once
    for (level, index), value in STORE.items():
        assert value == REF.mth(index << level, (index + 1) << level)


def test_inclusion_proofs_match_the_reference_for_every_size() -> None:
    rng = random.Random(9162)
    for size in range(1, 1025):
        root = REF.mth(0, size)
        for index in _indices(size, rng):
            counting = reader(size)
            proof = inclusion_proof(index, size, counting)
            assert proof == REF.path(index, 0, size), (index, size)
            verify_inclusion(index, size, leaf_hash(ENTRIES[index]), proof, root)
            assert counting.calls == (1 if proof else 0)
            assert counting.ids <= 2 * math.log2(size) + 2


def test_consistency_proofs_match_the_reference_for_every_pair() -> None:
    for new in range(1, 257):
        new_root = REF.mth(0, new)
        for old in range(1, new + 1):
            counting = reader(new)
            proof = consistency_proof(old, new, counting)
            assert proof == REF.subproof(old, 0, new, True), (old, new)
            verify_consistency(old, new, REF.mth(0, old), new_root, proof)
            assert counting.calls == (1 if proof else 0)
            assert counting.ids <= 2 * math.log2(new) + 2


def test_large_trees_read_few_nodes_in_one_call() -> None:
    # Sizes far beyond the test store: a fake reader answers any node with a fixed hash.
    class AnyNode:
        def __init__(self) -> None:
            self.calls: list[int] = []

        def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
            self.calls.append(len(ids))
            return dict.fromkeys(ids, b"\x07" * 32)

    rng = random.Random(6962)
    for _ in range(200):
        size = rng.randrange(2, 2**63)
        index = rng.randrange(size)
        old = rng.randrange(1, size)
        for prove in (
            lambda r: inclusion_proof(index, size, r),  # noqa: B023 - called right away
            lambda r: consistency_proof(old, size, r),  # noqa: B023
            lambda r: tree_root(size, r),  # noqa: B023
            lambda r: Frontier.load(size, r),  # noqa: B023
        ):
            fake = AnyNode()
            prove(fake)
            assert len(fake.calls) == 1
            assert fake.calls[0] <= 2 * math.log2(size) + 2


def test_empty_cases_read_nothing() -> None:
    counting = reader(0)
    assert tree_root(0, counting) == EMPTY_ROOT
    assert Frontier.load(0, counting).root() == EMPTY_ROOT
    assert consistency_proof(0, 7, reader(7)) == []
    assert consistency_proof(7, 7, reader(7)) == []
    assert inclusion_proof(0, 1, reader(1)) == []
    assert counting.calls == 0
    assert Frontier().size == 0
    assert Frontier().root() == EMPTY_ROOT


def test_out_of_range_arguments_are_invalid_input() -> None:
    for index, size in ((-1, 5), (5, 5), (0, 0), (6, 5), (0, -1)):
        with pytest.raises(InvalidInput, match="no leaf"):
            inclusion_proof(index, size, reader(1024))
    for old, new in ((3, 2), (-1, 2), (1, 0)):
        with pytest.raises(InvalidInput, match="no consistency proof"):
            consistency_proof(old, new, reader(1024))
    with pytest.raises(InvalidInput):
        root_node_ids(-1)
    with pytest.raises(InvalidInput):
        tree_root(-1, reader(1024))


def test_a_store_missing_a_node_is_a_storage_problem() -> None:
    holey = dict(STORE)
    del holey[(2, 1)]
    with pytest.raises(StorageUnavailable, match=r"missing tree node \(2, 1\)"):
        inclusion_proof(0, 8, DictReader(holey, 8))
    short = dict(STORE)
    short[(3, 0)] = b"\x00" * 31
    with pytest.raises(StorageUnavailable, match="31-byte hash"):
        tree_root(8, DictReader(short, 8))
    with pytest.raises(StorageUnavailable):
        Frontier.load(9, DictReader(short, 9))


def test_frontier_refuses_what_is_not_a_leaf_hash() -> None:
    frontier = Frontier()
    with pytest.raises(InvalidInput, match="a leaf hash has 32 bytes, not 22"):
        frontier.append(b"an entry, not its hash")
    assert frontier.size == 0


def test_frontier_returns_the_leaf_then_each_completed_parent() -> None:
    frontier = Frontier()
    for entry in ENTRIES[:7]:
        frontier.append(leaf_hash(entry))
    created = frontier.append(leaf_hash(ENTRIES[7]))
    assert [node for node, _ in created] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert created[-1][1] == REF.mth(0, 8)
    assert frontier.nodes == [((3, 0), REF.mth(0, 8))]
    assert repr(frontier) == f"Frontier(size=8, root={REF.mth(0, 8).hex()})"


@settings(max_examples=60)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=6))
def test_extending_in_batches_is_appending_one_by_one(batches: list[int]) -> None:
    one, many = Frontier(), Frontier()
    leaves = [leaf_hash(e) for e in ENTRIES[: sum(batches)]]
    start = 0
    for count in batches:
        chunk = leaves[start : start + count]
        expected = [
            (level, at, digest)
            for leaf in chunk
            for (level, at), digest in one.append(leaf)
            if level
        ]
        assert many.extend(chunk) == expected
        start += count
    assert (many.size, many.root()) == (one.size, one.root())


def test_extend_refuses_a_batch_with_any_bad_leaf_and_changes_nothing() -> None:
    frontier = Frontier()
    good = leaf_hash(ENTRIES[0])
    with pytest.raises(InvalidInput, match="a leaf hash has 32 bytes"):
        frontier.extend([good, b"short"])
    assert frontier.size == 0


# -- corrupted proofs are refused -----------------------------------------------------------


CORRUPTION_SIZES = [1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 31, 32, 33, 100, 127, 128, 129, 255, 256]


@pytest.mark.parametrize("size", CORRUPTION_SIZES)
def test_corrupted_inclusion_proofs_are_refused(size: int) -> None:
    root = REF.mth(0, size)
    other_root = REF.mth(0, size + 1)
    for index in range(size):
        leaf = leaf_hash(ENTRIES[index])
        proof = inclusion_proof(index, size, reader(size))
        verify_inclusion(index, size, leaf, proof, root)
        bad: list[tuple[int, int, bytes, list[bytes], bytes]] = [
            (index + 1, size, leaf, proof, root),
            (index - 1, size, leaf, proof, root),
            (index, size * 2, leaf, proof, root),
            (index, size // 2, leaf, proof, root),
            (index, size, leaf, proof, other_root),
            (index, size, leaf_hash(b"forged"), proof, root),
            (index, size, leaf, [*proof, root], root),
            (index, size, leaf, [root, *proof], root),
            (index, size, leaf, [leaf, *proof], root),
        ]
        if proof:
            bad.append((index, size, leaf, proof[:-1], root))
            bad.append((index, size, leaf, proof[1:], root))
        for args in bad:
            with pytest.raises(ProofInvalid):
                verify_inclusion(*args)


@pytest.mark.parametrize("new", [2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33, 100, 128, 129, 256])
def test_corrupted_consistency_proofs_are_refused(new: int) -> None:
    new_root = REF.mth(0, new)
    for old in range(1, new):
        old_root = REF.mth(0, old)
        proof = consistency_proof(old, new, reader(new))
        verify_consistency(old, new, old_root, new_root, proof)
        bad: list[tuple[int, int, bytes, bytes, list[bytes]]] = [
            (old, new, new_root, old_root, proof),  # swapped roots
            (new, old, new_root, old_root, proof),  # swapped sizes and roots
            (old, new, old_root, REF.mth(0, new + 1), proof),
            (old, new, REF.mth(0, old - 1), new_root, proof),
            (old, new * 2, old_root, new_root, proof),
            (old, new // 2, old_root, new_root, proof),
            (old * 2, new, old_root, new_root, proof),
            (old // 2, new, old_root, new_root, proof),
            (old, new, old_root, new_root, proof[:-1]),
            (old, new, old_root, new_root, proof[1:]),
            (old, new, old_root, new_root, [*proof, new_root]),
            (old, new, old_root, new_root, [old_root, *proof]),
            (old, new, old_root, new_root, []),
            (0, new, EMPTY_ROOT, new_root, proof),
        ]
        if old + 1 < new:
            bad.append((old + 1, new, old_root, new_root, proof))
        if old > 1:
            bad.append((old - 1, new, old_root, new_root, proof))
        for args in bad:
            with pytest.raises(ProofInvalid):
                verify_consistency(*args)


def _flip(data: bytes, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[bit // 8] ^= 1 << (bit % 8)
    return bytes(flipped)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_breaks_an_inclusion_proof(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 300), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = inclusion_proof(index, size, reader(size))
    leaf, root = leaf_hash(ENTRIES[index]), REF.mth(0, size)
    parts = [leaf, root, *proof]
    where = data.draw(st.integers(0, len(parts) - 1), label="part")
    bit = data.draw(st.integers(0, 255), label="bit")
    parts[where] = _flip(parts[where], bit)
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, size, parts[0], parts[2:], parts[1])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_flipped_bit_breaks_a_consistency_proof(data: st.DataObject) -> None:
    new = data.draw(st.integers(2, 300), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    proof = consistency_proof(old, new, reader(new))
    parts = [REF.mth(0, old), REF.mth(0, new), *proof]
    where = data.draw(st.integers(0, len(parts) - 1), label="part")
    bit = data.draw(st.integers(0, 255), label="bit")
    parts[where] = _flip(parts[where], bit)
    with pytest.raises(ProofInvalid):
        verify_consistency(old, new, parts[0], parts[1], parts[2:])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.data())
def test_a_proof_for_one_tree_fails_for_another(a: int, b: int, data: st.DataObject) -> None:
    # The law: a proof checked against the root of the size it claims holds only for the
    # tree it was made for.
    if a == b:
        return
    index = data.draw(st.integers(0, min(a, b) - 1), label="index")
    proof = inclusion_proof(index, a, reader(a))
    with pytest.raises(ProofInvalid):
        verify_inclusion(index, b, leaf_hash(ENTRIES[index]), proof, REF.mth(0, b))


def test_refusals_say_why_in_one_line() -> None:
    proof = inclusion_proof(3, 10, reader(10))
    with pytest.raises(ProofInvalid) as caught:
        verify_inclusion(3, 10, leaf_hash(ENTRIES[3]), [*proof[:-1], b"short"], REF.mth(0, 10))
    assert "hash 3 has 5 bytes" in caught.value.summary
    assert "\n" not in caught.value.diagnostics()
    with pytest.raises(ProofInvalid, match="from the empty tree"):
        verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    with pytest.raises(ProofInvalid, match="two different roots"):
        verify_consistency(4, 4, REF.mth(0, 4), REF.mth(0, 5), [])
