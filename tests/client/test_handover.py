"""The SDK follows owner-key handovers only forward, and keeps them beside its witness."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
from modelpact.audit.entries import AdminEntry, encode_entry
from modelpact.audit.handover import KeyChain, handover_entry, sign_handover
from modelpact.audit.tree import Frontier, inclusion_proof, leaf_hash, tree_root
from modelpact.client import PartnerClient
from modelpact.client.handover import (
    follow_owner,
    load_owner_chain,
    owner_chain_path,
    require_extension,
    save_owner_chain,
    trivial_chain,
)
from modelpact.crypto import SigningKey
from modelpact.errors import LogInconsistent, Tampered
from modelpact.wire import CheckpointDocument, HandoverChain, HandoverEvidence

ORIGIN = "example.org/modelpact/log"
NOW = datetime(2026, 11, 26, 8, 40, tzinfo=UTC)
K1, K2, K3 = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()


class Log:
    """A small in-memory log: entries, their tree, and what a gateway would send."""

    def __init__(self) -> None:
        self.entries: list[bytes] = []
        self.handovers: list[int] = []
        self._frontier = Frontier()
        self._nodes: dict[tuple[int, int], bytes] = {}

    def nodes(self, ids: Collection[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        return {node: self._nodes[node] for node in ids if node in self._nodes}

    def append(self, blob: bytes) -> int:
        self._nodes.update(self._frontier.append(leaf_hash(blob)))
        self.entries.append(blob)
        return len(self.entries) - 1

    def filler(self, count: int) -> None:
        for n in range(count):
            entry = AdminEntry(time=NOW, actor="owner", subject=f"s{n}", action="test.fill")
            self.append(encode_entry(entry))

    def hand_over(self, old: SigningKey, new: SigningKey) -> None:
        handover = sign_handover(old, new, origin=ORIGIN, time=NOW)
        self.handovers.append(self.append(encode_entry(handover_entry(handover, time=NOW))))

    def document(self, signer: SigningKey, *, keep: int | None = None) -> HandoverChain:
        size = len(self.entries)
        note = sign_checkpoint(Checkpoint(ORIGIN, size, tree_root(size, self)), signer, name=ORIGIN)
        listed = self.handovers if keep is None else self.handovers[:keep]
        return HandoverChain(
            checkpoint=note,
            handovers=[
                HandoverEvidence(
                    index=i,
                    entry=base64.b64encode(self.entries[i]).decode(),
                    proof=[base64.b64encode(h).decode() for h in inclusion_proof(i, size, self)],
                )
                for i in listed
            ],
        )


@pytest.fixture
def log() -> Log:
    """A log handed over K1 -> K2 (at entry 3) -> K3 (at entry 6), 9 entries long."""
    log = Log()
    log.filler(3)
    log.hand_over(K1, K2)
    log.filler(2)
    log.hand_over(K2, K3)
    log.filler(2)
    return log


def test_a_chain_that_goes_further_extends_the_one_known(log: Log) -> None:
    full = follow_owner(K1.verify_key, log.document(K3), ORIGIN)
    assert full.keys == (K1.verify_key, K2.verify_key, K3.verify_key)
    assert full.boundaries == (3, 6)
    first = KeyChain(ORIGIN, full.keys[:2], full.boundaries[:1])
    require_extension(first, full, "note")
    require_extension(full, full, "note")
    require_extension(trivial_chain(K1.verify_key, ORIGIN), full, "note")
    require_extension(trivial_chain(K2.verify_key, ORIGIN), full, "note")  # a later charter


def test_a_shorter_chain_is_a_rollback_to_a_retired_key(log: Log) -> None:
    """The retired K2 signs a checkpoint past its handover and leaves K2 -> K3 out."""
    known = follow_owner(K1.verify_key, log.document(K3), ORIGIN)
    forged = log.document(K2, keep=1)
    shorter = follow_owner(K1.verify_key, forged, ORIGIN)  # valid on its own...
    assert shorter.current == K2.verify_key
    with pytest.raises(LogInconsistent, match="rollback") as caught:  # ...but goes back
        require_extension(known, shorter, forged.checkpoint)
    assert caught.value.evidence == (forged.checkpoint,)
    with pytest.raises(LogInconsistent, match="rollback"):
        require_extension(known, trivial_chain(K1.verify_key, ORIGIN), "note")


def test_a_chain_on_another_branch_or_for_another_log_is_refused(log: Log) -> None:
    known = follow_owner(K1.verify_key, log.document(K3), ORIGIN)
    elsewhere = KeyChain(ORIGIN, known.keys, (3, 7))  # same keys, another handover place
    with pytest.raises(LogInconsistent, match="fork"):
        require_extension(known, elsewhere, "note")
    other = SigningKey.generate().verify_key
    with pytest.raises(LogInconsistent, match="fork"):
        require_extension(known, KeyChain(ORIGIN, (*known.keys[:2], other), (3, 6)), "note")
    with pytest.raises(LogInconsistent, match="are for the log other"):
        require_extension(known, KeyChain("other.example/log", known.keys, (3, 6)), "note")


def test_the_kept_chain_is_followed_again_from_the_trusted_key(log: Log, tmp_path: Path) -> None:
    path = owner_chain_path(tmp_path / "witness.json")
    assert path.name == "witness.json.owner-chain.json"
    assert load_owner_chain(path, K1.verify_key) is None
    save_owner_chain(path, ORIGIN, log.document(K3))
    chain = load_owner_chain(path, K1.verify_key)
    assert chain is not None
    assert chain.keys == (K1.verify_key, K2.verify_key, K3.verify_key)
    assert chain.boundaries == (3, 6)
    if os.name == "posix":  # as the witness state: a private temporary file renamed
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def _edit(path: Path, change: object) -> None:
    record = json.loads(path.read_text())
    assert callable(change)
    change(record)
    path.write_text(json.dumps(record))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda r: r.update(handovers=r["handovers"][:1]), id="a handover left out"),
        pytest.param(lambda r: r.update(handovers=[]), id="every handover left out"),
        pytest.param(
            lambda r: r["handovers"][1].update(proof=r["handovers"][0]["proof"]), id="bad proof"
        ),
        pytest.param(lambda r: r.update(origin="other.example/log"), id="another log"),
        pytest.param(lambda r: r.update(format="something/v9"), id="unknown format"),
        pytest.param(lambda r: r.update(extra=1), id="unknown field"),
    ],
)
def test_a_kept_chain_that_does_not_verify_is_refused(
    log: Log, tmp_path: Path, change: object
) -> None:
    path = tmp_path / "chain.json"
    save_owner_chain(path, ORIGIN, log.document(K3))
    _edit(path, change)
    with pytest.raises(Tampered, match=r"does not verify|malformed"):
        load_owner_chain(path, K1.verify_key)


def test_a_kept_chain_is_refused_for_another_trusted_key_or_when_unreadable(
    log: Log, tmp_path: Path
) -> None:
    path = tmp_path / "chain.json"
    save_owner_chain(path, ORIGIN, log.document(K3))
    with pytest.raises(Tampered, match="does not verify"):
        load_owner_chain(path, SigningKey.generate().verify_key)
    path.write_text("{not json")
    with pytest.raises(Tampered, match="malformed"):
        load_owner_chain(path, K1.verify_key)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(Tampered, match="UTF-8"):
        load_owner_chain(path, K1.verify_key)


def test_the_blocking_client_starts_from_the_kept_chain_and_never_goes_back(
    log: Log, tmp_path: Path
) -> None:
    """A restarted client that had followed K1 -> K2 -> K3; the retired K2 answers."""
    witness = tmp_path / "witness.json"
    save_owner_chain(owner_chain_path(witness), ORIGIN, log.document(K3))
    answers: dict[str, str] = {}

    def gateway(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=answers[request.url.path])

    forged = log.document(K2, keep=1)  # K2's checkpoint of size 9, past its handover at 6
    answers["/v1/log/checkpoint"] = CheckpointDocument(note=forged.checkpoint).model_dump_json()
    answers["/v1/log/handovers"] = forged.model_dump_json()
    with PartnerClient(
        "http://gateway",
        partner="acme",
        key=SigningKey.generate(),
        charter="northwind-acme",
        purpose="fraud-screening",
        owner_key=K1.verify_key,
        attest=False,
        log_origin=ORIGIN,
        witness_path=witness,
        transport=httpx.MockTransport(gateway),
    ) as sdk:
        assert sdk.owner_key_in_force == K3.verify_key
        with pytest.raises(LogInconsistent, match="rollback"):
            sdk.checkpoint()
        assert sdk.owner_key_in_force == K3.verify_key
        honest = log.document(K3)
        answers["/v1/log/checkpoint"] = CheckpointDocument(note=honest.checkpoint).model_dump_json()
        assert sdk.checkpoint().size == len(log.entries)
