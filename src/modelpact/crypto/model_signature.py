"""Model signatures in the OpenSSF model-signing format (key-based, EC P-256).

A model version is signed as a folder holding ``model.onnx`` and ``card.json``,
so the card is covered too.  ``model-signing`` signs paths on disk and
artifacts are encrypted at rest, so the plaintext is written to a private
scratch folder (memory-backed where the host has ``/dev/shm``), signed or
verified there, and removed.  The bundle is a standard Sigstore bundle that
``model_signing verify key`` checks with the owner's PEM public key.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from modelpact.crypto.files import check_private_file, read_private_file, write_private_file
from modelpact.errors import InvalidInput, SignatureInvalid, StorageUnavailable

__all__ = [
    "ARTIFACT_NAME",
    "CARD_NAME",
    "generate_model_signing_key",
    "model_signing_public_pem",
    "plaintext_scratch",
    "sign_model",
    "verify_model",
]

ARTIFACT_NAME = "model.onnx"
CARD_NAME = "card.json"


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


def model_signing_public_pem(private_path: Path) -> bytes:
    """The SPKI PEM public key of the private key at ``private_path``."""
    data = read_private_file(private_path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{private_path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{private_path} is not an EC private key")
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
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
def _private_folder() -> Iterator[Path]:
    shm = "/dev/shm"  # noqa: S108 - mkdtemp below makes a private 0700 folder in it
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    directory = Path(tempfile.mkdtemp(prefix="modelpact-", dir=base))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def plaintext_scratch(files: Mapping[str, bytes]) -> Iterator[Path]:
    """Yield a 0700 folder holding ``files`` (name -> bytes, each 0600), then erase it."""
    with _private_folder() as directory:
        folder = directory / "model"
        folder.mkdir(mode=0o700)
        for name, data in files.items():
            if "/" in name or name in ("", ".", ".."):
                raise InvalidInput(f"{name!r} is not a plain file name")
            write_private_file(folder / name, data)
        yield folder


def sign_model(model_dir: Path, private_key_path: Path) -> bytes:
    """Sign the folder ``model_dir``; return the Sigstore bundle bytes."""
    from model_signing import signing

    check_private_file(private_key_path)
    with _private_folder() as out:
        try:
            signing.Config().use_elliptic_key_signer(private_key=private_key_path).sign(
                model_dir, out / "model.sig"
            )
            return (out / "model.sig").read_bytes()
        except OSError as exc:
            raise StorageUnavailable(f"cannot sign model: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise InvalidInput(f"cannot sign with {private_key_path}: {exc}") from None


def verify_model(model_dir: Path, bundle: bytes, public_key_path: Path) -> None:
    """Raise :class:`SignatureInvalid` unless ``bundle`` signs ``model_dir`` under the key."""
    from model_signing import verifying

    _load_public(public_key_path)
    with _private_folder() as out:
        sig = out / "model.sig"
        try:
            sig.write_bytes(bundle)
            verifying.Config().use_elliptic_key_verifier(public_key=public_key_path).verify(
                model_dir, sig
            )
        except OSError as exc:
            raise StorageUnavailable(f"cannot verify model: {exc.strerror or exc}") from None
        except InvalidSignature:
            raise SignatureInvalid(
                "model signature check failed: the signature does not verify under the key"
            ) from None
        except ValueError as exc:
            # model-signing reports a forged signature, a changed file and unparsable JSON
            # all as ValueError; its message says which.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SignatureInvalid(f"model signature check failed: {first}") from None
        except (KeyError, TypeError, AttributeError) as exc:  # a bundle missing its parts
            raise SignatureInvalid(
                f"model signature bundle is malformed ({type(exc).__name__})"
            ) from None
