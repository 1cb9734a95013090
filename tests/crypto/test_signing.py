from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpact.crypto import SigningKey, VerifyKey, canonical_digest, canonical_json
from modelpact.errors import AlreadyExists, InsecureKeyFile, InvalidInput, SignatureInvalid

KEY = SigningKey.generate()


def test_canonical_json_is_rfc8785() -> None:
    # Key order, whitespace and number forms are fixed by RFC 8785.
    assert canonical_json({"b": 1, "a": [1.0, "é", True]}) == '{"a":[1,"é",true],"b":1}'.encode()
    assert canonical_digest({"a": 1}) == canonical_digest({"a": 1.0})
    # Edges the fast path must write as RFC 8785 does: DEL and controls in keys, floats.
    import rfc8785

    for value in ({"\x7f": 1, "\x1f": [0.5, 1e16, 1e-5, -0.0, 2.0**53]}, [1e21, 123.456]):
        assert canonical_json(value) == rfc8785.dumps(value)


@given(st.binary(max_size=256))
def test_signature_verifies_only_for_its_own_bytes(data: bytes) -> None:
    signature = KEY.sign(data)
    KEY.verify_key.verify(signature, data)
    with pytest.raises(SignatureInvalid):
        KEY.verify_key.verify(signature, data + b"x")
    with pytest.raises(SignatureInvalid):
        SigningKey.generate().verify_key.verify(signature, data)


def test_public_key_text_round_trips_and_rejects_junk() -> None:
    text = KEY.verify_key.encode()
    assert text.startswith("ed25519:")
    assert VerifyKey.decode(text) == KEY.verify_key
    for bad in (
        "",
        "ed25519:",
        "rsa:AAAA",
        "ed25519:!!!",
        "ed25519:" + base64.b64encode(b"x" * 31).decode(),
    ):
        with pytest.raises(InvalidInput):
            VerifyKey.decode(bad)


def test_private_key_is_written_0600_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    KEY.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).verify_key == KEY.verify_key
    with pytest.raises(AlreadyExists):
        SigningKey.generate().save(path)
    assert SigningKey.load(path).verify_key == KEY.verify_key


def test_group_readable_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    KEY.save(path)
    os.chmod(path, 0o640)
    with pytest.raises(InsecureKeyFile) as caught:
        SigningKey.load(path)
    assert f"chmod 600 {path}" in caught.value.diagnostics()


def test_a_file_that_is_not_a_key_is_invalid_input(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(InvalidInput):
        SigningKey.load(path)


def test_repr_never_shows_private_bytes() -> None:
    assert "PRIVATE" not in repr(KEY)
    assert KEY.verify_key.encode() in repr(KEY)


def test_a_symlinked_key_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.pem"
    KEY.save(real)
    (tmp_path / "link.pem").symlink_to(real)
    with pytest.raises(InsecureKeyFile, match="symbolic link"):
        SigningKey.load(tmp_path / "link.pem")


def test_a_key_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    KEY.save(path)
    if os.geteuid() == 0:
        os.chown(path, 1, -1)  # as root the test can hand the file to another user
        expected = "belongs to another user"
        with pytest.raises(InsecureKeyFile, match=expected):
            SigningKey.load(path)
    else:  # an unprivileged user cannot give files away; the uid check still runs
        assert SigningKey.load(path).verify_key == KEY.verify_key


# Floats around every edge of the fast path: integral values near 2^53, the 1e-4 and
# 1e16 switches of repr's notation, the 1e-6 and 1e21 ones of RFC 8785's, -0.0.
_edges = st.sampled_from([2.0**53, 2.0**53 - 1, 1e-4, 9.999e-5, 1e16, 1e21, 1e-6, 1e-7, 5e-324])
json_floats = (
    st.floats(allow_nan=True, allow_infinity=True)
    | st.floats(min_value=-1e4, max_value=1e4)
    | st.builds(lambda e, s: e * s, _edges, st.sampled_from([1.0, -1.0, 1.5, 0.999]))
    | st.integers(-(2**60), 2**60).map(float)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**60), 2**60) | st.text() | json_floats,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=600)
@given(json_values)
def test_fast_path_yields_exactly_rfc8785_bytes(value: object) -> None:
    import rfc8785

    try:
        expected = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError, ValueError):
        with pytest.raises(InvalidInput):
            canonical_json(value)
        return
    assert canonical_json(value) == expected
