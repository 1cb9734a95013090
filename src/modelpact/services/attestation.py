"""Attestation: a document, signed by the workspace key, of what serves a partner's session.

For a partner's fresh nonce the gateway states: the measurement of its serving
code (:mod:`modelpact.runtime.measurement`), the session's charter version and
its digest, each granted model's served version with the artifact digest
verified when it was loaded and the digest of its signed manifest, and the
isolation settings.  The partner's SDK checks the signature, the nonce, the time
and the charter's pins before it sends any data
(:func:`modelpact.client.attestation.check_attestation`).

Providers are an interface (:class:`AttestationProvider`).  The built-in one is
``software``: the gateway measures itself and the workspace key signs, which
catches a changed deployment but cannot prove anything against the host's own
operator.  A hardware provider (SEV-SNP, TDX, Nitro) would add a quote binding
the document's digest to a measurement taken below the operating system; none
is built in, and none is pretended (``docs/attestation.md``).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

from modelpact.crypto import sha256_hex
from modelpact.errors import InvalidInput
from modelpact.runtime.measurement import Measurement, measure
from modelpact.services.charters import CharterDesk
from modelpact.services.serving import ModelServer
from modelpact.services.sessions import ActiveSession, SessionDesk
from modelpact.services.workspace import Workspace
from modelpact.wire import (
    NONCE_PATTERN,
    AttestationDocument,
    AttestedCharter,
    AttestedModel,
    ServingMeasurement,
    SignedAttestation,
    attestation_message,
    instant,
)

__all__ = ["AttestationProvider", "Attestor", "SoftwareProvider"]

_NONCE = re.compile(NONCE_PATTERN)

#: What the gateway runs models in, as documents report it (model workers come later).
IN_PROCESS: Mapping[str, str] = {
    "model_runtime": "in-process",
    "decrypted_weights": "in the gateway process's memory, never on disk",
}


class AttestationProvider(Protocol):
    """Who measures the serving code, and how that is named in documents."""

    @property
    def kind(self) -> str: ...

    def measurement(self) -> Measurement: ...


class SoftwareProvider:
    """The gateway measuring its own installed files: once per process, on first use."""

    kind = "software"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._measured: Measurement | None = None

    def measurement(self) -> Measurement:
        with self._lock:
            if self._measured is None:
                self._measured = measure()
            return self._measured


class Attestor:
    """Signs attestation documents for sessions.  Thread-safe."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        sessions: SessionDesk,
        models: ModelServer,
        provider: AttestationProvider | None = None,
        isolation: Mapping[str, str] = IN_PROCESS,
        digests: Callable[[str, str], tuple[str, str]] | None = None,
    ) -> None:
        """``digests``: where a model version's verified digests come from (its model
        worker); by default ``models`` loads it here."""
        self._ws = workspace
        self._sessions = sessions
        self._models = models
        self._digests = digests or models.verified_digests
        self._provider = provider or SoftwareProvider()
        self._isolation = dict(isolation)

    def attest(self, session: ActiveSession, nonce: str) -> SignedAttestation:
        """The signed document for ``session`` and the partner's ``nonce``.

        Loads (and so verifies) each granted model's served version first; raises
        :class:`~modelpact.errors.Tampered` if one fails its checks, and
        :class:`InvalidInput` for a malformed nonce.
        """
        if not isinstance(nonce, str) or not _NONCE.fullmatch(nonce):
            raise InvalidInput(
                "the nonce must be 22 to 128 base64url characters",
                hint="send a fresh random nonce of at least 16 bytes, base64url-encoded",
            )
        if self._provider.kind != "software":
            raise InvalidInput(f"attestation provider {self._provider.kind!r} is not built in")
        charter = self._sessions.charter(session)
        record, _ = CharterDesk(self._ws).get(session.charter, session.charter_version)
        models = []
        for name in sorted({grant.model for grant in charter.grants}):
            version = self._models.resolve(name, None)
            if not any(g.model == name and g.covers_version(version) for g in charter.grants):
                continue  # the served version is outside the grant: the session cannot use it
            artifact, manifest = self._digests(name, version)
            models.append(
                AttestedModel(model=name, version=version, artifact=artifact, manifest=manifest)
            )
        measured = self._provider.measurement()
        document = AttestationDocument(
            nonce=nonce,
            issued_at=instant(self._ws.clock()),
            measurement=ServingMeasurement(
                code=measured.code, dependencies=measured.dependencies, python=measured.python
            ),
            charter=AttestedCharter(
                charter=charter.charter, version=charter.version, digest=record.digest
            ),
            models=tuple(models),
            isolation=self._isolation,
        )
        signature = self._ws.signing_key().sign(attestation_message(document))
        return SignedAttestation(document=document, signature=_b64(signature))

    def digest(self, attestation: SignedAttestation) -> str:
        """``sha256:<hex>`` of the signed bytes, the name the audit log keeps."""
        return "sha256:" + sha256_hex(attestation_message(attestation.document))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
