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
from modelpact.errors import InsecureKeyFile, SignatureInvalid

ARTIFACT = b"\x08\x07" + bytes(range(256)) * 8


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("keys")
    generate_model_signing_key(root / "k.pem", root / "k.pub")
    return root / "k.pem", root / "k.pub"


def test_sign_then_verify(keys: tuple[Path, Path]) -> None:
    private, public = keys
    with plaintext_scratch(ARTIFACT) as path:
        bundle = sign_model(path, private)
        verify_model(path, bundle, public)


def test_changed_model_or_bundle_or_key_fails(keys: tuple[Path, Path], tmp_path: Path) -> None:
    private, public = keys
    with plaintext_scratch(ARTIFACT) as path:
        bundle = sign_model(path, private)
    with plaintext_scratch(ARTIFACT[:-1] + b"\x00") as path, pytest.raises(SignatureInvalid):
        verify_model(path, bundle, public)
    with plaintext_scratch(ARTIFACT) as path, pytest.raises(SignatureInvalid):
        verify_model(path, bundle.replace(b'"', b"'", 1), public)
    generate_model_signing_key(tmp_path / "o.pem", tmp_path / "o.pub")
    with plaintext_scratch(ARTIFACT) as path, pytest.raises(SignatureInvalid):
        verify_model(path, bundle, tmp_path / "o.pub")


def test_scratch_is_private_and_erased() -> None:
    with plaintext_scratch(b"secret weights") as path:
        assert path.stat().st_mode & 0o077 == 0
        assert path.parent.stat().st_mode & 0o077 == 0
    assert not path.exists()
    assert not path.parent.exists()


def test_loose_private_key_is_refused(keys: tuple[Path, Path], tmp_path: Path) -> None:
    generate_model_signing_key(tmp_path / "l.pem", tmp_path / "l.pub")
    (tmp_path / "l.pem").chmod(0o644)
    with plaintext_scratch(ARTIFACT) as path, pytest.raises(InsecureKeyFile):
        sign_model(path, tmp_path / "l.pem")


def test_standard_model_signing_cli_accepts_our_bundle(
    keys: tuple[Path, Path], tmp_path: Path
) -> None:
    private, public = keys
    model = tmp_path / "model.onnx"
    model.write_bytes(ARTIFACT)
    with plaintext_scratch(ARTIFACT) as path:
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
    model.write_bytes(ARTIFACT + b"!")
    bad = subprocess.run(command, capture_output=True, text=True, check=False)
    assert bad.returncode != 0
