"""Pickle, joblib and torch checkpoints are refused by name and content, never opened.

Every pickle here is of a :class:`Tripwire`: unpickling one calls :func:`_trip`,
which records it.  The autouse fixture fails any test after which the record is
not empty, so "refused without loading" is checked, not assumed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelpact.errors import ModelRejected
from modelpact.runtime import inspect_model, refuse_pickle_family

_TRIPPED: list[str] = []


def _trip() -> dict[str, Any]:
    _TRIPPED.append("unpickled")
    return {}


class Tripwire:
    """Harmless when dumped; records that someone loaded it."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_trip, ())


@pytest.fixture(autouse=True)
def nothing_is_unpickled() -> Iterator[None]:
    _TRIPPED.clear()
    yield
    assert _TRIPPED == [], "a pickle was loaded"


def _pickle(protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    return pickle.dumps({"weights": [0.5, 1.5], "model": Tripwire()}, protocol=protocol)


def refused(data: bytes, source: str = "model.onnx") -> ModelRejected:
    """Refused both by the sniffer alone and by the full inspection, for the same reason."""
    with pytest.raises(ModelRejected) as direct:
        refuse_pickle_family(data, source=source)
    with pytest.raises(ModelRejected) as inspected:
        inspect_model(data, source=source)
    assert inspected.value.summary == direct.value.summary
    return inspected.value


def assert_pickle_refusal(error: ModelRejected) -> None:
    assert "loading a pickle runs arbitrary code" in error.summary
    assert "export_sklearn" in error.hint
    assert "skl2onnx.to_onnx" in error.hint
    assert "torch.onnx.export" in error.hint


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_of_every_protocol_is_refused(protocol: int) -> None:
    error = refused(_pickle(protocol))
    assert_pickle_refusal(error)
    if protocol >= 2:
        assert f"protocol {protocol} header" in error.summary
    else:
        assert "protocol 0 or 1 pickle" in error.summary


def test_torch_save_zip_with_data_pkl_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", _pickle(2))
        archive.writestr("archive/data/0", b"\x00" * 64)
        archive.writestr("archive/version", b"3\n")
    error = refused(buffer.getvalue())
    assert_pickle_refusal(error)
    assert "'archive/data.pkl'" in error.summary
    assert "torch.save" in error.summary


def test_zip_without_a_pickle_is_still_not_a_model() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.onnx", b"\x08\x07")
    error = refused(buffer.getvalue())
    assert "is a zip archive, not an ONNX model" in error.summary


def test_truncated_zip_is_not_a_model() -> None:
    assert "zip archive" in refused(b"PK\x03\x04" + b"\x00" * 40).summary


@pytest.mark.parametrize(
    ("kind", "compress"),
    [
        ("zlib", zlib.compress),
        ("gzip", gzip.compress),
        ("bz2", bz2.compress),
        ("xz", lzma.compress),
        ("lzma", lambda data: lzma.compress(data, format=lzma.FORMAT_ALONE)),
    ],
)
def test_compressed_pickle_as_joblib_writes_it_is_refused(kind: str, compress: Any) -> None:
    error = refused(compress(_pickle()))
    assert_pickle_refusal(error)
    assert f"{kind}-compressed pickle" in error.summary


def test_legacy_joblib_zlib_file_is_refused() -> None:
    payload = _pickle()
    header = b"ZF" + hex(len(payload)).encode().ljust(len(hex(2**64)))
    assert_pickle_refusal(refused(header + zlib.compress(payload)))


@pytest.mark.parametrize("compress", [None, "zlib", "gzip", "xz"])
def test_real_joblib_dump_is_refused(tmp_path: Path, compress: str | None) -> None:
    joblib = pytest.importorskip("joblib")
    path = tmp_path / "dump"  # no telling suffix: refused by content alone
    joblib.dump(Tripwire(), path, compress=(compress, 3) if compress else 0)
    assert_pickle_refusal(refused(path.read_bytes(), source="dump"))


def test_lz4_file_is_refused_without_looking_inside() -> None:
    error = refused(b"\x04\x22\x4d\x18" + b"\x00" * 32)
    assert "lz4-compressed file" in error.summary


def test_compressed_file_without_a_pickle_is_not_a_model() -> None:
    error = refused(gzip.compress(b"just some text"))
    assert "gzip-compressed file, not an ONNX model" in error.summary


def test_compression_bomb_is_not_inflated() -> None:
    bomb = zlib.compress(b"\x00" * (64 << 20), 9)  # 64 MiB of zeros in ~64 KiB
    assert "zlib-compressed file" in refused(bomb).summary


@pytest.mark.parametrize(
    "name",
    [
        "model.pkl",
        "model.pickle",
        "MODEL.JOBLIB",
        "resnet.pt",
        "weights.pth",
        "pytorch_model.bin",
        "epoch=3.ckpt",
        "model.pkl.gz",
        "model.joblib.xz",
        "C:\\models\\fraud.pkl",
    ],
)
def test_pickle_file_names_are_refused_whatever_the_content(
    name: str, logistic_onnx: bytes
) -> None:
    error = refused(logistic_onnx, source=name)
    assert_pickle_refusal(error)
    assert "its name ends in" in error.summary
    assert "give it a .onnx name" in error.hint


def test_onnx_passes_the_sniffer(logistic_onnx: bytes) -> None:
    refuse_pickle_family(logistic_onnx, source="model.onnx")


@pytest.mark.parametrize(
    "data",
    [b"", b"hello", b"I think therefore", b"(not a pickle", b"\x80\x09nope"],
    ids=["empty", "word", "int-opcode-then-text", "mark-then-text", "bad-protocol"],
)
def test_text_that_starts_like_an_opcode_is_not_called_a_pickle(data: bytes) -> None:
    refuse_pickle_family(data, source="notes.txt")
