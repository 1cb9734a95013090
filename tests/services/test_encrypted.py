"""Scoring on ciphertexts through the model server: the partner's decrypted outputs are the
model's own, in both packings; what cannot be scored is refused with one line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.crypto.homomorphic import SecretContext
from modelpact.errors import InvalidInput
from modelpact.runtime import export_sklearn
from modelpact.runtime.linear import Link
from modelpact.services import ModelRegistry, Workspace
from modelpact.services.encrypted import EncryptedScorer, Packing
from modelpact.services.serving import ModelServer

X, Y = load_breast_cancer(return_X_y=True)
DIGITS, DIGIT_LABELS = load_digits(return_X_y=True)


@pytest.fixture
def scorer(workspace: Workspace) -> EncryptedScorer:
    registry = ModelRegistry(workspace)
    screen = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X, Y)
    registry.add("screen", export_sklearn(screen), version="1.0.0", source="s.onnx")
    digits = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    registry.add("digits", export_sklearn(digits.fit(DIGITS, DIGIT_LABELS)), version="1.0.0",
                 source="d.onnx")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=30).fit(X, Y)
    registry.add("mlp", export_sklearn(mlp), version="1.0.0", source="m.onnx")
    return EncryptedScorer(ModelServer(workspace))


def test_batch_packing_gives_the_models_own_probabilities(scorer: EncryptedScorer) -> None:
    partner = SecretContext()
    rows = X[:300]
    found = scorer.score(
        "screen", "1.0.0", context=partner.public(), packing=Packing.BATCH,
        ciphertexts=partner.encrypt_columns(rows), max_rows=4096,
    )  # fmt: skip
    assert found.rows == 300 and found.link is Link.SIGMOID and found.labels == (0, 1)
    form = scorer._server.linear("screen", "1.0.0")
    scores = np.array([partner.decrypt(c, found.rows) for c in found.scores]).T
    reference = scorer._server.predictor("screen", "1.0.0").predict(rows.astype(np.float32))
    assert np.abs(form.outputs(scores) - reference["probabilities"]).max() < 1e-3
    assert found.input_digest.startswith("sha256:") and found.context_digest.startswith("sha256:")
    assert found.input_digest != found.output_digest


def test_row_packing_gives_the_models_own_probabilities(scorer: EncryptedScorer) -> None:
    partner = SecretContext()
    rows = DIGITS[:3]
    found = scorer.score(
        "digits", "1.0.0", context=partner.public(row_width=64), packing=Packing.ROWS,
        ciphertexts=partner.encrypt_rows(rows), max_rows=64,
    )  # fmt: skip
    assert found.rows == 3 and found.link is Link.SOFTMAX and len(found.scores) == 30
    scores = np.array([partner.decrypt(c, 1)[0] for c in found.scores]).reshape(3, 10)
    form = scorer._server.linear("digits", "1.0.0")
    reference = scorer._server.predictor("digits", "1.0.0").predict(rows.astype(np.float32))
    assert np.abs(form.outputs(scores) - reference["probabilities"]).max() < 1e-3


def test_what_cannot_be_scored_is_refused(scorer: EncryptedScorer) -> None:
    partner = SecretContext()
    columns = partner.encrypt_columns(X[:10])
    with pytest.raises(InvalidInput, match="linear or logistic models only"):
        scorer.score("mlp", "1.0.0", context=partner.public(), packing=Packing.BATCH,
                     ciphertexts=columns, max_rows=64)  # fmt: skip
    with pytest.raises(InvalidInput, match="at most 5 rows"):
        scorer.score("screen", "1.0.0", context=partner.public(), packing=Packing.BATCH,
                     ciphertexts=columns, max_rows=5)  # fmt: skip
    with pytest.raises(InvalidInput, match="secret key"):
        scorer.score("screen", "1.0.0", context=partner._context.serialize(save_secret_key=True),
                     packing=Packing.BATCH, ciphertexts=columns, max_rows=64)  # fmt: skip
    with pytest.raises(InvalidInput, match="no ciphertexts"):
        scorer.score("screen", "1.0.0", context=partner.public(), packing=Packing.BATCH,
                     ciphertexts=[], max_rows=64)  # fmt: skip
