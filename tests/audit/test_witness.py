"""The witness: trust on first use, growth by proof, and refusal of rollbacks and forks."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest

from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
from modelpact.audit.tree import (
    EMPTY_ROOT,
    Frontier,
    NodeId,
    consistency_proof,
    leaf_hash,
)
from modelpact.audit.witness import Witness
from modelpact.crypto import SigningKey
from modelpact.errors import (
    InvalidInput,
    LogInconsistent,
    SignatureInvalid,
)

ORIGIN = "northwind.example/modelpact/log"
KEY = SigningKey.generate()


class Log:
    """A toy log: entries, the stored nodes, and signed checkpoints at any size."""

    def __init__(self, prefix: str, size: int = 64) -> None:
        self.nodes_by_id: dict[NodeId, bytes] = {}
        self.roots = [EMPTY_ROOT]
        frontier = Frontier()
        for i in range(size):
            self.nodes_by_id.update(frontier.append(leaf_hash(f"{prefix} {i}".encode())))
            self.roots.append(frontier.root())

    def nodes(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        return {node: self.nodes_by_id[node] for node in ids}

    def note(self, size: int, key: SigningKey = KEY, origin: str = ORIGIN) -> str:
        return sign_checkpoint(Checkpoint(origin, size, self.roots[size]), key, name=ORIGIN)

    def proof(self, old: int, new: int) -> list[bytes]:
        return consistency_proof(old, new, self)


HONEST = Log("entry")


def _forked_after(shared: int) -> Log:
    """A log equal to HONEST for ``shared`` entries and different after."""
    log = Log("entry", 0)
    frontier = Frontier()
    for i in range(64):
        entry = f"entry {i}" if i < shared else f"rewritten {i}"
        log.nodes_by_id.update(frontier.append(leaf_hash(entry.encode())))
        log.roots.append(frontier.root())
    return log


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness(tmp_path / "northwind.checkpoint", KEY.verify_key, ORIGIN, ORIGIN)


def _evidence(witness: Witness) -> list[dict[str, object]]:
    if not witness.evidence_path.exists():
        return []
    lines = witness.evidence_path.read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_first_checkpoint_is_trusted_on_first_use(witness: Witness) -> None:
    assert witness.last is None
    checkpoint = witness.observe(HONEST.note(5), None)
    assert checkpoint.size == 5
    assert witness.last == checkpoint
    assert witness.state_path.read_text() == HONEST.note(5)
    assert not witness.evidence_path.exists()


def test_growth_with_valid_consistency_proofs(witness: Witness) -> None:
    witness.observe(HONEST.note(3))
    for old, new in ((3, 4), (4, 8), (8, 13), (13, 64)):
        assert witness.observe(HONEST.note(new), HONEST.proof(old, new)).size == new
        assert witness.last is not None
        assert witness.last.root == HONEST.roots[new]
    assert witness.state_path.read_text() == HONEST.note(64)
    assert [p.name for p in witness.state_path.parent.iterdir()] == [witness.state_path.name]


def test_the_same_checkpoint_again_is_accepted_and_state_kept(witness: Witness) -> None:
    witness.observe(HONEST.note(7))
    again = sign_checkpoint(
        Checkpoint(ORIGIN, 7, HONEST.roots[7], ("seen again",)), KEY, name=ORIGIN
    )
    assert witness.observe(again, [b"ignored" * 4]).size == 7
    assert witness.state_path.read_text() == HONEST.note(7)


def test_growth_from_the_empty_tree_needs_no_proof(witness: Witness) -> None:
    witness.observe(HONEST.note(0))
    assert witness.observe(HONEST.note(9)).size == 9


def caught_error(witness: Witness, note: str, proof: list[bytes] | None = None) -> Exception:
    try:
        witness.observe(note, proof)
    except LogInconsistent as exc:
        return exc
    raise AssertionError("the witness accepted the checkpoint")


def test_rollback_is_refused_and_kept(witness: Witness) -> None:
    witness.observe(HONEST.note(10))
    before = witness.state_path.read_text()
    error = caught_error(witness, HONEST.note(9))
    assert isinstance(error, LogInconsistent)
    assert error.summary.startswith("rollback: a checkpoint of size 9 after one of size 10")
    assert error.evidence == (before, HONEST.note(9))
    assert str(witness.evidence_path) in error.hint
    assert witness.state_path.read_text() == before
    assert _evidence(witness) == [
        {"reason": error.summary, "origin": ORIGIN, "notes": [before, HONEST.note(9)]}
    ]


def test_fork_at_the_same_size_is_refused_and_kept(witness: Witness) -> None:
    witness.observe(HONEST.note(20))
    fork = _forked_after(15)
    error = caught_error(witness, fork.note(20))
    assert isinstance(error, LogInconsistent)
    assert error.summary == "fork: two different roots signed for size 20"
    assert error.evidence == (HONEST.note(20), fork.note(20))
    assert witness.state_path.read_text() == HONEST.note(20)
    assert _evidence(witness)[0]["notes"] == [HONEST.note(20), fork.note(20)]


def test_a_bad_consistency_proof_is_refused_and_kept(witness: Witness) -> None:
    witness.observe(HONEST.note(6))
    proof = HONEST.proof(6, 30)
    proof[1] = bytes(32)
    error = caught_error(witness, HONEST.note(30), proof)
    assert isinstance(error, LogInconsistent)
    assert "without a valid consistency proof" in error.summary
    assert witness.state_path.read_text() == HONEST.note(6)
    assert len(_evidence(witness)) == 1


def test_a_rewritten_history_cannot_prove_consistency(witness: Witness) -> None:
    witness.observe(HONEST.note(12))
    fork = _forked_after(5)
    for proof in (fork.proof(12, 40), HONEST.proof(12, 40), []):
        error = caught_error(witness, fork.note(40), proof)
        assert isinstance(error, LogInconsistent)
    assert witness.state_path.read_text() == HONEST.note(12)
    assert len(_evidence(witness)) == 3  # every refusal is appended, none overwritten
    # The honest log still moves on.
    assert witness.observe(HONEST.note(40), HONEST.proof(12, 40)).size == 40


def test_a_missing_proof_is_asked_for_without_evidence(witness: Witness) -> None:
    witness.observe(HONEST.note(6))
    with pytest.raises(InvalidInput, match="consistency proof from size 6 to 8 is needed"):
        witness.observe(HONEST.note(8), None)
    assert witness.state_path.read_text() == HONEST.note(6)
    assert not witness.evidence_path.exists()


def test_a_foreign_key_or_log_is_refused_before_anything_is_kept(witness: Witness) -> None:
    witness.observe(HONEST.note(6))
    with pytest.raises(SignatureInvalid):
        witness.observe(HONEST.note(8, key=SigningKey.generate()), HONEST.proof(6, 8))
    with pytest.raises(InvalidInput, match=r"not 'northwind\.example/modelpact/log'"):
        witness.observe(HONEST.note(8, origin="southwind.example/log"), HONEST.proof(6, 8))
    with pytest.raises(InvalidInput):
        witness.observe("not a note", None)
    assert witness.state_path.read_text() == HONEST.note(6)
    assert not witness.evidence_path.exists()


def test_a_size_zero_checkpoint_must_have_the_empty_root(witness: Witness) -> None:
    bogus = sign_checkpoint(Checkpoint(ORIGIN, 0, HONEST.roots[1]), KEY, name=ORIGIN)
    with pytest.raises(LogInconsistent, match="size 0") as caught:
        witness.observe(bogus)
    assert caught.value.evidence == (bogus,)
    assert witness.last is None


def test_a_tampered_state_file_is_refused(witness: Witness) -> None:
    witness.observe(HONEST.note(6))
    witness.state_path.write_text(HONEST.note(6).replace("\n6\n", "\n7\n"))
    with pytest.raises(SignatureInvalid, match=r"witness state .* does not verify"):
        witness.observe(HONEST.note(8), HONEST.proof(6, 8))
    with pytest.raises(SignatureInvalid):
        _ = witness.last
    witness.state_path.write_bytes(b"\xff\xfe")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        _ = witness.last


def test_the_refusal_stands_when_evidence_cannot_be_written(witness: Witness) -> None:
    witness.observe(HONEST.note(10))
    witness.evidence_path.mkdir()  # nothing can be appended to a directory
    with pytest.raises(LogInconsistent) as caught:
        witness.observe(HONEST.note(3))
    assert caught.value.evidence == (HONEST.note(10), HONEST.note(3))
    assert "could not be written" in caught.value.hint
    assert witness.state_path.read_text() == HONEST.note(10)


def test_bad_configuration_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        Witness(tmp_path / "s", KEY.verify_key, "bad name", ORIGIN)
    with pytest.raises(InvalidInput):
        Witness(tmp_path / "s", KEY.verify_key, ORIGIN, "bad origin")
