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
from modelpact.errors import ContextNeeded, InvalidInput
from modelpact.runtime import export_sklearn
from modelpact.runtime.linear import Link
from modelpact.services import ModelRegistry, Workspace
from modelpact.services.encrypted import (
    ACCEPTED,
    ContextShelf,
    EncryptedScorer,
    Packing,
    context_digest,
)
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
    digest, _ = scorer.context(partner.public())
    found = scorer.score(
        "screen", "1.0.0", context=digest, packing=Packing.BATCH,
        ciphertexts=partner.encrypt_columns(rows), rows=300, max_rows=4096,
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
    digest, _ = scorer.context(partner.public())
    found = scorer.score(
        "digits", "1.0.0", context=digest, packing=Packing.ROWS,
        ciphertexts=partner.encrypt_rows(rows), rows=3, max_rows=64,
    )  # fmt: skip
    assert found.rows == 3 and found.link is Link.SOFTMAX and len(found.scores) == 3
    assert found.columns == 10
    scores = np.array([partner.decrypt_row(c, 10, 64) for c in found.scores])
    form = scorer._server.linear("digits", "1.0.0")
    reference = scorer._server.predictor("digits", "1.0.0").predict(rows.astype(np.float32))
    assert np.abs(form.outputs(scores) - reference["probabilities"]).max() < 1e-3


def test_what_cannot_be_scored_is_refused(scorer: EncryptedScorer) -> None:
    partner = SecretContext()
    columns = partner.encrypt_columns(X[:10])
    digest, _ = scorer.context(partner.public())

    def score(model: str = "screen", rows: int = 10, max_rows: int = 64, **kw: object) -> None:
        options = {"context": digest, "ciphertexts": columns} | kw
        scorer.score(model, "1.0.0", packing=Packing.BATCH, rows=rows, max_rows=max_rows,
                     **options)  # type: ignore[arg-type]  # fmt: skip

    with pytest.raises(InvalidInput, match="linear or logistic models only"):
        score("mlp")
    with pytest.raises(InvalidInput, match="1 to 5 rows per request, not 10"):
        score(max_rows=5)
    with pytest.raises(InvalidInput, match="hold 10 rows, not the 12 declared"):
        score(rows=12)
    with pytest.raises(InvalidInput, match="no ciphertexts"):
        score(ciphertexts=[])
    with pytest.raises(InvalidInput, match="secret key"):
        scorer.context(partner._context.serialize(save_secret_key=True))
    with pytest.raises(ContextNeeded, match="no encryption context sha256:"):
        score(context="sha256:" + "0" * 64)
    with pytest.raises(InvalidInput, match="hold 3 rows, not the 4 declared"):
        scorer.score("screen", "1.0.0", context=digest, packing=Packing.ROWS,
                     ciphertexts=partner.encrypt_rows(X[:3]), rows=4, max_rows=64)  # fmt: skip


def test_contexts_are_kept_by_digest_and_the_oldest_dropped(workspace: Workspace) -> None:
    scorer = EncryptedScorer(ModelServer(workspace), contexts=1)
    # Contexts hold only parameters: those of the two accepted sets differ.
    first, second = (SecretContext(p).public() for p in ACCEPTED)
    digests = [scorer.context(c)[0] for c in (first, second)]
    assert digests[0] == context_digest(first) and len(set(digests)) == 2
    assert scorer.context(second)[1] is scorer.kept(digests[1])  # checked once, then kept
    with pytest.raises(ContextNeeded):
        scorer.kept(digests[0])


def test_the_shelf_keeps_a_few_contexts_per_session_within_its_bytes() -> None:
    shelf = ContextShelf(max_bytes=100, per_session=2)
    shelf.put("s1", "a", b"x" * 10)
    shelf.put("s1", "b", b"x" * 10)
    shelf.put("s1", "c", b"x" * 10)  # a third for s1: its oldest goes
    assert shelf.get("s1", "b") and shelf.get("s1", "c")
    with pytest.raises(ContextNeeded):
        shelf.get("s1", "a")
    shelf.put("s2", "d", b"x" * 90)  # over 100 bytes: the least recently used go
    with pytest.raises(ContextNeeded):
        shelf.get("s1", "b")
    assert shelf.get("s1", "c") == b"x" * 10 and shelf.get("s2", "d")
    shelf.drop("s2")
    with pytest.raises(ContextNeeded):
        shelf.get("s2", "d")
