"""Signed tree heads of the audit log, in the C2SP tlog-checkpoint format.

Why it exists: a checkpoint is the log's signed promise "my first ``size``
entries have this root"; partners and witnesses keep them and compare them, so
two checkpoints that cannot both be true become portable evidence.  Using the
C2SP format (a signed note, see :mod:`modelpact.audit.note`) means the same
text is checked by Go's ``sumdb/note`` and transparency-dev witnesses::

    northwind.example/modelpact/log
    1234
    <base64 of the 32-byte root>
    [optional extension lines]

    — northwind.example/modelpact/log <base64(key id || Ed25519 signature)>

:func:`open_checkpoint` verifies the signature before it reads the body, so a
checkpoint is never built from unauthenticated text.  Malformed text raises
:class:`~modelpact.errors.InvalidInput` naming the line; a missing or bad
signature :class:`~modelpact.errors.SignatureInvalid`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

# verifier_key and parse_verifier_key belong to every signed note; they are re-exported here
# because a checkpoint key is what users share.
from modelpact.audit.note import open_note, parse_verifier_key, sign_note, verifier_key
from modelpact.audit.tree import HASH_SIZE
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import InvalidInput, quote_untrusted

__all__ = [
    "MAX_TREE_SIZE",
    "Checkpoint",
    "open_checkpoint",
    "parse_verifier_key",
    "sign_checkpoint",
    "verifier_key",
]

MAX_TREE_SIZE = 2**64 - 1
"""The largest tree size a checkpoint can state (an unsigned 64-bit integer)."""

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}", re.ASCII)


def _origin_problem(origin: str) -> str | None:
    if not origin:
        return "the origin is empty"
    if any(not 0x21 <= ord(ch) <= 0x7E or ch == "+" for ch in origin):
        return (
            f"the origin {quote_untrusted(origin)} must be printable ASCII "
            "without spaces or '+', e.g. northwind.example/modelpact/log"
        )
    return None


def _extension_problem(line: str) -> str | None:
    if not line:
        return "an extension line is empty"
    if any(ord(ch) < 0x20 or 0xD800 <= ord(ch) <= 0xDFFF for ch in line):
        return "an extension line holds a control character or a newline"
    return None


@dataclass(frozen=True)
class Checkpoint:
    """The log's tree head: its ``origin``, its ``size`` and the ``root`` hash at that size.

    ``extensions`` are opaque extra lines of the signed body (C2SP does not
    recommend them: monitors cannot audit them).
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _origin_problem(self.origin)
        if problem:
            raise InvalidInput(problem)
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise InvalidInput(f"a tree size is between 0 and {MAX_TREE_SIZE}, not {self.size}")
        if len(self.root) != HASH_SIZE:
            raise InvalidInput(f"a root hash has {HASH_SIZE} bytes, not {len(self.root)}")
        object.__setattr__(self, "root", bytes(self.root))
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            problem = _extension_problem(line)
            if problem:
                raise InvalidInput(problem)

    def body(self) -> bytes:
        """The signed bytes: origin, size, base64 root and extensions, each ending in a newline."""
        root = base64.b64encode(self.root).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    def __repr__(self) -> str:
        return f"Checkpoint(origin={self.origin!r}, size={self.size}, root={self.root.hex()})"


def _parse_body(text: str) -> Checkpoint:
    """The checkpoint in a verified note text, with line numbers for every fault."""
    lines = text.split("\n")[:-1]  # the text ends in a newline
    if len(lines) < 3:
        raise InvalidInput(
            f"line {len(lines) + 1}: a checkpoint needs an origin, a tree size and a root hash"
        )
    problem = _origin_problem(lines[0])
    if problem:
        raise InvalidInput(f"line 1: {problem}")
    if not _SIZE.fullmatch(lines[1]) or int(lines[1]) > MAX_TREE_SIZE:
        raise InvalidInput(
            f"line 2: the tree size {quote_untrusted(lines[1])} is not a decimal number "
            f"without leading zeros up to {MAX_TREE_SIZE}"
        )
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:  # binascii.Error is a ValueError
        root = b""
    if len(root) != HASH_SIZE or base64.b64encode(root).decode("ascii") != lines[2]:
        raise InvalidInput(f"line 3: the root hash is not the base64 of {HASH_SIZE} bytes")
    for number, line in enumerate(lines[3:], start=4):
        problem = _extension_problem(line)
        if problem:
            raise InvalidInput(f"line {number}: {problem}")
    return Checkpoint(lines[0], int(lines[1]), root, tuple(lines[3:]))


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey, *, name: str) -> str:
    """The signed note of ``checkpoint`` by ``key`` under the key name ``name``.

    C2SP asks that the log's key name be its origin; pass ``checkpoint.origin``
    unless there is a reason not to.
    """
    return sign_note(checkpoint.body().decode("utf-8"), key, name=name)


def open_checkpoint(
    text: str, key: VerifyKey, *, name: str, origin: str | None = None
) -> Checkpoint:
    """The checkpoint in the note ``text``, once its signature by ``key`` as ``name`` verifies.

    Other signers' lines (witnesses, a rotated key) are ignored.  With
    ``origin``, a checkpoint of any other log is refused with
    :class:`InvalidInput`: one key may sign for several logs.
    """
    checkpoint = _parse_body(open_note(text, key, name=name))
    if origin is not None and checkpoint.origin != origin:
        raise InvalidInput(
            f"the checkpoint is for the log {quote_untrusted(checkpoint.origin)}, "
            f"not {quote_untrusted(origin)}",
            hint="check which log this checkpoint came from",
        )
    return checkpoint
