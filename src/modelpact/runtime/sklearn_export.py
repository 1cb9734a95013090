"""Turning a fitted scikit-learn estimator into ONNX bytes, the only form registered.

scikit-learn models are usually saved with pickle or joblib, which modelpact
refuses (loading them runs arbitrary code).  This is the way in instead: convert
the live estimator with skl2onnx, in the owner's own process, and register the
resulting bytes.  Classifiers are converted without ``ZipMap``, so class
probabilities come out as a plain ``float`` tensor that the output policies and
the predictor handle directly.
"""

from __future__ import annotations

import numbers
from typing import Any

from modelpact.errors import InvalidInput

__all__ = ["INPUT_NAME", "export_sklearn"]

INPUT_NAME = "input"
"""The name of the single float input of every exported model."""

_SUPPORTED = "see https://onnx.ai/sklearn-onnx/supported.html for what skl2onnx converts"


def export_sklearn(
    estimator: Any, *, n_features: int | None = None, target_opset: int | None = None
) -> bytes:
    """Serialized ONNX for a fitted estimator or ``Pipeline``.

    The model takes one input, :data:`INPUT_NAME`, a ``float`` tensor of shape
    ``[batch, n_features]``; ``n_features`` defaults to the estimator's
    ``n_features_in_``.  ``target_opset`` defaults to skl2onnx's choice.
    Raises :class:`InvalidInput` for an unfitted or unsupported estimator.
    """
    from sklearn.base import is_classifier
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    kind = type(estimator).__name__
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise InvalidInput(
            f"the {kind} is not fitted", hint="call fit(...) before exporting it"
        ) from None
    except TypeError:
        raise InvalidInput(f"a {kind} is not a scikit-learn estimator") from None
    features = _feature_count(estimator, n_features, kind)
    if target_opset is not None and (
        isinstance(target_opset, bool) or not isinstance(target_opset, int) or target_opset < 1
    ):
        raise InvalidInput(f"target_opset must be a positive integer, not {target_opset!r}")

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    options = {id(estimator): {"zipmap": False}} if is_classifier(estimator) else None
    try:
        model = to_onnx(
            estimator,
            initial_types=[(INPUT_NAME, FloatTensorType([None, features]))],
            options=options,
            target_opset=target_opset,
        )
    except Exception as exc:  # skl2onnx raises RuntimeError, NameError, TypeError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise InvalidInput(
            f"skl2onnx cannot convert the {kind}: {first[:200]}", hint=_SUPPORTED
        ) from None
    data: bytes = model.SerializeToString()
    return data


def _feature_count(estimator: Any, n_features: int | None, kind: str) -> int:
    raw = getattr(estimator, "n_features_in_", None)
    fitted = int(raw) if isinstance(raw, numbers.Integral) and not isinstance(raw, bool) else None
    if n_features is None:
        if fitted is None or fitted < 1:
            raise InvalidInput(
                f"the {kind} does not say how many features it takes",
                hint="pass n_features=...",
            )
        return fitted
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise InvalidInput(f"n_features must be a positive integer, not {n_features!r}")
    if fitted is not None and fitted != n_features:
        raise InvalidInput(f"n_features is {n_features} but the {kind} was fitted on {fitted}")
    return n_features
