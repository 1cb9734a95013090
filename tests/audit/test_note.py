"""Signed notes against Go's sumdb/note vector, and every way a note can be wrong."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelpact.audit.note import (
    MAX_SIGNATURES,
    key_id,
    open_note,
    parse_verifier_key,
    sign_note,
    verifier_key,
)
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import InvalidInput, SignatureInvalid

# golang.org/x/mod/sumdb/note: the example in its package documentation and note_test.go.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_KEY = SigningKey(
    Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SIGNER.split("+", 4)[4])[1:])
)
NAME = "PeterNeumann"


def test_signing_reproduces_gos_note_byte_for_byte() -> None:
    assert sign_note(GO_TEXT, GO_KEY, name=NAME) == GO_NOTE
    assert open_note(GO_NOTE, GO_KEY.verify_key, name=NAME) == GO_TEXT


def test_verifier_key_matches_go() -> None:
    assert verifier_key(NAME, GO_KEY.verify_key) == GO_VERIFIER
    assert parse_verifier_key(GO_VERIFIER) == (NAME, GO_KEY.verify_key)
    assert parse_verifier_key(GO_VERIFIER + "\n") == (NAME, GO_KEY.verify_key)


def test_key_id_is_the_specified_hash() -> None:
    raw = GO_KEY.verify_key.raw()
    expected = hashlib.sha256(NAME.encode() + b"\n\x01" + raw).digest()[:4]
    assert key_id(NAME, GO_KEY.verify_key) == expected
    assert expected.hex() == "c74f20a3"


def test_every_mangled_verifier_key_is_refused() -> None:
    # As Go's TestNewVerifier: every proper substring and every changed byte is refused.
    data = GO_VERIFIER.encode()
    for start in range(len(data)):
        for end in range(start + 1, len(data) + 1):
            if (start, end) == (0, len(data)):
                continue
            with pytest.raises(InvalidInput):
                parse_verifier_key(data[start:end].decode())
    for position in range(len(data)):
        mangled = bytearray(data)
        mangled[position] += 1
        with pytest.raises(InvalidInput):
            parse_verifier_key(mangled.decode())


def test_verifier_keys_of_other_types_are_refused() -> None:
    raw = b"\x02" + GO_KEY.verify_key.raw()
    with pytest.raises(InvalidInput, match="only 01"):
        parse_verifier_key(f"{NAME}+c74f20a3+{base64.b64encode(raw).decode()}")


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\tname", "line\nname", "nbsp\u00a0"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        key_id(name, GO_KEY.verify_key)
    with pytest.raises(InvalidInput):
        sign_note(GO_TEXT, GO_KEY, name=name)


def test_wrong_key_or_name_does_not_open() -> None:
    other = SigningKey(Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)).verify_key
    with pytest.raises(SignatureInvalid, match="no signature by 'PeterNeumann'"):
        open_note(GO_NOTE, other, name=NAME)
    with pytest.raises(SignatureInvalid, match="no signature by 'EnochRoot'"):
        open_note(GO_NOTE, GO_KEY.verify_key, name="EnochRoot")


def test_a_changed_text_or_signature_does_not_open() -> None:
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), GO_KEY.verify_key, name=NAME)
    signature_at = GO_NOTE.index("x08go") + 10
    changed = GO_NOTE[:signature_at] + "A" + GO_NOTE[signature_at + 1 :]
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_note(changed, GO_KEY.verify_key, name=NAME)


def test_every_single_character_change_is_refused() -> None:
    for position, original in enumerate(GO_NOTE):
        for replacement in {"A", "a", "\n", " ", "+"} - {original}:
            changed = GO_NOTE[:position] + replacement + GO_NOTE[position + 1 :]
            with pytest.raises((SignatureInvalid, InvalidInput)):
                open_note(changed, GO_KEY.verify_key, name=NAME)


def _line(name: str, blob: bytes) -> str:
    return f"— {name} {base64.b64encode(blob).decode()}\n"


def test_other_signers_are_ignored() -> None:
    stranger = SigningKey(Ed25519PrivateKey.from_private_bytes(b"\x02" * 32))
    by_stranger = sign_note(GO_TEXT, stranger, name="witness.example/w1").split("\n\n")[-1]
    wanted = key_id(NAME, GO_KEY.verify_key)
    note = (
        GO_TEXT
        + "\n"
        + by_stranger
        + _line(NAME, b"\x00\x00\x00\x00" + b"\x00" * 64)  # same name, another key id
        + _line("EnochRoot", wanted + b"\x00" * 64)  # same key id, another name
        + _line("pq.example/log", b"\x99\x99\x99\x99" + b"\x05" * 2420)  # a long signature
        + GO_NOTE.split("\n\n")[-1]
    )
    assert open_note(note, GO_KEY.verify_key, name=NAME) == GO_TEXT


def test_a_bad_signature_by_the_known_key_rejects_the_note() -> None:
    wanted = key_id(NAME, GO_KEY.verify_key)
    good = GO_NOTE.split("\n\n")[-1]
    note = GO_TEXT + "\n" + _line(NAME, wanted + b"\x00" * 64) + good
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_note(note, GO_KEY.verify_key, name=NAME)
    # Only the first signature by the known key counts, as in Go's note.Open.
    assert open_note(GO_TEXT + "\n" + good + good, GO_KEY.verify_key, name=NAME) == GO_TEXT
    short = GO_TEXT + "\n" + _line(NAME, wanted + b"\x00" * 63)
    with pytest.raises(SignatureInvalid, match="63 bytes"):
        open_note(short, GO_KEY.verify_key, name=NAME)


@pytest.mark.parametrize(
    ("note", "message"),
    [
        (GO_NOTE[:-1], "line 4: the note does not end in a newline"),
        (GO_TEXT + "— PeterNeumann AAAA\n", "no blank line"),
        (GO_TEXT + "\n", "line 4: the note has no signature lines"),
        (GO_TEXT + "\n- PeterNeumann AAAAAAAA\n", r"line 4: a signature line starts with"),
        (GO_NOTE + "— PeterNeumann\n", "line 5: the signature is not base64"),
        (GO_NOTE + "— PeterNeumann AAAA\n", "line 5: the signature is not base64"),
        (GO_NOTE + "— PeterNeumann AAAAAA==\n", "line 5: the signature is not base64"),
        (GO_NOTE + "— PeterNeumann AAAAAAB=\n", "line 5: the signature is not base64"),
        (GO_NOTE + "— Peter+Neumann AAAAAAAA\n", "line 5: 'Peter\\+Neumann' is not a valid"),
        (GO_NOTE + "—  AAAAAAAA\n", "line 5: a key name cannot be empty"),
        (GO_NOTE.replace("you think", "you\tthink"), "line 1: .* U\\+0009"),
        (GO_NOTE.replace("\nthen", "\r\nthen"), "line 1: .* U\\+000D"),
        (GO_NOTE.replace("you don't", "you\x00don't"), "line 2: .* U\\+0000"),
        ("\ud800" + GO_NOTE, "not valid UTF-8"),
        (GO_NOTE + "— PeterNeumann AAAAAAAA\n" * MAX_SIGNATURES, "more than 100"),
        ("x" * (1 << 20) + GO_NOTE, "more than the 1048576"),
    ],
)
def test_malformed_notes_are_invalid_input_naming_the_line(note: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_note(note, GO_KEY.verify_key, name=NAME)


def test_text_may_hold_blank_lines_but_must_end_in_a_newline() -> None:
    text = "first\n\nthird\n"
    note = sign_note(text, GO_KEY, name=NAME)
    assert open_note(note, GO_KEY.verify_key, name=NAME) == text
    with pytest.raises(InvalidInput, match="end in a newline"):
        sign_note("no newline", GO_KEY, name=NAME)
    with pytest.raises(InvalidInput, match="U\\+001B"):
        sign_note("escape \x1b[31m\n", GO_KEY, name=NAME)


def test_verify_key_round_trips_through_the_verifier_key_text() -> None:
    key = SigningKey.generate().verify_key
    name, parsed = parse_verifier_key(verifier_key("log.example/x", key))
    assert name == "log.example/x"
    assert isinstance(parsed, VerifyKey)
    assert parsed == key
