"""Subtree positions: how ``audit_subtrees`` keys the log's complete subtrees.

A subtree ``(level, idx)`` is stored at ``pos = (last << 6) | level``, ``last``
being its last leaf; the repository and the appender convert at the SQL boundary.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelpact.errors import InvalidInput
from modelpact.store import AuditNodeReader, SqlStore
from modelpact.store._sql_audit import MAX_LEAVES, MAX_LEVEL, _node_id, _position
from tests.store.test_audit_contract import T0, all_nodes, new_nodes, record

Node = tuple[int, int]
Batch = tuple[list[tuple[int, bytes, bytes]], list[tuple[int, int, bytes]]]

# Every subtree the log can hold: level 1 to 57, ending below leaf 2**57.
subtrees = st.integers(1, 57).flatmap(
    lambda level: st.tuples(st.just(level), st.integers(0, (MAX_LEAVES >> level) - 1))
)


def last_leaf(node: Node) -> int:
    level, idx = node
    return ((idx + 1) << level) - 1


def completed_by(leaf: int) -> Iterator[Node]:
    """The subtrees that appending ``leaf`` completes, lowest first (one per trailing 1 bit)."""
    level = 1
    while (leaf >> (level - 1)) & 1:
        yield level, leaf >> level
        level += 1


@given(subtrees)
def test_a_position_names_its_subtree(node: Node) -> None:
    pos = _position(*node)
    assert 0 <= pos < 2**63  # a signed bigint
    assert 1 <= pos & 63 <= MAX_LEVEL  # what the table's check constraint allows
    assert _node_id(pos) == node


@given(subtrees, subtrees)
def test_positions_sort_by_last_leaf_then_level(a: Node, b: Node) -> None:
    assert (_position(*a) < _position(*b)) == ((last_leaf(a), a[0]) < (last_leaf(b), b[0]))
    assert (_position(*a) == _position(*b)) == (a == b)


def test_completed_by_matches_the_nodes_a_log_keeps() -> None:
    made = [node for leaf in range(1000) for node in completed_by(leaf)]
    assert sorted(made) == sorted((level, idx) for level, idx, _ in new_nodes(0, 1000))


def test_every_new_subtree_goes_after_every_stored_one() -> None:
    stored: list[int] = []
    for leaf in range(4096):
        for node in completed_by(leaf):
            pos = _position(*node)
            assert not stored or pos > stored[-1], (leaf, node)
            stored.append(pos)


@given(st.integers(0, MAX_LEAVES - 256))
def test_appending_only_ever_writes_at_the_tail(size: int) -> None:
    # Every stored subtree ends at leaf size - 1 or before, so its position is below this.
    highest = (size << 6) - 1
    for leaf in range(size, size + 256):
        for node in completed_by(leaf):
            pos = _position(*node)
            assert pos > highest, (leaf, node)
            highest = pos


def test_the_largest_subtrees_fit_and_the_next_are_refused() -> None:
    assert _node_id(_position(57, 0)) == (57, 0)
    assert _node_id(_position(1, 2**56 - 1)) == (1, 2**56 - 1)
    assert _position(1, 2**56 - 1) == 2**63 - 63
    for level, idx in [(1, 2**56), (58, 0), (62, 0), (20, 2**37)]:
        with pytest.raises(InvalidInput, match=r"2\*\*57 entries") as raised:
            _position(level, idx)
        assert "\n" not in raised.value.diagnostics()


# --- the appender keeps nodes where the repository finds them ---------------------------


def test_appender_nodes_round_trip_through_the_repository(store: SqlStore) -> None:
    seen: dict[Node, bytes] = {}

    def first(size: int, reader: AuditNodeReader) -> Batch:
        assert (size, reader.nodes([(0, 0), (1, 0)])) == (0, {})
        rows = [(r.idx, r.leaf_hash, r.entry) for r in (record(i) for i in range(13))]
        return rows, new_nodes(0, 13)

    def second(size: int, reader: AuditNodeReader) -> Batch:
        seen.update(reader.nodes([*all_nodes(13), (1, 6), (4, 0), (0, 13)]))
        return [(13, record(13).leaf_hash, record(13).entry)], new_nodes(13, 14)  # (1, 6)

    appender = store.audit_appender()
    try:
        assert appender.append(first, appended_at=T0) == 13
        assert appender.append(second, appended_at=T0) == 14
    finally:
        appender.close()
    assert seen == all_nodes(13)
    with store.unit_of_work() as work:
        assert work.audit.nodes(all_nodes(14)) == all_nodes(14)
