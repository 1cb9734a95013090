"""Digests and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["constant_time_equal", "sha256_hex"]


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def constant_time_equal(a: bytes | str, b: bytes | str) -> bool:
    """Compare two secrets or digests without leaking where they differ."""
    left = a.encode() if isinstance(a, str) else a
    right = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(left, right)
