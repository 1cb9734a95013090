"""Model signatures: our bundle is checked by the standard model_signing tool too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from modelpact.crypto import (
    generate_model_signing_key,
    plaintext_scratch,
    sign_model,
    verify_model,
)
from modelpact.errors import InsecureKeyFile, InvalidInput, SignatureInvalid

ARTIFACT = b"\x08\x07" + bytes(range(256)) * 8
FILES = {"model.onnx": ARTIFACT, "card.json": b'{"description":"d"}'}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keys")
    generate_model_signing_key(root / "k.pem", root / "k.pub")
    return root / "k.pem", root / "k.pub"


def test_scratch_refuses_path_names() -> None:
    with pytest.raises(InvalidInput), plaintext_scratch({"../x": b""}):
        pass


def test_sign_then_verify(keys: tuple[Path, Path]) -> None:
    private, public = keys
    with plaintext_scratch(FILES) as path:
        bundle = sign_model(path, private)
        verify_model(path, bundle, public)


def test_changed_model_or_bundle_or_key_fails(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    with plaintext_scratch(FILES) as path:
        bundle = sign_model(path, private)
    changed = {**FILES, "model.onnx": ARTIFACT[:-1] + b"\x00"}
    with plaintext_scratch(changed) as path, pytest.raises(SignatureInvalid, match=r"model\.onnx"):
        verify_model(path, bundle, public)
    card = {**FILES, "card.json": b"{}"}
    with plaintext_scratch(card) as path, pytest.raises(SignatureInvalid, match=r"card\.json"):
        verify_model(path, bundle, public)
    with plaintext_scratch(FILES) as path, pytest.raises(SignatureInvalid):
        verify_model(path, bundle.replace(b'"', b"'", 1), public)
    generate_model_signing_key(tmp_path / "o.pem", tmp_path / "o.pub")
    with plaintext_scratch(FILES) as path, pytest.raises(SignatureInvalid):
        verify_model(path, bundle, tmp_path / "o.pub")


def test_scratch_is_private_and_erased() -> None:
    with plaintext_scratch({"model.onnx": b"secret weights"}) as folder:
        assert (folder / "model.onnx").stat().st_mode & 0o077 == 0
        assert folder.stat().st_mode & 0o077 == 0
    assert not folder.exists()
    assert not folder.parent.exists()


def test_loose_private_key_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    generate_model_signing_key(tmp_path / "l.pem", tmp_path / "l.pub")
    (tmp_path / "l.pem").chmod(0o644)
    with plaintext_scratch(FILES) as path, pytest.raises(InsecureKeyFile):
        sign_model(path, tmp_path / "l.pem")


def test_standard_model_signing_cli_accepts_our_bundle(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    model = tmp_path / "model"
    model.mkdir()
    for name, data in FILES.items():
        (model / name).write_bytes(data)
    with plaintext_scratch(FILES) as path:
        bundle = sign_model(path, private)
    (tmp_path / "model.sig").write_bytes(bundle)
    command = [
        sys.executable,
        "-m",
        "model_signing",
        "verify",
        "key",
        "--signature",
        str(tmp_path / "model.sig"),
        "--public_key",
        str(public),
        str(model),
    ]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    (model / "card.json").write_bytes(b"{}")
    bad = subprocess.run(command, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
