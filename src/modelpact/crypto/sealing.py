"""Encryption at rest: AES-256-GCM data keys wrapped by a key-encryption key.

Every artifact gets its own random data key.  The data key is sealed under the
workspace's key-encryption key (KEK); both seals carry associated data that
names what the bytes belong to (model and version), so a ciphertext moved to
another record does not open.  Every failure to open raises one
:class:`~modelpact.errors.Tampered`, whatever the cause.

A :class:`KeyRing` rotates KEKs the way ``MultiFernet`` rotates Fernet keys: it wraps
under its first (newest) key and unwraps under any it holds.

Random 96-bit nonces keep AES-GCM safe for at most 2**32 seals under one key (NIST SP
800-38D, section 8.3): :data:`GCM_SEAL_LIMIT`.  Counting them is the caller's job (the
key is in memory, the count belongs in a database).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from modelpact.crypto.files import read_private_file, write_private_file
from modelpact.errors import InvalidInput, Tampered

__all__ = ["GCM_SEAL_LIMIT", "DataKey", "KeyEncryptionKey", "KeyRing", "open_sealed", "seal"]

_NONCE = 12
_KEY = 32
_VERSION = b"\x01"
_KEK_FORMAT = "modelpact-kek/v2"
#: The most seals one key may make with random 96-bit nonces (NIST SP 800-38D, 8.3).
GCM_SEAL_LIMIT = 2**32


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
    """The workspace key that wraps data keys.  Stored in a 0600 file.

    ``key_id`` is random, not derived from the key (it names the key in counters and
    logs without telling anything about it); ``created_at`` dates it.  A file written
    before either existed holds the base64 key alone: its id is ``"legacy"``.
    """

    __slots__ = ("_key", "created_at", "key_id")

    def __init__(
        self, key: bytes, *, key_id: str = "legacy", created_at: datetime | None = None
    ) -> None:
        if len(key) != _KEY:
            raise InvalidInput("a key-encryption key has 32 bytes")
        self._key = key
        self.key_id = key_id
        self.created_at = created_at

    @classmethod
    def generate(cls, *, created_at: datetime | None = None) -> KeyEncryptionKey:
        key_id = "kek-" + secrets.token_hex(8)
        return cls(AESGCM.generate_key(bit_length=256), key_id=key_id, created_at=created_at)

    @classmethod
    def load(cls, path: Path) -> KeyEncryptionKey:
        text = read_private_file(path).strip()
        key_id, created_at = "legacy", None
        try:
            if text.startswith(b"{"):
                document = json.loads(text)
                if not isinstance(document, dict) or document.get("format") != _KEK_FORMAT:
                    raise ValueError
                key_id = str(document["id"])
                created = document["created"]
                created_at = None if created is None else datetime.fromisoformat(created)
                text = document["key"].encode("ascii")
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, KeyError, TypeError, ValueError, AttributeError):
            raise InvalidInput(f"{path} is not a base64 key-encryption key") from None
        if len(raw) != _KEY:
            raise InvalidInput(f"{path} does not hold a 32-byte key-encryption key")
        return cls(raw, key_id=key_id, created_at=created_at)

    def save(self, path: Path) -> None:
        """Write the key to a new 0600 file (never over an existing one), flushed to disk."""
        encoded = base64.b64encode(self._key)
        if self.created_at is None and self.key_id == "legacy":
            write_private_file(path, encoded + b"\n")
            return
        document = {
            "format": _KEK_FORMAT,
            "id": self.key_id,
            "created": None if self.created_at is None else self.created_at.isoformat(),
            "key": encoded.decode("ascii"),
        }
        write_private_file(path, json.dumps(document).encode() + b"\n")

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


class KeyRing:
    """KEKs during a rotation, newest first: wrap with the newest, unwrap with any."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[KeyEncryptionKey]) -> None:
        if not keys:
            raise InvalidInput("a key ring holds at least one key-encryption key")
        self._keys = tuple(keys)

    @property
    def newest(self) -> KeyEncryptionKey:
        return self._keys[0]

    @property
    def keys(self) -> tuple[KeyEncryptionKey, ...]:
        return self._keys

    def wrap(self, data_key: DataKey, associated_data: bytes) -> bytes:
        return self._keys[0].wrap(data_key, associated_data)

    def unwrap(self, wrapped: bytes, associated_data: bytes) -> DataKey:
        """The data key under whichever key opens it; one :class:`Tampered` if none does."""
        for kek in self._keys:
            try:
                return kek.unwrap(wrapped, associated_data)
            except Tampered:
                continue
        raise Tampered("wrapped data key does not open under this workspace's key-encryption key")

    def rewrap(self, wrapped: bytes, associated_data: bytes) -> bytes | None:
        """``wrapped`` wrapped again under the newest key, or None if it opens there already
        (so running a rotation twice changes nothing the second time)."""
        try:
            self._keys[0].unwrap(wrapped, associated_data)
        except Tampered:
            return self.wrap(self.unwrap(wrapped, associated_data), associated_data)
        return None

    def __repr__(self) -> str:
        return f"KeyRing({', '.join(k.key_id for k in self._keys)})"
