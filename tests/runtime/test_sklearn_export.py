"""export_sklearn: fitted scikit-learn estimators become registrable ONNX bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelpact.errors import InvalidInput
from modelpact.runtime import INPUT_NAME, TensorInfo, export_sklearn, inspect_model

Dataset = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


def test_classifier_exports_plain_probabilities(logistic_onnx: bytes) -> None:
    summary = inspect_model(logistic_onnx, source="lr.onnx")
    assert summary.inputs == (TensorInfo(INPUT_NAME, "float", (None, 30)),)
    assert [o.elem_type for o in summary.outputs] == ["int64", "float"]
    assert "ZipMap" not in summary.op_types


def test_pipeline_exports(breast_cancer: Dataset) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, labels = breast_cancer
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(features, labels)
    summary = inspect_model(export_sklearn(pipeline), source="pipeline.onnx")
    assert summary.op_types == ("LinearClassifier", "Scaler")
    assert "ZipMap" not in summary.op_types


def test_regressor_exports_without_classifier_options(breast_cancer: Dataset) -> None:
    from sklearn.linear_model import Ridge

    features, labels = breast_cancer
    summary = inspect_model(export_sklearn(Ridge().fit(features, labels)), source="ridge.onnx")
    assert len(summary.outputs) == 1
    assert summary.outputs[0].elem_type == "float"


def test_tree_ensemble_exports(breast_cancer: Dataset) -> None:
    from sklearn.ensemble import RandomForestClassifier

    features, labels = breast_cancer
    forest = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0)
    summary = inspect_model(export_sklearn(forest.fit(features, labels)), source="rf.onnx")
    assert any(op.startswith("TreeEnsemble") for op in summary.op_types)


def test_target_opset_is_honoured(logistic_regression: Any) -> None:
    summary = inspect_model(export_sklearn(logistic_regression, target_opset=15), source="m.onnx")
    assert summary.opsets["ai.onnx"] <= 15


def test_explicit_feature_count_must_match_the_fit(logistic_regression: Any) -> None:
    assert export_sklearn(logistic_regression, n_features=30)
    with pytest.raises(InvalidInput, match="fitted on 30"):
        export_sklearn(logistic_regression, n_features=29)


@pytest.mark.parametrize("bad", [0, -3, True, 2.5])
def test_nonsense_feature_count_is_invalid(logistic_regression: Any, bad: Any) -> None:
    with pytest.raises(InvalidInput, match="n_features"):
        export_sklearn(logistic_regression, n_features=bad)


def test_nonsense_target_opset_is_invalid(logistic_regression: Any) -> None:
    with pytest.raises(InvalidInput, match="target_opset"):
        export_sklearn(logistic_regression, target_opset=0)


def test_unfitted_estimator_is_invalid() -> None:
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(InvalidInput, match="not fitted") as caught:
        export_sklearn(LogisticRegression())
    assert "fit" in caught.value.hint


def test_something_that_is_not_an_estimator_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="not a scikit-learn estimator"):
        export_sklearn(object())


def test_unsupported_estimator_is_invalid_with_one_line() -> None:
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Homemade(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
        def fit(self, features: Any, labels: Any) -> Homemade:
            self.n_features_in_ = features.shape[1]
            self.classes_ = np.unique(labels)
            return self

    model = Homemade().fit(np.zeros((4, 2)), np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidInput, match="skl2onnx cannot convert the Homemade") as caught:
        export_sklearn(model)
    assert "\n" not in caught.value.summary
    assert "supported" in caught.value.hint
