"""Ed25519 identities and signatures over RFC 8785 canonical JSON.

Owners and partners are named by their public key written ``ed25519:<base64>``
(the 32 raw key bytes, standard base64).  ``verify`` returns nothing and raises
:class:`~modelpact.errors.SignatureInvalid`, so a check cannot be skipped by a
forgotten ``if``.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any, cast

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from modelpact.crypto.digests import sha256_hex
from modelpact.crypto.files import read_private_file, write_private_file
from modelpact.errors import InvalidInput, SignatureInvalid

__all__ = ["SigningKey", "VerifyKey", "canonical_digest", "canonical_json"]

_PREFIX = "ed25519:"


_EXACT = 2**53  # integers beyond this are not exact in a JSON number (an IEEE double)


def _number(value: float) -> str | None:
    """The RFC 8785 text of a float, where ``repr`` makes it cheaply; None elsewhere.

    RFC 8785 writes numbers as ECMAScript does: the shortest digits that read back
    as the same double (what ``repr`` picks too), with no fraction for an integral
    value, and in plain notation from 1e-6 up to 1e21.  ``repr`` agrees with that for
    non-integral values from 1e-4 up to 1e16; integral values below 2^53 are written
    as their integer.  The rest (and NaN or infinity, which RFC 8785 refuses) go to
    the full serialiser.
    """
    if value.is_integer():
        return str(int(value)) if -_EXACT < value < _EXACT else None
    magnitude = abs(value)
    return repr(value) if 1e-4 <= magnitude < 1e16 else None


def _fast(value: Any, out: list[str]) -> bool:
    """Append the RFC 8785 text of ``value`` to ``out``; False where only the full
    serialiser can say (``out`` is then left partly written).

    Object keys must be ASCII: those sort the same by code point and by UTF-16
    unit, as RFC 8785 sorts them.
    """
    kind = type(value)
    if kind is str:
        out.append(json.dumps(value, ensure_ascii=False))
        return True
    if kind is float:
        text = _number(value)
        if text is None:
            return False
        out.append(text)
        return True
    if kind is int:
        if not -_EXACT < value < _EXACT:
            return False
        out.append(str(value))
        return True
    if kind is bool or value is None:
        out.append("true" if value is True else "false" if value is False else "null")
        return True
    if kind is list or kind is tuple:
        if value and all(type(item) is float for item in value):  # a row of features
            texts = [_number(item) for item in value]
            if None in texts:
                return False
            out.append("[" + ",".join(cast(list[str], texts)) + "]")
            return True
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            if not _fast(item, out):
                return False
        out.append("]")
        return True
    if kind is dict:
        out.append("{")
        for index, key in enumerate(sorted(value)):
            if type(key) is not str or not key.isascii():
                return False
            if index:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            if not _fast(value[key], out):
                return False
        out.append("}")
        return True
    return False


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical bytes of a JSON value.

    The audit log encodes every entry and the gateway digests every request's
    rows, so the common values (ASCII keys, floats in the range ``repr`` writes as
    RFC 8785 does) take a fast path that yields the same bytes; a property test
    holds the two paths equal.
    """
    out: list[str] = []
    try:
        fast = _fast(value, out)
    except TypeError:  # keys that do not sort: let RFC 8785 say what is wrong
        fast = False
    if fast:
        try:
            return "".join(out).encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: let RFC 8785 decide
            pass
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError) as exc:
        raise InvalidInput(f"value cannot be put in canonical JSON: {exc}") from None


def canonical_digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``value``."""
    return "sha256:" + sha256_hex(canonical_json(value))


class VerifyKey:
    """An Ed25519 public key: who signed, and the check that they did."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key

    @classmethod
    def decode(cls, text: str) -> VerifyKey:
        """Parse ``ed25519:<base64 of 32 bytes>``."""
        if not isinstance(text, str) or not text.startswith(_PREFIX):
            raise InvalidInput(
                "public key must be written ed25519:<base64>",
                hint="copy the line printed by 'modelpact partner keygen'",
            )
        try:
            raw = base64.b64decode(text[len(_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("public key is not valid base64") from None
        if len(raw) != 32:
            raise InvalidInput(f"an Ed25519 public key has 32 bytes, this one has {len(raw)}")
        return cls(Ed25519PublicKey.from_public_bytes(raw))

    def encode(self) -> str:
        raw = self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return _PREFIX + base64.b64encode(raw).decode("ascii")

    def raw(self) -> bytes:
        return self._key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise :class:`SignatureInvalid` unless ``signature`` is this key's over ``data``."""
        try:
            self._key.verify(signature, data)
        except InvalidSignature:
            raise SignatureInvalid(f"signature does not verify under {self.encode()}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and self.raw() == other.raw()

    def __hash__(self) -> int:
        return hash(self.raw())

    def __repr__(self) -> str:
        return f"VerifyKey({self.encode()!r})"


class SigningKey:
    """An Ed25519 private key.  Its bytes are never printed or logged."""

    __slots__ = ("_key",)

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Load a PKCS#8 PEM Ed25519 key, refusing a file others can read."""
        data = read_private_file(path)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise InvalidInput(f"{path} is not an unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidInput(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key as PKCS#8 PEM, mode 0600, refusing to overwrite."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private_file(path, pem)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key.encode()!r})"
