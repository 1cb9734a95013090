"""CKKS batch scoring: within 1e-3 of plaintext, and every bad context or ciphertext refused
with one line before TenSEAL parses it (some would crash the process)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpact.crypto.homomorphic import (
    CkksParameters,
    PublicContext,
    SecretContext,
    _encode,
    _encode_varint,
    _vector_parts,
)
from modelpact.crypto.homomorphic import _vector as wrap
from modelpact.errors import InvalidInput

DEFAULT = CkksParameters()


@pytest.fixture(scope="module")
def partner() -> SecretContext:
    return SecretContext()


@pytest.fixture(scope="module")
def owner(partner: SecretContext) -> PublicContext:
    loaded: PublicContext = PublicContext.load(partner.public(), allowed=[DEFAULT], max_bytes=4096)
    return loaded


@settings(max_examples=8, deadline=None)
@given(
    rows=st.integers(1, 300),
    width=st.integers(1, 12),
    classes=st.integers(1, 3),
    seed=st.integers(0, 2**31),
)
def test_decrypted_scores_are_within_1e_3_of_plaintext(
    partner: SecretContext, owner: PublicContext, rows: int, width: int, classes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (rows, width))
    w, b = rng.normal(0, 2, (classes, width)), rng.normal(0, 2, classes)
    out, count = owner.score_columns(partner.encrypt_columns(x), w, b)
    assert count == rows and len(out) == classes
    found = np.array([partner.decrypt(c, count) for c in out]).T
    assert np.abs(found - (x @ w.T + b)).max() < 1e-3


def test_the_public_context_holds_no_secret_and_other_parameters_are_refused(
    partner: SecretContext,
) -> None:
    public = partner.public()
    assert len(public) < 200  # batch packing: no keys at all
    with_secret = partner._context.serialize(save_secret_key=True)
    with pytest.raises(InvalidInput, match="secret key"):
        PublicContext.load(with_secret, allowed=[DEFAULT], max_bytes=10**9)
    with pytest.raises(InvalidInput, match="over 50 bytes"):
        PublicContext.load(public, allowed=[DEFAULT], max_bytes=50)
    other = CkksParameters(8192, (60, 40, 40, 60), 40)
    with pytest.raises(InvalidInput, match="not among those"):
        PublicContext.load(SecretContext(other).public(), allowed=[DEFAULT], max_bytes=4096)
    for junk in (b"", b"\x00", b"garbage!", public[:-3]):
        with pytest.raises(InvalidInput):
            PublicContext.load(junk, allowed=[DEFAULT], max_bytes=4096)


def test_parameters_below_128_bit_security_or_without_room_are_refused() -> None:
    with pytest.raises(InvalidInput, match="128-bit"):
        CkksParameters(4096, (60, 40, 60), 40).check()
    with pytest.raises(InvalidInput, match="scale"):
        CkksParameters(8192, (60, 30, 60), 40).check()
    with pytest.raises(InvalidInput, match="degree"):
        CkksParameters(1024, (30, 20, 30), 20).check()
    CkksParameters(16384, (60, 40, 40, 60), 40).check()  # larger, still secure


def _vector(sizes: list[int], ciphertexts: int, scale: float) -> bytes:
    """A CKKSVectorProto by hand: sizes (packed), ciphertexts, scale."""
    packed = b"".join(_encode_varint(s) for s in sizes)
    fields = [(1, 2, packed)] + [(2, 2, b"abc")] * ciphertexts + [(3, 1, struct.pack("<d", scale))]
    return _encode(fields)


def test_malformed_ciphertexts_are_refused_before_tenseal_reads_them(
    partner: SecretContext, owner: PublicContext
) -> None:
    x = np.arange(12.0).reshape(4, 3)
    good = partner.encrypt_columns(x)
    w, b = np.ones((1, 3)), np.zeros(1)
    crashers = [
        b"\x0a\x01\x1e",  # sizes [30], no ciphertext: TenSEAL's dot dies with SIGFPE
        _vector([10**9], 1, DEFAULT.scale),  # more values than slots: bad_alloc
        _vector([4], 2, DEFAULT.scale),  # two ciphertexts
        _vector([4], 1, 2.0**80),  # another scale: a multiplication already spent
        good[0][:-9],  # truncated
        b"\xff" * 40,
    ]
    for bad in crashers:
        with pytest.raises(InvalidInput):
            owner.score_columns([bad, *good[1:]], w, b)
    with pytest.raises(InvalidInput, match="one ciphertext per feature"):
        owner.score_columns(good[:2], w, b)
    fewer = partner.encrypt_columns(x[:2])
    with pytest.raises(InvalidInput, match="same rows"):
        owner.score_columns([fewer[0], *good[1:]], w, b)
    with pytest.raises(InvalidInput, match="rows at a time"):
        partner.encrypt_columns(np.zeros((DEFAULT.slots + 1, 2)))


@settings(max_examples=8, deadline=None)
@given(
    rows=st.integers(1, 3),
    width=st.integers(1, 40),
    classes=st.integers(1, 10),
    seed=st.integers(0, 2**31),
)
def test_row_packing_puts_every_class_score_in_one_ciphertext_within_1e_3(
    partner: SecretContext, owner: PublicContext, rows: int, width: int, classes: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 3, (rows, width))
    w, b = rng.normal(0, 2, (classes, width)), rng.normal(0, 2, classes)
    out = owner.score_rows(partner.encrypt_rows(x), w, b)
    assert len(out) == rows  # one ciphertext per row, every class in it
    found = np.array([partner.decrypt_row(c, classes, width) for c in out])
    assert np.abs(found - (x @ w.T + b)).max() < 1e-3


def test_row_packing_needs_no_keys_and_refuses_what_it_cannot_hold(
    partner: SecretContext, owner: PublicContext
) -> None:
    assert len(partner.public()) < 200  # the same context as batch packing: no Galois keys
    row = partner.encrypt_rows(np.ones((1, 30)))
    assert len(row[0]) < 130_000  # seeded: half of a fresh ciphertext
    with pytest.raises(InvalidInput, match="must hold 31 features"):
        owner.score_rows(row, np.ones((1, 31)), np.zeros(1))
    with pytest.raises(InvalidInput, match="classes x features up to 8192"):
        owner.score_rows(row, np.ones((300, 30)), np.zeros(300))
    answer = owner.score_rows(row, np.ones((1, 30)), np.zeros(1))[0]
    with pytest.raises(InvalidInput, match="not a fresh one under this context"):
        owner.score_rows([answer], np.ones((1, 1)), np.zeros(1))  # an answer sent back
    other = SecretContext(CkksParameters(16384, (60, 40, 40, 60), 40))
    with pytest.raises(InvalidInput):
        owner.score_rows(other.encrypt_rows(np.ones((1, 30))), np.ones((1, 30)), np.zeros(1))


@settings(max_examples=40, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 115_000)),
)
def test_a_tampered_row_ciphertext_is_scored_or_refused_never_a_crash(
    partner: SecretContext, owner: PublicContext, edits: list[tuple[int, int]], cut: int | None
) -> None:
    _, blob = _vector_parts(partner.encrypt_rows(np.ones((1, 4)))[0], DEFAULT)
    data = bytearray(blob)
    for at, value in edits:  # SEAL's header and metadata live in the first bytes
        data[at] = value
    refused: InvalidInput | None = None
    try:
        out = owner.score_rows([wrap(4, bytes(data[:cut]), DEFAULT)], np.ones((1, 4)), np.zeros(1))
    except InvalidInput as error:
        refused = error
    if refused is not None:  # one line, as every bad ciphertext gets
        assert "\n" not in refused.summary
    else:  # the edits left a valid ciphertext of other values: scored like any other
        assert len(out) == 1 and partner.decrypt_row(out[0], 1, 4).shape == (1,)
