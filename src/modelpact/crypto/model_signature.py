"""Model signatures in the OpenSSF model-signing format (key-based, EC P-256).

``model-signing`` signs a path on disk; artifacts are encrypted at rest, so the
plaintext is written to a private scratch directory (memory-backed where the
host has ``/dev/shm``), signed or verified there, and removed.  The resulting
bundle is a standard Sigstore bundle that the ``model_signing verify key`` tool
checks with the owner's PEM public key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelpact.crypto.files import check_private_file, write_private_file
from modelpact.errors import InvalidInput, SignatureInvalid, StorageUnavailable

__all__ = [
    "ARTIFACT_NAME",
    "generate_model_signing_key",
    "plaintext_scratch",
    "sign_model",
    "verify_model",
]

ARTIFACT_NAME = "model.onnx"


def generate_model_signing_key(private_path: Path, public_path: Path) -> None:
    """Create an EC P-256 key pair: private PKCS#8 PEM (0600), public SPKI PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    write_private_file(
        private_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _load_public(public_path: Path) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(public_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{public_path} is not a PEM public key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InvalidInput(f"{public_path} is not an EC public key")
    return key


@contextlib.contextmanager
def plaintext_scratch(data: bytes) -> Iterator[Path]:
    """Yield the path of ``model.onnx`` holding ``data`` in a 0700 directory, then erase it."""
    shm = "/dev/shm"  # noqa: S108 - mkdtemp below makes a private 0700 folder in it
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    directory = Path(tempfile.mkdtemp(prefix="modelpact-", dir=base))
    try:
        path = directory / ARTIFACT_NAME
        write_private_file(path, data)
        yield path
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def sign_model(model_path: Path, private_key_path: Path) -> bytes:
    """Sign the file at ``model_path``; return the Sigstore bundle bytes."""
    from model_signing import signing

    check_private_file(private_key_path)
    out = model_path.parent / "model.sig"
    try:
        signing.Config().use_elliptic_key_signer(private_key=private_key_path).sign(model_path, out)
        return out.read_bytes()
    except OSError as exc:
        raise StorageUnavailable(f"cannot sign model: {exc}") from None
    finally:
        out.unlink(missing_ok=True)


def verify_model(model_path: Path, bundle: bytes, public_key_path: Path) -> None:
    """Raise :class:`SignatureInvalid` unless ``bundle`` signs ``model_path`` under the key."""
    from model_signing import verifying

    _load_public(public_key_path)
    sig = Path(tempfile.mkdtemp(prefix="modelpact-sig-")) / "model.sig"
    try:
        sig.write_bytes(bundle)
        verifying.Config().use_elliptic_key_verifier(public_key=public_key_path).verify(
            model_path, sig
        )
    except ValueError as exc:
        # model-signing reports both a forged signature and a changed file as ValueError.
        raise SignatureInvalid(f"model signature check failed: {exc}") from None
    except Exception as exc:  # a corrupt bundle surfaces as JSON/protobuf errors
        raise SignatureInvalid(
            f"model signature bundle is unreadable ({type(exc).__name__})"
        ) from None
    finally:
        shutil.rmtree(sig.parent, ignore_errors=True)
