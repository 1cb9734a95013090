"""Refusing pickle-family files before anything tries to open them.

Unpickling runs whatever code the file names, so a pickle, a joblib dump or a
PyTorch checkpoint (``torch.save`` writes a zip holding ``data.pkl``) can never
be registered.  Everything here decides from the bytes and the file name only:
magic numbers, a zip's central directory, a few hundred decompressed bytes and
:func:`pickletools.genops`, a disassembler that reads opcodes without building a
single object or importing a single module.  Nothing is ever unpickled.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import zipfile
import zlib
from pathlib import PurePosixPath
from typing import Protocol

from modelpact.errors import ModelRejected, quote_untrusted

__all__ = ["EXPORT_HINT", "PICKLE_SUFFIXES", "refuse_pickle_family"]

EXPORT_HINT = (
    "export the model to ONNX and register the .onnx file instead: for scikit-learn use "
    "modelpact.runtime.export_sklearn(estimator) or skl2onnx.to_onnx(...); "
    "for PyTorch use torch.onnx.export(...)"
)
"""What a human should do with a refused pickle: the hint of every refusal here."""

PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt"})
"""File name endings that pickle, joblib and PyTorch use for pickled models."""

_COMPRESSION_SUFFIXES = frozenset({".gz", ".z", ".zlib", ".bz2", ".xz", ".lzma", ".lz4"})
_PICKLE_MEMBER_SUFFIXES = (".pkl", ".pickle", ".joblib")
_WHY = "loading a pickle runs arbitrary code, so modelpact never opens one"
# pickletools.genops stops at the first byte that is not an opcode; a protocol 0 or 1
# pickle longer than this window is recognised by a long clean run of opcodes.
_OPCODE_WINDOW = 1 << 20
_CLEAN_RUN = 16
_PEEK = 256
_COMPRESSED_WINDOW = 1 << 20  # a whole bz2 block, the largest unit any of these needs
_JOBLIB_LEGACY_HEADER = 2 + len(hex(2**64))  # b"ZF" + length in hex, padded
_OPCODE_BYTES = frozenset(op.code.encode("latin-1")[0] for op in pickletools.opcodes)


class _Decompressor(Protocol):
    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def refuse_pickle_family(data: bytes, *, source: str) -> None:
    """Raise :class:`ModelRejected` if ``data`` (named ``source``) is or wraps a pickle.

    Also refuses zip archives and compressed files that reveal no pickle: they are
    not ONNX models either, and they are how pickles usually travel.
    """
    shown = quote_untrusted(source)
    by_name = _name_evidence(source)
    if by_name is not None:
        raise ModelRejected(
            f"{shown} is refused: {by_name}; {_WHY}",
            hint=EXPORT_HINT + "; if the file already is ONNX, give it a .onnx name",
        )
    evidence = _content_evidence(data)
    if evidence is not None:
        raise ModelRejected(f"{shown} is refused: {evidence}; {_WHY}", hint=EXPORT_HINT)
    container = _container_kind(data)
    if container is not None:
        raise ModelRejected(
            f"{shown} is {container}, not an ONNX model",
            hint="register the plain .onnx file; if this holds a pickle or a joblib dump, "
            + EXPORT_HINT,
        )


def _name_evidence(source: str) -> str | None:
    suffixes = [s.lower() for s in PurePosixPath(source.replace("\\", "/")).suffixes]
    if not suffixes:
        return None
    last = suffixes[-1]
    if last in PICKLE_SUFFIXES:
        return f"its name ends in '{last}', a pickle, joblib or PyTorch checkpoint format"
    if last in _COMPRESSION_SUFFIXES and len(suffixes) > 1 and suffixes[-2] in PICKLE_SUFFIXES:
        return f"its name ends in '{suffixes[-2]}{last}', a compressed pickle or joblib dump"
    return None


def _content_evidence(data: bytes) -> str | None:
    if _has_protocol_header(data):
        return f"it starts with a pickle protocol {data[1]} header (pickle, joblib or torch)"
    if data.startswith(b"PK\x03\x04"):
        member = _pickle_member(data)
        if member is not None:
            return (
                f"it is a zip archive holding the pickle {quote_untrusted(member)} "
                "(as torch.save writes)"
            )
        return None
    compressed = _decompressed_peek(data)
    if compressed is not None:
        kind, peek = compressed
        if peek is not None and (_has_protocol_header(peek) or _opcode_run(peek, complete=False)):
            return f"it is a {kind}-compressed pickle (as joblib writes)"
        return None
    if _opcode_run(data[:_OPCODE_WINDOW], complete=len(data) <= _OPCODE_WINDOW):
        return "it is a protocol 0 or 1 pickle"
    return None


def _container_kind(data: bytes) -> str | None:
    if data.startswith(b"PK\x03\x04"):
        return "a zip archive"
    compressed = _decompressed_peek(data)
    if compressed is not None:
        return f"a {compressed[0]}-compressed file"
    return None


def _has_protocol_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def _pickle_member(data: bytes) -> str | None:
    """The first pickle-looking member of a zip, read from its central directory only."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError):
        return None
    for name in names:
        if name.lower().endswith(_PICKLE_MEMBER_SUFFIXES):
            return name
    return None


def _decompressed_peek(data: bytes) -> tuple[str, bytes | None] | None:
    """``(kind, first bytes)`` for a compressed file, bytes ``None`` if unreadable here.

    At most :data:`_PEEK` bytes come out, so a compression bomb costs nothing.
    """
    decompressor: _Decompressor
    body = data
    if data.startswith(b"\x1f\x8b"):
        kind, decompressor = "gzip", zlib.decompressobj(wbits=31)
    elif data.startswith(b"ZF0x"):
        kind, decompressor = "zlib", zlib.decompressobj()
        body = data[_JOBLIB_LEGACY_HEADER:]
    elif len(data) >= 2 and data[0] == 0x78 and ((data[0] << 8) | data[1]) % 31 == 0:
        kind, decompressor = "zlib", zlib.decompressobj()
    elif data.startswith(b"BZh"):
        kind, decompressor = "bz2", bz2.BZ2Decompressor()
    elif data.startswith(b"\xfd7zXZ\x00"):
        kind, decompressor = "xz", lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif data.startswith(b"\x5d\x00\x00"):
        kind, decompressor = "lzma", lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    elif data.startswith(b"\x04\x22\x4d\x18"):
        return "lz4", None
    elif data.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd", None
    else:
        return None
    try:
        peek = decompressor.decompress(body[:_COMPRESSED_WINDOW], _PEEK)
    except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError):
        if kind == "zlib" and not data.startswith(b"ZF0x"):
            return None  # two bytes that only looked like a zlib header
        return kind, None
    return kind, peek[:_PEEK]


def _opcode_run(window: bytes, *, complete: bool) -> bool:
    """Whether ``window`` disassembles as a pickle.

    ``complete``: the window is the whole file, and must end its run with STOP.
    Otherwise a clean run of opcodes up to the cut also counts.
    """
    if not window or window[0] not in _OPCODE_BYTES:
        return False
    count = 0
    try:
        for opcode, _arg, _pos in pickletools.genops(window):
            count += 1
            if opcode.name == "STOP":
                return True
    except Exception:  # any disassembly error ends the clean run
        return not complete and count >= _CLEAN_RUN
    return not complete and count >= _CLEAN_RUN
