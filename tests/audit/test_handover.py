"""Owner-key handovers: both keys sign, verifiers follow the chain and nothing else."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
from modelpact.audit.entries import encode_entry
from modelpact.audit.handover import (
    HANDOVER_PREFIX,
    SignedHandover,
    follow_handovers,
    handover_entry,
    handover_from_entry,
    handovers_in,
    sign_handover,
)
from modelpact.audit.tree import HASH_SIZE
from modelpact.crypto import SigningKey, canonical_json
from modelpact.errors import InvalidInput, SignatureInvalid, Tampered

ORIGIN = "example.org/modelpact/log"
NOW = datetime(2026, 11, 26, 8, 40, tzinfo=UTC)
K1, K2, K3 = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()


def note(key: SigningKey, size: int) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, bytes(HASH_SIZE)), key, name=ORIGIN)


def test_a_handover_is_signed_by_both_keys_over_a_prefixed_canonical_statement() -> None:
    handover = sign_handover(K1, K2, origin=ORIGIN, time=NOW)
    handover.verify()
    data = HANDOVER_PREFIX + canonical_json(handover.statement.document())
    K1.verify_key.verify(handover.old_signature, data)
    K2.verify_key.verify(handover.new_signature, data)
    assert handover.statement.document()["time"] == "2026-11-26T08:40:00.000000Z"
    assert SignedHandover.from_document(handover.to_document()) == handover


@pytest.mark.parametrize("which", ["old_signature", "new_signature"])
def test_a_handover_signed_by_one_key_only_is_refused(which: str) -> None:
    honest = sign_handover(K1, K2, origin=ORIGIN, time=NOW)
    # The attacker holds one of the two keys and signs with it twice.
    forged = dataclasses.replace(
        honest,
        **{which: honest.new_signature if which == "old_signature" else honest.old_signature},
    )
    with pytest.raises(SignatureInvalid, match="not signed by its"):
        forged.verify()
    with pytest.raises(SignatureInvalid):
        follow_handovers(K1.verify_key, [(3, forged)], origin=ORIGIN)


def test_a_handover_from_a_key_not_in_the_chain_is_refused() -> None:
    intruder = SigningKey.generate()
    first = sign_handover(K1, K2, origin=ORIGIN, time=NOW)
    stray = sign_handover(intruder, K3, origin=ORIGIN, time=NOW)  # validly signed, wrong start
    with pytest.raises(SignatureInvalid, match="not from the key in force"):
        follow_handovers(K1.verify_key, [(3, first), (5, stray)], origin=ORIGIN)
    with pytest.raises(SignatureInvalid, match="do not include the trusted key"):
        follow_handovers(K1.verify_key, [(5, stray)], origin=ORIGIN)


def test_a_handover_for_another_log_or_back_to_an_old_key_is_refused() -> None:
    other = sign_handover(K1, K2, origin="elsewhere/log", time=NOW)
    with pytest.raises(Tampered, match="another log"):
        follow_handovers(K1.verify_key, [(1, other)], origin=ORIGIN)
    forth = sign_handover(K1, K2, origin=ORIGIN, time=NOW)
    back = sign_handover(K2, K1, origin=ORIGIN, time=NOW)
    with pytest.raises(Tampered, match="earlier key"):
        follow_handovers(K1.verify_key, [(1, forth), (2, back)], origin=ORIGIN)


def test_the_chain_says_which_key_signs_each_tree_size() -> None:
    chain = follow_handovers(
        K1.verify_key,
        [
            (4, sign_handover(K1, K2, origin=ORIGIN, time=NOW)),
            (9, sign_handover(K2, K3, origin=ORIGIN, time=NOW)),
        ],
        origin=ORIGIN,
    )
    assert chain.keys == (K1.verify_key, K2.verify_key, K3.verify_key)
    assert chain.current == K3.verify_key
    assert [chain.key_for(s) for s in (0, 4, 5, 9, 10, 99)] == [
        K1.verify_key,
        K1.verify_key,
        K2.verify_key,
        K2.verify_key,
        K3.verify_key,
        K3.verify_key,
    ]
    # A verifier that only knew the old key accepts the new key's checkpoints...
    assert chain.open_checkpoint(note(K3, 12)).size == 12
    assert chain.open_checkpoint(note(K1, 4)).size == 4
    # ...but never a retired key's checkpoint of a tree that holds its handover,
    with pytest.raises(SignatureInvalid, match="handed the log over"):
        chain.open_checkpoint(note(K1, 5))
    # nor a checkpoint by a key outside the chain.
    with pytest.raises(SignatureInvalid, match="no owner key"):
        chain.open_checkpoint(note(SigningKey.generate(), 12))


def test_a_verifier_pinned_to_a_later_key_accepts_the_earlier_history() -> None:
    handovers = [(4, sign_handover(K1, K2, origin=ORIGIN, time=NOW))]
    chain = follow_handovers(K2.verify_key, handovers, origin=ORIGIN)
    assert chain.open_checkpoint(note(K1, 3)).size == 3


def test_without_handovers_the_trusted_key_alone_signs() -> None:
    chain = follow_handovers(K1.verify_key, [], origin=ORIGIN)
    assert chain.keys == (K1.verify_key,)
    assert chain.open_checkpoint(note(K1, 7)).size == 7


def test_a_handover_round_trips_through_its_audit_entry() -> None:
    handover = sign_handover(K1, K2, origin=ORIGIN, time=NOW)
    blob = encode_entry(handover_entry(handover, time=NOW))
    assert handover_from_entry(blob) == handover
    other = encode_entry(handover_entry(handover, time=NOW).model_copy(update={"action": "x.y"}))
    assert handover_from_entry(other) is None
    assert handovers_in([(0, other), (1, blob)]) == [(1, handover)]


def test_a_malformed_handover_document_is_refused() -> None:
    document = sign_handover(K1, K2, origin=ORIGIN, time=NOW).to_document()
    with pytest.raises(InvalidInput):
        SignedHandover.from_document(document | {"extra": "x"})
    with pytest.raises(InvalidInput):
        SignedHandover.from_document(document | {"old_signature": "AAAA"})
    with pytest.raises(InvalidInput):
        SignedHandover.from_document(document | {"format": "other/v1"})
