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
    rotation_steps,
)
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


@pytest.mark.parametrize("width", [1, 7, 30, 33])
def test_row_packing_scores_with_only_the_galois_keys_its_width_needs(width: int) -> None:
    partner = SecretContext()
    public = partner.public(row_width=width)
    owner: PublicContext = PublicContext.load(public, allowed=[DEFAULT], max_bytes=16 << 20)
    rng = np.random.default_rng(width)
    x, w, b = rng.normal(0, 3, (3, width)), rng.normal(0, 2, (2, width)), rng.normal(0, 2, 2)
    out = owner.score_rows(partner.encrypt_rows(x), w, b)
    found = np.array([[partner.decrypt(c, 1)[0] for c in row] for row in out])
    assert np.abs(found - (x @ w.T + b)).max() < 1e-3
    assert len(public) < 8 << 20  # every power-of-two key would be about 35 MB


def test_rotation_steps_are_the_powers_of_two_a_sum_makes() -> None:
    assert rotation_steps(1) == []
    assert rotation_steps(30) == [1, 2, 4, 8, 16]
    assert rotation_steps(32) == [1, 2, 4, 8, 16]
    assert rotation_steps(33) == [1, 2, 4, 8, 16, 32]


def test_row_packing_without_the_keys_it_needs_is_refused(partner: SecretContext) -> None:
    x, w, b = np.ones((1, 30)), np.ones((1, 30)), np.zeros(1)
    batch_only = PublicContext.load(partner.public(), allowed=[DEFAULT], max_bytes=4096)
    with pytest.raises(InvalidInput, match="Galois keys"):
        batch_only.score_rows(partner.encrypt_rows(x), w, b)
    narrow = SecretContext()
    owner = PublicContext.load(narrow.public(row_width=8), allowed=[DEFAULT], max_bytes=16 << 20)
    with pytest.raises(InvalidInput, match="cannot carry"):
        owner.score_rows(narrow.encrypt_rows(x), w, b)  # keys for 8 features, rows of 30
    with pytest.raises(InvalidInput, match="hold 30 features"):
        owner.score_rows(narrow.encrypt_rows(np.ones((1, 8))), w, b)
