"""Signed notes (C2SP signed-note) with Ed25519 keys.

Why it exists: checkpoints travel as signed notes so that any C2SP tool (Go's
``golang.org/x/mod/sumdb/note``, transparency-dev witnesses) can check them,
and so that witnesses can add their own signature lines later.  A note is::

    <text, ending in a newline>
    <blank line>
    — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>
    ... more signature lines, by other keys ...

The key id is ``SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]``,
and a key is shared as ``<name>+<hex key id>+<base64(0x01 || public key)>``
(:func:`verifier_key`).  Opening a note verifies the signature line whose name
AND key id match the expected key and ignores every other line, as the
specification requires; the text is returned only after that check, so no
caller parses unauthenticated text.

Errors: a malformed note or key raises :class:`~modelpact.errors.InvalidInput`
naming the line; a missing or failing signature by the expected key raises
:class:`~modelpact.errors.SignatureInvalid`.
"""

from __future__ import annotations

import base64
import binascii
import re

from modelpact.crypto import SigningKey, VerifyKey, sha256_hex
from modelpact.errors import InvalidInput, SignatureInvalid, quote_untrusted

__all__ = [
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "key_id",
    "open_note",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
]

MAX_NOTE_BYTES = 1 << 20
"""Longest note accepted, in UTF-8 bytes (room for many post-quantum cosignatures)."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the specification asks for at least 16)."""

_SIGNATURE_PREFIX = "— "  # U+2014 EM DASH, then a space
_ED25519 = b"\x01"  # the signed-note signature type of Ed25519
_ED25519_SIGNATURE_SIZE = 64


def _check_name(name: str) -> None:
    """Key names are non-empty, without Unicode spaces, '+' or control characters."""
    if not name:
        raise InvalidInput("a key name cannot be empty")
    if "+" in name or any(ch.isspace() or ord(ch) < 0x20 for ch in name):
        raise InvalidInput(
            f"{quote_untrusted(name)} is not a valid key name",
            hint="a key name has no spaces and no '+', e.g. northwind.example/modelpact/log",
        )


_FORBIDDEN = re.compile(r"[\x00-\x09\x0b-\x1f\ud800-\udfff]")


def _check_characters(text: str) -> None:
    """Notes are valid UTF-8 without ASCII control characters other than newline."""
    found = _FORBIDDEN.search(text)
    if found:
        number = text.count("\n", 0, found.start()) + 1
        raise InvalidInput(
            f"line {number}: the note holds the control or invalid character "
            f"U+{ord(found.group()):04X}"
        )


def _decode_base64(text: str) -> bytes | None:
    """Standard base64 with padding, in its one canonical spelling; ``None`` otherwise."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if base64.b64encode(raw).decode("ascii") == text else None


def key_id(name: str, key: VerifyKey) -> bytes:
    """The 4-byte signed-note key id of the Ed25519 ``key`` under ``name``."""
    _check_name(name)
    digest = sha256_hex(name.encode("utf-8") + b"\n" + _ED25519 + key.raw())
    return bytes.fromhex(digest)[:4]


def verifier_key(name: str, key: VerifyKey) -> str:
    """The key as signed-note tools share it: ``<name>+<hex key id>+<base64(0x01||key)>``."""
    encoded = base64.b64encode(_ED25519 + key.raw()).decode("ascii")
    return f"{name}+{key_id(name, key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, VerifyKey]:
    """Inverse of :func:`verifier_key`: the key name and the Ed25519 key it names.

    The key id in the text must be the one computed from the name and key, so a
    key copied with a typo is refused rather than silently never matching.
    """
    hint = "a verifier key reads <name>+<8 hex digits>+<base64>"
    parts = text.strip().split("+", 2)  # names have no '+'; base64 may
    if len(parts) != 3:
        raise InvalidInput("a verifier key has three parts separated by '+'", hint=hint)
    name, hex_id, encoded = parts
    _check_name(name)
    if len(hex_id) != 8 or any(ch not in "0123456789abcdefABCDEF" for ch in hex_id):
        raise InvalidInput("the key id of a verifier key is 8 hex digits", hint=hint)
    raw = _decode_base64(encoded)
    if raw is None:
        raise InvalidInput("the key of a verifier key is not canonical base64", hint=hint)
    if raw[:1] != _ED25519:
        raise InvalidInput(
            f"the verifier key has signature type {raw[:1].hex() or 'none'}; "
            "only 01 (Ed25519) is supported"
        )
    if len(raw) != 1 + 32:
        raise InvalidInput(f"an Ed25519 verifier key has 32 key bytes, this one has {len(raw) - 1}")
    key = VerifyKey.decode("ed25519:" + base64.b64encode(raw[1:]).decode("ascii"))
    if key_id(name, key) != bytes.fromhex(hex_id):
        raise InvalidInput(
            f"the key id {hex_id} does not belong to this name and key",
            hint="copy the verifier key again; it was changed on the way",
        )
    return name, key


def sign_note(text: str, key: SigningKey, *, name: str) -> str:
    """Sign ``text`` (ending in a newline) with ``key`` under ``name``: the note's text."""
    _check_name(name)
    if not text.endswith("\n"):
        raise InvalidInput("a note's text must end in a newline")
    _check_characters(text)
    data = text.encode("utf-8")
    blob = key_id(name, key.verify_key) + key.sign(data)
    line = f"{_SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode('ascii')}\n"
    return text + "\n" + line


def open_note(note: str, key: VerifyKey, *, name: str) -> str:
    """The text of ``note`` once its signature by ``key`` under ``name`` verifies.

    Signature lines by other keys (a different name or key id) are ignored;
    only the first line by the expected key is checked, as in Go's
    implementation.  No such line, or one that fails, raises
    :class:`SignatureInvalid`; a note that is not well formed raises
    :class:`InvalidInput` naming the line.
    """
    wanted = key_id(name, key)
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("the note is not valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise InvalidInput(f"the note has {size} bytes, more than the {MAX_NOTE_BYTES} accepted")
    _check_characters(note)
    if not note.endswith("\n"):
        raise InvalidInput(f"line {note.count(chr(10)) + 1}: the note does not end in a newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise InvalidInput("the note has no blank line between its text and its signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    first = text.count("\n") + 2  # the line number of the first signature line
    lines = signatures.split("\n")[:-1]
    if not lines:
        raise InvalidInput(f"line {first}: the note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise InvalidInput(f"the note has {len(lines)} signatures, more than {MAX_SIGNATURES}")
    chosen: bytes | None = None
    for number, line in enumerate(lines, start=first):
        if not line.startswith(_SIGNATURE_PREFIX):
            raise InvalidInput(f"line {number}: a signature line starts with '— ' (em dash, space)")
        signer, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        try:
            _check_name(signer)
        except InvalidInput as exc:
            raise InvalidInput(f"line {number}: {exc.summary}") from None
        blob = _decode_base64(encoded)
        if blob is None or len(blob) < 5:
            raise InvalidInput(f"line {number}: the signature is not base64 of a key id and bytes")
        if chosen is None and signer == name and blob[:4] == wanted:
            chosen = blob[4:]
    if chosen is None:
        raise SignatureInvalid(
            f"the note carries no signature by {quote_untrusted(name)} (key id {wanted.hex()})",
            hint="check that the verifier key configured is the one that signs these notes",
        )
    if len(chosen) != _ED25519_SIGNATURE_SIZE:
        raise SignatureInvalid(
            f"the signature by {quote_untrusted(name)} has {len(chosen)} bytes, not 64"
        )
    try:
        key.verify(chosen, text.encode("utf-8"))
    except SignatureInvalid:
        raise SignatureInvalid(
            f"the signature by {quote_untrusted(name)} does not verify: the note was changed"
        ) from None
    return text
