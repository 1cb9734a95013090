"""Model registry use cases: register, list, show, verify and roll back model versions.

A version is immutable.  Registering one checks the ONNX graph, signs the
plaintext in the OpenSSF model-signing format, seals it under a fresh data key
(AES-256-GCM, associated data naming model and version) and wraps that key with
the workspace's key-encryption key.  Rollback only moves the served pointer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelpact.charter import SLUG_PATTERN
from modelpact.crypto import (
    ARTIFACT_NAME,
    CARD_NAME,
    DataKey,
    constant_time_equal,
    plaintext_scratch,
    sha256_hex,
    sign_model,
    verify_model,
)
from modelpact.errors import (
    AlreadyExists,
    InvalidInput,
    ModelpactError,
    NotFound,
    SignatureInvalid,
    Tampered,
)
from modelpact.monitor import TrainingSummary, calibrate_prada, margins
from modelpact.runtime import (
    DEFAULT_LIMITS,
    ModelCard,
    ModelSummary,
    Predictor,
    card_to_json,
    export_sklearn,
)
from modelpact.runtime.shaping import SCORES_OUTPUT
from modelpact.runtime.tables import read_rows_csv
from modelpact.services.events import record_event
from modelpact.services.kek import RewrapTally, Tick
from modelpact.services.workspace import Workspace
from modelpact.store import ModelRecord, ModelVersionRecord

__all__ = ["ModelRegistry", "RegisteredVersion", "VerifiedVersion", "rewrap_model_keys"]

_NAME = re.compile(SLUG_PATTERN)
#: The card of a version registered without one; signed like any other.
NO_CARD = "{}"
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,62}$")


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    model: str
    version: str
    digest: str
    size: int
    summary: ModelSummary


@dataclass(frozen=True, slots=True)
class VerifiedVersion:
    """Every check ``model verify`` made, all passed."""

    model: str
    version: str
    digest: str
    checks: tuple[str, ...]


def _associated_data(model: str, version: str) -> bytes:
    return f"modelpact/model/{model}/{version}".encode()


def rewrap_model_keys(ws: Workspace, tick: Tick) -> RewrapTally:
    """Wrap every model version's data key again under the newest KEK (a KEK rotation).

    Each row is one compare-and-set transaction that also moves the state counter, so a
    gateway drops the record it kept with the old wrap.  The artifact is not touched.
    """
    tally = RewrapTally()
    with ws.store.unit_of_work(read_only=True) as uow:
        rows = uow.keys.model_keys()
    for model, version, wrapped in rows:
        new = ws.kek().rewrap(wrapped, _associated_data(model, version))
        if new is None:
            tally.already += 1
        else:
            with ws.store.unit_of_work() as uow:
                written = uow.keys.replace_model_key(model, version, wrapped, new)
                if written:
                    uow.state.bump()
            tally.count(written)
        tick()
    return tally


def _artifact_key(model: str, version: str) -> str:
    return f"models/{model}/{version}/artifact.enc"


def _signed_files(onnx: bytes, card: str) -> dict[str, bytes]:
    """What the model-signing bundle covers: the model and its card."""
    return {ARTIFACT_NAME: onnx, CARD_NAME: card.encode("utf-8")}


def calibrated(summary: TrainingSummary, predictor: Predictor, rows: Any) -> TrainingSummary:
    """``summary`` calibrated on ``rows`` as this model answers them: PRADA's threshold, and
    the margin below which a query counts as on the decision boundary."""
    single = predictor.summary.inputs[0].elem_type == "float"
    features = np.asarray(rows, dtype=np.float32 if single else np.float64)
    raw = predictor.predict(features)
    labels = raw["label"] if "label" in raw else np.zeros(len(features), dtype=np.int64)
    scores = raw.get(SCORES_OUTPUT)
    cut = None if scores is None else float(np.quantile(margins(scores), 0.1))
    return dataclasses.replace(
        summary,
        prada_delta=calibrate_prada(summary, features, np.asarray(labels).reshape(-1)),
        margin_cut=cut,
    )


def _check_names(model: str, version: str) -> None:
    if not _NAME.match(model):
        raise InvalidInput(
            f"model name {model!r} is not a lower-case slug", hint="use letters, digits and '-'"
        )
    if not _VERSION.match(version):
        raise InvalidInput(
            f"version {version!r} is not valid", hint="use e.g. 1.0.0 (letters, digits, . + -)"
        )


class ModelRegistry:
    """The owner's models, over one workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def add(
        self,
        model: str,
        data: bytes,
        *,
        version: str,
        source: str,
        card: ModelCard | None = None,
        reference: Any = None,
        actor: str = "owner",
    ) -> RegisteredVersion:
        """Check, sign, seal and record one new version, which becomes the served one.

        ``reference``: training rows (or a representative sample) — what the extraction
        monitor measures partners' queries against; only their summary is kept
        (mean, spread, correlation, ranges: :class:`~modelpact.monitor.TrainingSummary`).
        """
        _check_names(model, version)
        # Loading it as the runtime will proves it is servable, not merely well-formed.
        predictor = Predictor.from_bytes(data, source=source)
        summary = predictor.summary
        training = None if reference is None else TrainingSummary.fit(reference)
        if training is not None:
            if predictor.n_features not in (None, training.width):
                raise InvalidInput(
                    f"the reference rows have {training.width} features but the model takes "
                    f"{predictor.n_features}"
                )
            training = calibrated(training, predictor, reference)
        ws = self._ws
        with ws.store.unit_of_work() as uow:
            try:
                uow.models.get_version(model, version)
            except NotFound:
                pass
            else:
                raise AlreadyExists(
                    f"{model} {version} is already registered",
                    hint="versions are immutable; register a new version number",
                )
        key = _artifact_key(model, version)
        if ws.artifacts.exists(key):
            raise AlreadyExists(
                f"an artifact file for {model} {version} exists without a registry record",
                hint=f"an earlier registration was interrupted; remove artifacts/{key} and retry",
            )
        card_json = card_to_json(card) if card else NO_CARD
        with plaintext_scratch(_signed_files(data, card_json)) as folder:
            bundle = sign_model(folder, ws.model_signing_key_path)
        ad = _associated_data(model, version)
        data_key = DataKey.generate()
        sealed = data_key.seal(data, ad)
        digest = "sha256:" + sha256_hex(data)
        ws.artifacts.put(key, sealed)
        try:
            # The wrap and the commit of its row inside the KEK lock (shared): a KEK
            # rotation waits for the commit before it looks for rows left under the old KEK.
            with ws.kek().wrapping() as wrap:
                wrapped = wrap(data_key, ad)
                with ws.store.unit_of_work() as uow:
                    uow.models.add_version(
                        ModelVersionRecord(
                            model=model,
                            version=version,
                            digest=digest,
                            size=len(data),
                            artifact_key=key,
                            wrapped_key=wrapped,
                            signature_bundle=bundle,
                            card=card_json,
                            created_at=ws.clock(),
                        ),
                        serve=True,
                    )
                    if training is not None:
                        uow.monitor.put_summary(
                            model, version, json.dumps(training.to_state(), separators=(",", ":"))
                        )
                    record_event(
                        ws,
                        uow,
                        actor=actor,
                        kind="model.add",
                        subject=f"{model}@{version}",
                        digest=digest,
                        size=len(data),
                        reference_rows=None if training is None else training.count,
                    )
        except BaseException:
            with contextlib.suppress(ModelpactError, OSError):  # keep the first error
                ws.artifacts.delete(key)
            raise
        return RegisteredVersion(model, version, digest, len(data), summary)

    def add_file(
        self,
        model: str,
        path: Path,
        *,
        version: str,
        card: ModelCard | None = None,
        reference: Path | None = None,
    ) -> RegisteredVersion:
        """:meth:`add` from an ONNX file; ``reference``: a CSV of training rows."""
        rows = None if reference is None else read_rows_csv(reference)
        limit = DEFAULT_LIMITS.max_bytes
        try:
            with path.open("rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise InvalidInput(f"{path} is not a regular file")
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
        if len(data) > limit:
            raise InvalidInput(f"{path} is larger than the {limit}-byte limit for a model")
        return self.add(model, data, version=version, source=path.name, card=card, reference=rows)

    def add_sklearn(
        self,
        model: str,
        estimator: Any,
        *,
        version: str,
        card: ModelCard | None = None,
        reference: Any = None,
    ) -> RegisteredVersion:
        """Convert a fitted scikit-learn estimator to ONNX (zipmap off) and register it."""
        data = export_sklearn(estimator)
        return self.add(
            model,
            data,
            version=version,
            source=f"{type(estimator).__name__}.onnx",
            card=card,
            reference=reference,
        )

    def set_training_summary(
        self, model: str, version: str, summary: TrainingSummary, *, actor: str = "owner"
    ) -> None:
        """Keep ``summary`` with a registered version (replacing any), on the record."""
        with self._ws.store.unit_of_work() as uow:
            uow.monitor.put_summary(
                model, version, json.dumps(summary.to_state(), separators=(",", ":"))
            )
            record_event(
                self._ws,
                uow,
                actor=actor,
                kind="model.reference",
                subject=f"{model}@{version}",
                reference_rows=summary.count,
            )

    def training_summary(self, model: str, version: str) -> TrainingSummary | None:
        """The training summary registered with ``model`` ``version``, if any."""
        with self._ws.store.unit_of_work(read_only=True) as uow:
            uow.models.get_version(model, version)  # NotFound for an unknown version
            text = uow.monitor.summary(model, version)
        return None if text is None else TrainingSummary.from_state(json.loads(text))

    def all(self) -> list[ModelRecord]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            return list(uow.models.list_models())

    def show(self, model: str) -> tuple[ModelRecord, list[ModelVersionRecord]]:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            return uow.models.get_model(model), list(uow.models.list_versions(model))

    def get_version(self, model: str, version: str) -> ModelVersionRecord:
        with self._ws.store.unit_of_work(read_only=True) as uow:
            return uow.models.get_version(model, version)

    def rollback(self, model: str, *, to_version: str, actor: str = "owner") -> str | None:
        """Serve ``to_version`` again; return the version that was served before."""
        ws = self._ws
        with ws.store.unit_of_work() as uow:
            previous = uow.models.set_served(model, to_version, ws.clock())
            record_event(
                ws,
                uow,
                actor=actor,
                kind="model.rollback",
                subject=f"{model}@{to_version}",
                previous=previous,
            )
        return previous

    def served(self, model: str) -> str:
        """The version ``model`` serves now."""
        record, _ = self.show(model)
        if record.served_version is None:
            raise NotFound(f"model {model} serves no version")
        return record.served_version

    def verify(self, model: str, version: str | None = None) -> VerifiedVersion:
        """Check wrapped key, ciphertext, digest and signature; name what changed if any fails.

        ``version`` defaults to the served one.
        """
        version = version or self.served(model)
        record = self.get_version(model, version)
        plaintext = self._open(record)
        with plaintext_scratch(_signed_files(plaintext, record.card)) as folder:
            try:
                verify_model(folder, record.signature_bundle, self._ws.model_signing_public_path)
            except SignatureInvalid as exc:
                raise SignatureInvalid(
                    f"the signature of {model} {version} does not verify ({exc.summary})",
                    hint="the bundle, the card or the signing key changed; "
                    "re-register from a trusted copy",
                ) from None
        return VerifiedVersion(
            model,
            version,
            record.digest,
            (
                "data key unwraps under the workspace key-encryption key",
                "artifact ciphertext authenticates (AES-256-GCM, bound to model and version)",
                f"plaintext matches recorded digest {record.digest}",
                "OpenSSF model-signing signature over model and card verifies (owner's key)",
            ),
        )

    def decrypt(self, model: str, version: str) -> bytes:
        """The plaintext ONNX bytes, checked against the recorded digest.  For the runtime only."""
        return self._open(self.get_version(model, version))

    def _open(self, record: ModelVersionRecord) -> bytes:
        ws = self._ws
        name = f"{record.model} {record.version}"
        ad = _associated_data(record.model, record.version)
        try:
            data_key = ws.kek().unwrap(record.wrapped_key, ad)
        except Tampered:
            raise Tampered(
                f"the wrapped data key of {name} was changed or belongs to another record",
                hint="restore the database from a backup",
            ) from None
        try:
            sealed = ws.artifacts.get(record.artifact_key)
        except NotFound:
            raise Tampered(
                f"the artifact file of {name} is missing ({record.artifact_key})"
            ) from None
        try:
            plaintext = data_key.open(sealed, ad)
        except Tampered:
            raise Tampered(
                f"the artifact file of {name} was modified ({record.artifact_key})",
                hint="restore it from a backup or re-register the model",
            ) from None
        if not constant_time_equal("sha256:" + sha256_hex(plaintext), record.digest):
            raise Tampered(f"{name} does not match its recorded digest {record.digest}")
        return plaintext
