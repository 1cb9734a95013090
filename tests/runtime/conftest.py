"""Fixtures for the runtime tests: one real scikit-learn model, fitted once."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from modelpact.runtime import export_sklearn


@pytest.fixture(scope="session")
def breast_cancer() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    from sklearn.datasets import load_breast_cancer

    features, labels = load_breast_cancer(return_X_y=True)
    return features, labels


@pytest.fixture(scope="session")
def logistic_regression(
    breast_cancer: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]],
) -> Any:
    """A real LogisticRegression fitted on the breast-cancer data set."""
    from sklearn.linear_model import LogisticRegression

    features, labels = breast_cancer
    # newton-cg converges on the unscaled data in a few dozen iterations (lbfgs takes thousands)
    return LogisticRegression(solver="newton-cg", max_iter=1_000).fit(features, labels)


@pytest.fixture(scope="session")
def logistic_onnx(logistic_regression: Any) -> bytes:
    """``logistic_regression`` exported to ONNX bytes by :func:`export_sklearn`."""
    return export_sklearn(logistic_regression)
