"""The affine part of a linear ONNX model reproduces the model; anything else is refused."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.errors import InvalidInput
from modelpact.runtime import Predictor, export_sklearn
from modelpact.runtime.linear import Link, linear_form


@pytest.mark.parametrize(
    ("load", "model", "link"),
    [
        (load_breast_cancer, make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
         Link.SIGMOID),
        (load_breast_cancer, LogisticRegression(max_iter=5000), Link.SIGMOID),
        (load_digits, make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
         Link.SOFTMAX),
        (load_breast_cancer, make_pipeline(StandardScaler(), LinearRegression()), Link.IDENTITY),
    ],
)  # fmt: skip
def test_the_linear_form_gives_the_models_own_outputs(load: Any, model: Any, link: Link) -> None:
    x, y = load(return_X_y=True)
    data = export_sklearn(model.fit(x, y))
    form = linear_form(data)
    assert form.link is link and form.width == x.shape[1]
    raw = Predictor.from_bytes(data, source="m.onnx").predict(x.astype(np.float32))
    expected = raw.get("probabilities", raw.get("variable"))
    found = form.outputs(form.scores(x))
    assert np.abs(found - np.asarray(expected).reshape(found.shape)).max() < 1e-3
    if link is not Link.IDENTITY:
        assert form.labels == tuple(int(c) for c in np.unique(y))


def test_other_models_are_refused_with_what_they_hold() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=50).fit(x, y)
    with pytest.raises(InvalidInput, match="linear or logistic models only"):
        linear_form(export_sklearn(mlp))
