"""Registry use cases on both backends, including every kind of tampering `verify` must name."""

from __future__ import annotations

import base64
import json

import pytest
import sqlalchemy as sa

from modelpact.errors import AlreadyExists, ModelRejected, NotFound, SignatureInvalid, Tampered
from modelpact.runtime import Predictor, load_card
from modelpact.services import ModelRegistry, Workspace
from modelpact.store._schema import model_versions
from modelpact.store.sql import create_store_engine
from tests.services.conftest import admin_actions


def _update(workspace: Workspace, version: str, **values: object) -> None:
    url = workspace.database_url
    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(model_versions).where(model_versions.c.version == version).values(**values)
        )
    engine.dispose()


def test_sklearn_estimator_is_registered_and_served(workspace: Workspace) -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    features, labels = load_breast_cancer(return_X_y=True)
    estimator = LogisticRegression(max_iter=5000).fit(features, labels)
    registry = ModelRegistry(workspace)
    card = load_card("description: test model\nmetrics: {accuracy: 0.95}\n", source="card")
    done = registry.add_sklearn("cancer", estimator, version="1.0.0", card=card)
    assert done.summary.inputs[0].shape == (None, 30)
    assert registry.served("cancer") == "1.0.0"
    assert json.loads(registry.get_version("cancer", "1.0.0").card)["metrics"] == {"accuracy": 0.95}
    # The decrypted artifact predicts exactly what the estimator does.
    predictor = Predictor.from_bytes(registry.decrypt("cancer", "1.0.0"))
    outputs = predictor.predict(features[:20].astype("float32"))
    probabilities = next(v for v in outputs.values() if v.ndim == 2)
    assert probabilities == pytest.approx(estimator.predict_proba(features[:20]), abs=1e-4)


def test_artifact_at_rest_is_not_the_plaintext(workspace: Workspace, onnx_bytes: bytes) -> None:
    ModelRegistry(workspace).add("m", onnx_bytes, version="1", source="m.onnx")
    stored = next((workspace.root / "artifacts").rglob("artifact.enc")).read_bytes()
    assert onnx_bytes[:64] not in stored
    assert len(stored) == len(onnx_bytes) + 1 + 12 + 16


def test_versions_are_immutable_and_rollback_moves_the_pointer(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    registry = ModelRegistry(workspace)
    registry.add("m", onnx_bytes, version="1", source="m.onnx")
    registry.add("m", onnx_bytes, version="2", source="m.onnx")
    with pytest.raises(AlreadyExists):
        registry.add("m", onnx_bytes, version="2", source="m.onnx")
    assert registry.rollback("m", to_version="1") == "2"
    assert registry.served("m") == "1"
    with pytest.raises(NotFound):
        registry.rollback("m", to_version="3")
    assert admin_actions(workspace, "m@1") == ["model.add", "model.rollback"]


def test_refused_artifact_leaves_no_trace(workspace: Workspace) -> None:
    import pickle

    with pytest.raises(ModelRejected):
        ModelRegistry(workspace).add("m", pickle.dumps([1]), version="1", source="m.pkl")
    assert not (workspace.root / "artifacts").exists() or not any(
        (workspace.root / "artifacts").rglob("*.enc")
    )
    assert ModelRegistry(workspace).all() == []


def test_verify_names_a_swapped_wrapped_key(workspace: Workspace, onnx_bytes: bytes) -> None:
    registry = ModelRegistry(workspace)
    registry.add("m", onnx_bytes, version="1", source="m.onnx")
    registry.add("m", onnx_bytes, version="2", source="m.onnx")
    other = registry.get_version("m", "2").wrapped_key
    _update(workspace, "1", wrapped_key=other)
    with pytest.raises(Tampered, match="wrapped data key of m 1"):
        registry.verify("m", "1")


def test_verify_names_a_changed_signature_bundle(workspace: Workspace, onnx_bytes: bytes) -> None:
    registry = ModelRegistry(workspace)
    registry.add("m", onnx_bytes, version="1", source="m.onnx")
    bundle = json.loads(registry.get_version("m", "1").signature_bundle)
    # A valid-looking signature with one bit flipped: parses, then fails to verify.
    signature = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    signature[-1] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(signature).decode()
    _update(workspace, "1", signature_bundle=json.dumps(bundle).encode())
    with pytest.raises(SignatureInvalid, match="does not verify under the key"):
        registry.verify("m", "1")


def test_verify_names_a_changed_card(workspace: Workspace, onnx_bytes: bytes) -> None:
    registry = ModelRegistry(workspace)
    card = load_card("description: honest card\n", source="card")
    registry.add("m", onnx_bytes, version="1", source="m.onnx", card=card)
    _update(workspace, "1", card=json.dumps({"description": "rewritten card"}))
    with pytest.raises(SignatureInvalid, match=r"card\.json"):
        registry.verify("m", "1")


def test_verify_names_a_changed_digest(workspace: Workspace, onnx_bytes: bytes) -> None:
    registry = ModelRegistry(workspace)
    registry.add("m", onnx_bytes, version="1", source="m.onnx")
    _update(workspace, "1", digest="sha256:" + "0" * 64)
    with pytest.raises(Tampered, match="recorded digest"):
        registry.verify("m", "1")


def test_verify_passes_on_an_untouched_version(workspace: Workspace, onnx_bytes: bytes) -> None:
    registry = ModelRegistry(workspace)
    registry.add("m", onnx_bytes, version="1", source="m.onnx")
    result = registry.verify("m")
    assert result.version == "1"
    assert len(result.checks) == 4
