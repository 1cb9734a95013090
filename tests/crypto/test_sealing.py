from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelpact.crypto import DataKey, KeyEncryptionKey
from modelpact.errors import InvalidInput, Tampered

KEK = KeyEncryptionKey.generate()


@given(st.binary(max_size=512), st.binary(max_size=64))
def test_seal_open_round_trip(plaintext: bytes, ad: bytes) -> None:
    key = DataKey.generate()
    assert key.open(key.seal(plaintext, ad), ad) == plaintext


@given(st.binary(min_size=1, max_size=128), st.data())
def test_any_flipped_bit_fails_with_one_error_type(plaintext: bytes, data: st.DataObject) -> None:
    key = DataKey.generate()
    sealed = bytearray(key.seal(plaintext, b"ad"))
    index = data.draw(st.integers(0, len(sealed) - 1))
    sealed[index] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(Tampered):
        key.open(bytes(sealed), b"ad")


def test_associated_data_binds_the_context() -> None:
    key = DataKey.generate()
    sealed = key.seal(b"weights", b"model/a/1")
    with pytest.raises(Tampered):
        key.open(sealed, b"model/a/2")


def test_wrapped_key_opens_only_with_its_kek_and_context() -> None:
    data_key = DataKey.generate()
    wrapped = KEK.wrap(data_key, b"m/1")
    assert KEK.unwrap(wrapped, b"m/1").open(data_key.seal(b"x", b"c"), b"c") == b"x"
    with pytest.raises(Tampered):
        KEK.unwrap(wrapped, b"m/2")
    with pytest.raises(Tampered):
        KeyEncryptionKey.generate().unwrap(wrapped, b"m/1")


def test_truncated_or_foreign_format_is_tampered() -> None:
    key = DataKey.generate()
    with pytest.raises(Tampered):
        key.open(b"", b"")
    with pytest.raises(Tampered):
        key.open(b"\x02" + bytes(40), b"")


def test_kek_file_is_private_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "kek.key"
    KEK.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = KEK.wrap(DataKey(bytes(32)), b"a")
    assert (
        KeyEncryptionKey.load(path)
        .unwrap(sealed, b"a")
        .open(DataKey(bytes(32)).seal(b"z", b"q"), b"q")
        == b"z"
    )
    bad = tmp_path / "bad.key"
    bad.write_text("short")
    bad.chmod(0o600)
    with pytest.raises(InvalidInput):
        KeyEncryptionKey.load(bad)


def test_reprs_redact_keys() -> None:
    assert repr(KEK) == "KeyEncryptionKey(<redacted>)"
    assert repr(DataKey.generate()) == "DataKey(<redacted>)"
