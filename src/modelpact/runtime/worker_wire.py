"""The message format between the gateway and its model workers: small, versioned, no pickle.

A message on the pipe is a frame: a 4-byte big-endian length, then that many
bytes of body.  A body is one version byte (:data:`VERSION`), a 4-byte
big-endian header length, the header — a JSON object, UTF-8 — and the payload:
raw bytes whose meaning the header gives (for a prediction, the rows as
little-endian float64, row-major).  Nothing is ever unpickled or evaluated; a
frame that breaks any of these rules raises :class:`WireError`, and the reader
stops trusting the stream.

Requests carry ``{"id": n, "op": ...}``; each reply carries the same ``id`` and
``"ok": true`` with the result, or ``"ok": false`` with ``{"error": {"kind",
"message"}}``.
"""

from __future__ import annotations

import json
import struct
from typing import Any, BinaryIO

from modelpact.errors import ModelpactError

__all__ = [
    "MAX_FRAME",
    "VERSION",
    "WireError",
    "blobs_from_payload",
    "blobs_payload",
    "decode",
    "encode",
    "frame_length",
    "read_frame",
    "rows_from_payload",
    "rows_payload",
]

VERSION = 1
#: The largest body either side accepts (a batch of rows, a reply's outputs).
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class WireError(ModelpactError):
    """A frame that breaks the worker message format."""

    default_hint = "the gateway and its model workers must run the same modelpact version"


def encode(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """One whole frame: length prefix, version, header length, header, payload."""
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    body = bytes([VERSION]) + _LENGTH.pack(len(text)) + text + payload
    if len(body) > MAX_FRAME:
        raise WireError(f"a message of {len(body)} bytes is over the {MAX_FRAME} byte limit")
    return _LENGTH.pack(len(body)) + body


def decode(body: bytes) -> tuple[dict[str, Any], bytes]:
    """``(header, payload)`` of a frame's body; :class:`WireError` if it is malformed."""
    if len(body) < 1 + _LENGTH.size:
        raise WireError("a worker message shorter than its fixed fields")
    if body[0] != VERSION:
        raise WireError(f"worker message version {body[0]}, expected {VERSION}")
    (size,) = _LENGTH.unpack_from(body, 1)
    start = 1 + _LENGTH.size
    if size > len(body) - start:
        raise WireError("a worker message whose header runs past its end")
    try:
        header = json.loads(body[start : start + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WireError("a worker message whose header is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("id"), int):
        raise WireError("a worker message without a numeric id")
    return header, body[start + size :]


def frame_length(prefix: bytes) -> int:
    """The body length a 4-byte prefix announces; :class:`WireError` if over the limit."""
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_FRAME:
        raise WireError(f"a worker message of {length} bytes is over the {MAX_FRAME} byte limit")
    return int(length)


def read_frame(stream: BinaryIO) -> tuple[dict[str, Any], bytes] | None:
    """The next message from a blocking stream; None at a clean end of stream."""
    prefix = stream.read(_LENGTH.size)
    if not prefix:
        return None
    if len(prefix) < _LENGTH.size:
        raise WireError("the stream ended inside a length prefix")
    length = frame_length(prefix)
    body = stream.read(length)
    if len(body) < length:
        raise WireError("the stream ended inside a message")
    return decode(body)


def rows_payload(rows: list[list[float]]) -> tuple[bytes, int, int]:
    """``(payload, count, width)`` of rectangular rows of floats (checked by the caller)."""
    count, width = len(rows), len(rows[0]) if rows else 0
    flat = [value for row in rows for value in row]
    return struct.pack(f"<{len(flat)}d", *flat), count, width


def rows_from_payload(payload: bytes, count: int, width: int) -> list[list[float]]:
    """The rows :func:`rows_payload` packed; :class:`WireError` if the sizes disagree."""
    if count < 0 or width < 0 or len(payload) != count * width * 8:
        raise WireError("a rows payload whose size does not match its shape")
    flat = struct.unpack(f"<{count * width}d", payload)
    return [list(flat[i * width : (i + 1) * width]) for i in range(count)]


def blobs_payload(blobs: list[bytes]) -> tuple[bytes, list[int]]:
    """``(payload, sizes)`` of byte strings laid end to end (ciphertexts, a context)."""
    return b"".join(blobs), [len(b) for b in blobs]


def blobs_from_payload(payload: bytes, sizes: object) -> list[bytes]:
    """The byte strings :func:`blobs_payload` laid out; :class:`WireError` if the sizes do
    not add up to the payload."""
    if not isinstance(sizes, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in sizes
    ):
        raise WireError("a blobs payload without a list of sizes")
    if sum(sizes) != len(payload):
        raise WireError("a blobs payload whose size does not match its sizes")
    blobs, at = [], 0
    for size in sizes:
        blobs.append(payload[at : at + size])
        at += size
    return blobs
