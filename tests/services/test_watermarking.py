"""Watermark keys and marks at rest, on both stores, and attribution with the default probe."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.crypto import SigningKey
from modelpact.errors import InvalidInput, NotFound, Tampered
from modelpact.marks import Watermark
from modelpact.runtime import export_sklearn
from modelpact.services import ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.attribution import attribute
from modelpact.services.watermarking import WatermarkDesk

X, Y = load_breast_cancer(return_X_y=True)


@pytest.fixture
def enrolled(workspace: Workspace) -> Workspace:
    for partner in ("acme", "globex"):
        PartnerDirectory(workspace).enrol(partner, SigningKey.generate().verify_key.encode())
    return workspace


def test_keys_are_made_once_sealed_and_bound_to_their_partner(enrolled: Workspace) -> None:
    first = WatermarkDesk(enrolled).keys("acme")
    again = WatermarkDesk(enrolled).keys("acme")  # a new desk reads the same keys back
    assert first.prf.secret() == again.prf.secret()
    assert first.prf.secret() != WatermarkDesk(enrolled).keys("globex").prf.secret()
    with enrolled.store.unit_of_work() as uow:
        sealed = uow.watermarks.key("acme")
    assert sealed is not None and first.prf.secret().hex() not in sealed
    with pytest.raises(Tampered):  # acme's sealed keys copied onto globex do not open there
        WatermarkDesk(enrolled)._open(sealed, b"watermark-keys/globex")
    assert WatermarkDesk(enrolled).partners() == ["acme", "globex"]


def test_marks_round_trip_sealed(enrolled: Workspace) -> None:
    desk = WatermarkDesk(enrolled)
    desk.record("acme", "c", "m", "1", [[1.5, 2.0]], [1])
    desk.record("acme", "c", "other", "1", [[3.0, 4.0], [5.0, 6.0]], ["b", "a"])
    (kept,) = desk.marks("acme", "m")
    assert kept.rows == [[1.5, 2.0]] and kept.labels == [1]
    assert len(desk.marks("acme")) == 2 and desk.marks("globex") == []
    with enrolled.store.unit_of_work() as uow:
        assert "1.5" not in uow.watermarks.marks("acme")[0].sealed
    with pytest.raises(InvalidInput):
        desk.record("acme", "c", "m", "1", [[1.0]], [])
    desk.record("globex", "c", "m", "1", [[7.0, 8.0]], [0])
    with enrolled.store.unit_of_work() as uow:  # destroyed: keys and marks, one partner's
        assert uow.watermarks.destroy("acme") == 3
        assert uow.watermarks.destroy("acme") == 0
    assert desk.marks("acme") == [] and WatermarkDesk(enrolled).partners() == ["globex"]
    assert len(desk.marks("globex")) == 1


def test_a_copy_is_named_with_the_default_probe_and_the_model_is_not(
    enrolled: Workspace,
) -> None:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X, Y)
    registry = ModelRegistry(enrolled)
    registry.add("screen", export_sklearn(model), version="1", source="m.onnx", reference=X)
    desk = WatermarkDesk(enrolled)
    with pytest.raises(NotFound):
        attribute(enrolled, export_sklearn(model), model="screen")  # nothing marked yet
    rng = np.random.default_rng(0)
    rows = X[rng.integers(0, len(X), 3000)] + rng.normal(0, 0.3, (3000, 30)) * X.std(axis=0)
    given = {}
    for partner in ("acme", "globex"):
        mark = Watermark(desk.keys(partner).prf, "screen@1", classes=2)
        scores, marked = mark.apply(rows, model.predict_proba(rows))
        labels = scores.argmax(axis=1)
        desk.record(partner, "c", "screen", "1", rows[marked].tolist(), labels[marked].tolist())
        given[partner] = labels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        copy = make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=800, random_state=0),
        ).fit(rows, given["acme"])
    found = attribute(enrolled, export_sklearn(copy), model="screen")
    assert [e.partner for e in found.named] == ["acme"], found.explain()
    assert found.probe_rows == 2000
    assert attribute(enrolled, export_sklearn(model), model="screen").named == []
    with pytest.raises(InvalidInput):
        attribute(enrolled, export_sklearn(model), model="screen", threshold=2.0)
    assert json.loads(json.dumps([e.explain() for e in found.evidence]))
