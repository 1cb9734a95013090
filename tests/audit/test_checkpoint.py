"""Checkpoints: the C2SP tlog-checkpoint body, signing, opening, and malformed bodies."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpact.audit.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    open_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    verifier_key,
)
from modelpact.audit.note import sign_note
from modelpact.audit.tree import EMPTY_ROOT
from modelpact.crypto import SigningKey
from modelpact.errors import InvalidInput, SignatureInvalid

ORIGIN = "northwind.example/modelpact/log"
KEY = SigningKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
ROOT = hashlib.sha256(b"modelpact").digest()
CHECKPOINT = Checkpoint(ORIGIN, 12345, ROOT)

# Ed25519 is deterministic: this text is what any C2SP implementation produces for it.
GOLDEN_NOTE = (
    "northwind.example/modelpact/log\n"
    "12345\n"
    "vBd293wEwoGgRapck8ED83qsPP5JR/7yJxzWj7QAfaM=\n"
    "\n"
    "— northwind.example/modelpact/log IyO0E+JLSjD+3hTKoz5lSROfFYyMDrwjjWZqRSfkdMUHDQa70HLblWkT"
    "gxVB2P5XpQ6iR1GNVNCvO/Hu3esF9J2qpAk=\n"
)
GOLDEN_VERIFIER = (
    "northwind.example/modelpact/log+2323b413+AQOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
)


def test_golden_note() -> None:
    assert CHECKPOINT.body() == (
        b"northwind.example/modelpact/log\n12345\nvBd293wEwoGgRapck8ED83qsPP5JR/7yJxzWj7QAfaM=\n"
    )
    assert sign_checkpoint(CHECKPOINT, KEY, name=ORIGIN) == GOLDEN_NOTE
    assert open_checkpoint(GOLDEN_NOTE, KEY.verify_key, name=ORIGIN) == CHECKPOINT
    assert verifier_key(ORIGIN, KEY.verify_key) == GOLDEN_VERIFIER
    assert parse_verifier_key(GOLDEN_VERIFIER) == (ORIGIN, KEY.verify_key)


def test_key_id_in_the_signature_line() -> None:
    blob = base64.b64decode(GOLDEN_NOTE.rsplit(" ", 1)[1])
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + KEY.verify_key.raw()).digest()[:4]
    assert blob[:4] == expected
    assert expected.hex() == "2323b413"
    KEY.verify_key.verify(blob[4:], CHECKPOINT.body())


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(
        st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), min_size=1, max_size=20),
        max_size=3,
    ),
)
def test_round_trip(size: int, root: bytes, extensions: list[str]) -> None:
    checkpoint = Checkpoint(ORIGIN, size, root, tuple(extensions))
    note = sign_checkpoint(checkpoint, KEY, name=ORIGIN)
    assert open_checkpoint(note, KEY.verify_key, name=ORIGIN, origin=ORIGIN) == checkpoint


def test_wrong_key_or_name() -> None:
    other = SigningKey.generate()
    with pytest.raises(SignatureInvalid):
        open_checkpoint(GOLDEN_NOTE, other.verify_key, name=ORIGIN)
    with pytest.raises(SignatureInvalid):
        open_checkpoint(GOLDEN_NOTE, KEY.verify_key, name="southwind.example/log")
    forged = sign_checkpoint(CHECKPOINT, other, name=ORIGIN)
    with pytest.raises(SignatureInvalid):
        open_checkpoint(forged, KEY.verify_key, name=ORIGIN)


def test_a_flipped_byte_in_the_body_or_signature_is_refused() -> None:
    body_end = GOLDEN_NOTE.index("\n\n")
    for position in range(len(GOLDEN_NOTE)):
        if GOLDEN_NOTE[position] == "\n":
            continue
        changed_char = chr(ord(GOLDEN_NOTE[position]) ^ 1)
        changed = GOLDEN_NOTE[:position] + changed_char + GOLDEN_NOTE[position + 1 :]
        with pytest.raises((SignatureInvalid, InvalidInput)):
            open_checkpoint(changed, KEY.verify_key, name=ORIGIN)
    # A changed digit of the size or character of the root is a signature failure.
    for old, new in (("12345", "12346"), ("vBd2", "vBd3")):
        assert GOLDEN_NOTE.index(old) < body_end
        with pytest.raises(SignatureInvalid, match="does not verify"):
            open_checkpoint(GOLDEN_NOTE.replace(old, new), KEY.verify_key, name=ORIGIN)
    signature = GOLDEN_NOTE.rsplit(" ", 1)[1]
    tampered = GOLDEN_NOTE.replace(signature, signature[:20] + "A" + signature[21:])
    with pytest.raises(SignatureInvalid, match="does not verify"):
        open_checkpoint(tampered, KEY.verify_key, name=ORIGIN)


def test_extra_unknown_signers_are_ignored() -> None:
    witness = SigningKey.generate()
    cosigned = sign_note(CHECKPOINT.body().decode(), witness, name="witness.example/w")
    note = GOLDEN_NOTE + cosigned.split("\n\n")[-1]
    assert open_checkpoint(note, KEY.verify_key, name=ORIGIN) == CHECKPOINT
    first = cosigned + GOLDEN_NOTE.split("\n\n")[-1]
    assert open_checkpoint(first, KEY.verify_key, name=ORIGIN) == CHECKPOINT
    assert open_checkpoint(note, witness.verify_key, name="witness.example/w") == CHECKPOINT


def test_origin_is_checked_when_given() -> None:
    assert open_checkpoint(GOLDEN_NOTE, KEY.verify_key, name=ORIGIN, origin=ORIGIN) == CHECKPOINT
    with pytest.raises(InvalidInput, match=r"for the log 'northwind\.example/modelpact/log'"):
        open_checkpoint(GOLDEN_NOTE, KEY.verify_key, name=ORIGIN, origin="other.example/log")


def _signed(body: str) -> str:
    """A note over any body, signed properly: the body's faults are all that is wrong."""
    return sign_note(body, KEY, name=ORIGIN)


ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{ORIGIN}\n12\n", "line 3: a checkpoint needs an origin, a tree size and a root hash"),
        (f"{ORIGIN}\n", "line 2: a checkpoint needs"),
        (f"bad origin\n12\n{ROOT_B64}\n", "line 1: the origin 'bad origin'"),
        (f"a+b\n12\n{ROOT_B64}\n", "line 1: the origin 'a\\+b'"),
        (f"caf\u00e9.example\n12\n{ROOT_B64}\n", "line 1: the origin"),
        (f"{ORIGIN}\n012\n{ROOT_B64}\n", "line 2: the tree size '012'"),
        (f"{ORIGIN}\n-1\n{ROOT_B64}\n", "line 2: the tree size '-1'"),
        (f"{ORIGIN}\n+1\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n1e3\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n 1\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n\u0661\u0662\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n{MAX_TREE_SIZE + 1}\n{ROOT_B64}\n", "line 2"),
        (f"{ORIGIN}\n12\n{ROOT_B64[:-4]}\n", "line 3: the root hash"),
        (f"{ORIGIN}\n12\n{ROOT_B64[:-1]}\n", "line 3: the root hash"),
        (f"{ORIGIN}\n12\n{ROOT_B64.replace('=', 'E')}\n", "line 3: the root hash"),
        (f"{ORIGIN}\n12\n{base64.b64encode(bytes(33)).decode()}\n", "line 3: the root hash"),
        (f"{ORIGIN}\n12\n{ROOT_B64}\n\nextension\n", "line 4: an extension line is empty"),
        (f"{ORIGIN}\n12\n{ROOT_B64}\none\n\n", "line 5: an extension line is empty"),
    ],
)
def test_malformed_bodies_are_invalid_input_naming_the_line(body: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_checkpoint(_signed(body), KEY.verify_key, name=ORIGIN)


def test_malformed_notes_name_the_line() -> None:
    with pytest.raises(InvalidInput, match="line 6: a signature line starts with"):
        open_checkpoint(GOLDEN_NOTE + "signature\n", KEY.verify_key, name=ORIGIN)
    with pytest.raises(InvalidInput, match=r"line 2: .* U\+0009"):
        open_checkpoint(GOLDEN_NOTE.replace("12345", "123\t45"), KEY.verify_key, name=ORIGIN)


def test_extension_lines_are_signed() -> None:
    checkpoint = Checkpoint(ORIGIN, 3, ROOT, ("timestamp 1700000000",))
    note = sign_checkpoint(checkpoint, KEY, name=ORIGIN)
    assert note.startswith(f"{ORIGIN}\n3\n{ROOT_B64}\ntimestamp 1700000000\n\n— ")
    assert open_checkpoint(note, KEY.verify_key, name=ORIGIN).extensions == checkpoint.extensions
    with pytest.raises(SignatureInvalid):
        open_checkpoint(note.replace("1700000000", "1700000001"), KEY.verify_key, name=ORIGIN)


@pytest.mark.parametrize(
    ("origin", "size", "root", "extensions"),
    [
        ("", 1, ROOT, ()),
        ("has space", 1, ROOT, ()),
        ("has+plus", 1, ROOT, ()),
        ("new\nline", 1, ROOT, ()),
        ("caf\u00e9", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, MAX_TREE_SIZE + 1, ROOT, ()),
        (ORIGIN, True, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT + b"\x00", ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("two\nlines",)),
        (ORIGIN, 1, ROOT, ("bell\x07",)),
    ],
)
def test_checkpoints_refuse_what_cannot_be_written(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidInput):
        Checkpoint(origin, size, root, extensions)


def test_checkpoint_is_a_value() -> None:
    listed = Checkpoint(ORIGIN, 0, EMPTY_ROOT, ["x"])  # type: ignore[arg-type]
    assert listed.extensions == ("x",)
    assert hash(listed) == hash(Checkpoint(ORIGIN, 0, EMPTY_ROOT, ("x",)))
    assert repr(CHECKPOINT) == f"Checkpoint(origin='{ORIGIN}', size=12345, root={ROOT.hex()})"
    with pytest.raises(AttributeError):
        CHECKPOINT.size = 1  # type: ignore[misc]
