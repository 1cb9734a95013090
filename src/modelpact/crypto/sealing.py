"""Encryption at rest: AES-256-GCM data keys wrapped by a key-encryption key.

Every artifact gets its own random data key.  The data key is sealed under the
workspace's key-encryption key (KEK); both seals carry associated data that
names what the bytes belong to (model and version), so a ciphertext moved to
another record does not open.  Every failure to open raises one
:class:`~modelpact.errors.Tampered`, whatever the cause.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelpact.crypto.files import read_private_file, write_private_file
from modelpact.errors import InvalidInput, Tampered

__all__ = ["DataKey", "KeyEncryptionKey", "open_sealed", "seal"]

_NONCE = 12
_KEY = 32
_VERSION = b"\x01"


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """AES-256-GCM: ``version || nonce || ciphertext+tag`` under a fresh random nonce."""
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, plaintext, _VERSION + associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    """Inverse of :func:`seal`; raises :class:`Tampered` on any mismatch."""
    if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
        raise Tampered("sealed data is truncated or of an unknown format")
    nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
    try:
        return AESGCM(key).decrypt(nonce, body, _VERSION + associated_data)
    except InvalidTag:
        raise Tampered("sealed data failed authentication") from None


class DataKey:
    """A per-artifact AES-256 key, held only in memory in clear."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY:
            raise InvalidInput("a data key has 32 bytes")
        self._key = key

    @classmethod
    def generate(cls) -> DataKey:
        return cls(AESGCM.generate_key(bit_length=256))

    def secret(self) -> bytes:
        """The key's bytes, to seal it inside something else (never print them)."""
        return self._key

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        return seal(self._key, plaintext, associated_data)

    def open(self, sealed: bytes, associated_data: bytes) -> bytes:
        return open_sealed(self._key, sealed, associated_data)

    def __repr__(self) -> str:
        return "DataKey(<redacted>)"


class KeyEncryptionKey:
    """The workspace key that wraps data keys.  Stored base64 in a 0600 file."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY:
            raise InvalidInput("a key-encryption key has 32 bytes")
        self._key = key

    @classmethod
    def generate(cls) -> KeyEncryptionKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @classmethod
    def load(cls, path: Path) -> KeyEncryptionKey:
        text = read_private_file(path).strip()
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"{path} is not a base64 key-encryption key") from None
        if len(raw) != _KEY:
            raise InvalidInput(f"{path} does not hold a 32-byte key-encryption key")
        return cls(raw)

    def save(self, path: Path) -> None:
        write_private_file(path, base64.b64encode(self._key) + b"\n")

    def wrap(self, data_key: DataKey, associated_data: bytes) -> bytes:
        return seal(self._key, data_key._key, b"wrap:" + associated_data)

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> DataKey:
        try:
            return DataKey(open_sealed(self._key, wrapped, b"wrap:" + associated_data))
        except Tampered:
            raise Tampered(
                "wrapped data key does not open under this workspace's key-encryption key"
            ) from None

    def __repr__(self) -> str:
        return "KeyEncryptionKey(<redacted>)"
