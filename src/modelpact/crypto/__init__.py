"""The one door to low-level cryptography.

Everything else in modelpact calls these named recipes and never imports
``cryptography``, ``model_signing`` or ``tenseal`` itself (an import-linter contract
holds this):

- identities and signatures: :class:`SigningKey`, :class:`VerifyKey`,
  :func:`canonical_json` (RFC 8785), :func:`canonical_digest`;
- encryption at rest: :class:`KeyEncryptionKey` wraps per-artifact
  :class:`DataKey` s, both AES-256-GCM with associated data; :class:`KeyRing` holds
  the KEKs of a rotation; :data:`GCM_SEAL_LIMIT` bounds the seals one key may make;
- model signatures in the OpenSSF model-signing format: :func:`sign_model`,
  :func:`verify_model`, :func:`generate_model_signing_key`;
- digests and comparison: :func:`sha256_hex`, :func:`constant_time_equal`;
- keyed pseudo-random functions (watermarks): :class:`PrfKey`, HMAC-SHA256;
- private files: :func:`write_private_file`, :func:`check_private_file`;
- TLS for the partner gateway: :func:`create_ca`, :func:`issue_server_cert`,
  :func:`issue_client_cert`, :func:`server_cert_renewal_reason` and readers
  (:func:`cert_fingerprint`, :func:`cert_subject_cn`, :func:`cert_not_after`,
  :func:`cert_hosts`);
- homomorphic encryption (CKKS, TenSEAL) for encrypted scoring:
  :mod:`modelpact.crypto.homomorphic`, imported on its own so that TenSEAL loads only
  where it is used.
"""

from modelpact.crypto.digests import constant_time_equal, sha256_hex
from modelpact.crypto.files import check_private_file, read_private_file, write_private_file
from modelpact.crypto.keyed import PrfKey
from modelpact.crypto.model_signature import (
    ARTIFACT_NAME,
    CARD_NAME,
    generate_model_signing_key,
    model_signing_public_pem,
    plaintext_scratch,
    sign_model,
    verify_model,
)
from modelpact.crypto.sealing import GCM_SEAL_LIMIT, DataKey, KeyEncryptionKey, KeyRing
from modelpact.crypto.signing import SigningKey, VerifyKey, canonical_digest, canonical_json
from modelpact.crypto.tls import (
    cert_fingerprint,
    cert_hosts,
    cert_not_after,
    cert_subject_cn,
    create_ca,
    issue_client_cert,
    issue_server_cert,
    server_cert_renewal_reason,
)

__all__ = [
    "ARTIFACT_NAME",
    "CARD_NAME",
    "GCM_SEAL_LIMIT",
    "DataKey",
    "KeyEncryptionKey",
    "KeyRing",
    "PrfKey",
    "SigningKey",
    "VerifyKey",
    "canonical_digest",
    "canonical_json",
    "cert_fingerprint",
    "cert_hosts",
    "cert_not_after",
    "cert_subject_cn",
    "check_private_file",
    "constant_time_equal",
    "create_ca",
    "generate_model_signing_key",
    "issue_client_cert",
    "issue_server_cert",
    "model_signing_public_pem",
    "plaintext_scratch",
    "read_private_file",
    "server_cert_renewal_reason",
    "sha256_hex",
    "sign_model",
    "verify_model",
    "write_private_file",
]
