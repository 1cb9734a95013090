"""Keyed pseudo-random functions: HMAC-SHA256 under a secret that never leaves the workspace.

A watermark decides which answers to mark, and how, from a partner's secret key and the
query alone, so the same query always gets the same answer and nobody without the key
can tell which answers are marked.  The key's bytes are never printed or logged.
"""

from __future__ import annotations

import hmac
import os

from modelpact.errors import InvalidInput

__all__ = ["PrfKey"]


class PrfKey:
    """A 256-bit secret and HMAC-SHA256 under it, with a label separating each use."""

    SIZE = 32
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes) or len(secret) != self.SIZE:
            raise InvalidInput(f"a keyed-PRF secret is {self.SIZE} bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> PrfKey:
        return cls(os.urandom(cls.SIZE))

    def prf(self, label: bytes, data: bytes) -> bytes:
        """HMAC-SHA256 of ``label``, a zero byte, then ``data``: 32 bytes."""
        return hmac.digest(self._secret, label + b"\0" + data, "sha256")

    def secret(self) -> bytes:
        """The secret itself, to seal it at rest (never print it)."""
        return self._secret

    def __repr__(self) -> str:
        return "PrfKey(<secret>)"
