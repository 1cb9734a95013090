"""Shaping a model's raw outputs into what a partner may see, per the grant's output policy.

:func:`shape_outputs` turns the tensors a :class:`~modelpact.runtime.Predictor`
returned into one JSON-ready dict per input row, and nothing more than the
policy allows:

- ``label``   → ``{"label": l}`` (no score, however the model computed it);
- ``top_k``   → ``{"top_k": [{"label": l, "score": s}, ...]}``, the ``k`` highest first;
- ``scores``  → ``{"scores": [{"label": l, "score": s}, ...]}``, every class in
  column order; for a regressor, which has no class scores, ``{"value": v}``.

- ``noised_scores`` → as ``scores``, each row's vector through the Laplace mechanism
  first (:func:`~modelpact.runtime.privacy.noised`, epsilon from the policy);
- ``embedding`` → ``{"embedding": [v, ...]}``: a model's single [rows, d] output, turned
  by the partner's keyed rotation (``rotation``; the caller makes it from the partner's key).

Scores and values are rounded to ``policy.decimals`` when it is set.

Which output is which follows the way :func:`~modelpact.runtime.export_sklearn`
exports classifiers (skl2onnx, ``zipmap`` off): an ``int64`` or ``string``
tensor named ``label`` holding the class the model chose for each row, and a
``float`` tensor named ``probabilities`` of shape ``[rows, classes]``.  (For an
``SVC`` fitted without ``probability=True`` that tensor holds decision values,
not probabilities; they are served as scores all the same.)  A regressor has
one float output of shape ``[rows]`` or ``[rows, 1]`` (skl2onnx names it
``variable``).  Anything else cannot be shaped and raises :class:`PredictionFailed`.

This module is pure (numpy and the charter model), so it can run in the
gateway or in a model worker alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.charter import OutputKind, OutputPolicy
from modelpact.errors import ModelpactError, quote_untrusted
from modelpact.runtime.privacy import noised

__all__ = [
    "LABEL_OUTPUT",
    "SCORES_OUTPUT",
    "PredictionFailed",
    "shape_outputs",
]

LABEL_OUTPUT = "label"
"""The output holding each row's class, as skl2onnx names it."""
SCORES_OUTPUT = "probabilities"
"""The output holding each row's class scores ``[rows, classes]``, as skl2onnx names it."""

#: Labels past this would lose digits in a JSON reader (and RFC 8785 refuses them).
_JSON_SAFE_INT = 2**53 - 1
#: How far below its row's top score the model's own label may sit (float32 ties).
_TIE_RTOL = 1e-5


class PredictionFailed(ModelpactError):
    """The model ran but its answer cannot be served: nothing the partner can fix.

    Raised for NaN or infinite outputs, outputs that are not a classifier's or a
    regressor's, an output policy that does not fit the model (``top_k`` of a
    regressor), class labels that disagree with the model's own label output,
    and failures of the model at run time.
    """

    default_hint = "the model owner must check the model and the grant's output policy"


def shape_outputs(
    raw: Mapping[str, npt.NDArray[Any]],
    policy: OutputPolicy,
    *,
    labels: Sequence[str | int] | None,
    rotation: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None = None,
) -> list[dict[str, object]]:
    """One JSON-ready dict per row of ``raw``, showing only what ``policy`` allows.

    ``labels`` names the score columns in order (a classifier's classes).  Where
    labels come from, in this order:

    - ``label`` output kind: the model's own ``label`` output when it has one —
      it is exactly what the model decided, in the model's own type (string
      classes included), and needs no column mapping; otherwise the label of
      the highest-scoring column;
    - column labels (``top_k``, ``scores``): ``labels`` if given, else the column
      index — which is right for a scikit-learn classifier fitted on the classes
      ``0 .. n-1`` and wrong for any other.  So whenever the model also has a
      ``label`` output, every row's label must name a column holding that row's
      top score (ties allowed); if not, the labels are wrong for this model and
      :class:`PredictionFailed` is raised rather than scores served under the
      wrong names.  (The model card has no field for classes, so it is no source.)

    Raises :class:`PredictionFailed` for NaN or infinite outputs, outputs it cannot
    read, a policy that does not fit the model, or labels that disagree with it.
    """
    if policy.kind is OutputKind.EMBEDDING:
        return _shape_embedding(raw, rotation)
    label_out = raw.get(LABEL_OUTPUT)
    scores = raw.get(SCORES_OUTPUT)
    if scores is None and label_out is None:
        return _shape_regression(raw, policy)
    rows = _row_count(label_out, scores)
    chosen = None if label_out is None else _label_column(label_out, rows)
    if scores is None:
        # A classifier with no scores can only ever answer with its label.
        if policy.kind is not OutputKind.LABEL or chosen is None:
            raise PredictionFailed(
                f"output kind {policy.kind.value} needs class scores; "
                f"the model has no {SCORES_OUTPUT!r} output"
            )
        return [{"label": label} for label in chosen]
    _require_finite(scores, "scores")
    scores = scores.astype(np.float64)  # exact for float32; no wrap-around when negated
    classes = scores.shape[1]
    if policy.kind is OutputKind.LABEL:
        if chosen is not None:
            return [{"label": label} for label in chosen]
        columns = _columns(labels, classes)
        return [{"label": columns[int(j)]} for j in np.argmax(scores, axis=1)]
    columns = _columns(labels, classes)
    if chosen is not None:
        _require_agreement(scores, chosen, columns, given=labels is not None)
    if policy.kind is OutputKind.NOISED_SCORES:
        assert policy.epsilon is not None  # the charter model requires it
        scores = noised(scores, policy.epsilon)  # after the agreement check: noise may reorder
    decimals = policy.decimals
    if policy.kind is OutputKind.TOP_K:
        k = min(policy.k or classes, classes)
        # A stable sort on the negated scores: highest first, ties in column order.
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [
            {
                "top_k": [
                    {"label": columns[int(j)], "score": _number(row[j], decimals)} for j in picks
                ]
            }
            for row, picks in zip(scores, order, strict=True)
        ]
    return [
        {
            "scores": [
                {"label": column, "score": _number(value, decimals)}
                for column, value in zip(columns, row, strict=True)
            ]
        }
        for row in scores
    ]


def _shape_embedding(
    raw: Mapping[str, npt.NDArray[Any]],
    rotation: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]] | None,
) -> list[dict[str, object]]:
    """The model's single [rows, d] output, turned by the partner's keyed rotation."""
    if len(raw) != 1:
        raise PredictionFailed("output kind embedding needs a model with a single output")
    (values,) = raw.values()
    values = np.asarray(values)
    if values.dtype.kind not in "fiu" or values.ndim != 2 or values.shape[1] < 1:
        raise PredictionFailed(
            f"the model's output has shape {values.shape}; an embedding is [rows, d] numbers"
        )
    _require_finite(values, "values")
    if rotation is None:
        raise PredictionFailed("output kind embedding needs the partner's key to turn the vectors")
    turned = rotation(values.astype(np.float64))
    return [{"embedding": [float(v) for v in row]} for row in turned]


def _shape_regression(
    raw: Mapping[str, npt.NDArray[Any]], policy: OutputPolicy
) -> list[dict[str, object]]:
    if len(raw) != 1:
        found = ", ".join(quote_untrusted(name) for name in list(raw)[:5]) or "none"
        raise PredictionFailed(
            "cannot tell which model output holds the answer "
            f"(outputs: {found}; expected {LABEL_OUTPUT!r} and {SCORES_OUTPUT!r}, "
            "or a single regression output)"
        )
    (values,) = raw.values()
    values = np.asarray(values)
    if values.dtype.kind not in "fiu" or not (
        values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
    ):
        raise PredictionFailed(
            f"the model's single output has shape {values.shape} and type {values.dtype}; "
            "only a regressor's [rows] or [rows, 1] numbers can be served"
        )
    if policy.kind is not OutputKind.SCORES:
        raise PredictionFailed(
            f"output kind {policy.kind.value} needs a classifier; this model is a regressor",
            hint="grant output kind scores (with decimals) for a regressor",
        )
    _require_finite(values, "values")
    return [{"value": _number(v, policy.decimals)} for v in values.reshape(-1)]


def _row_count(label_out: npt.NDArray[Any] | None, scores: npt.NDArray[Any] | None) -> int:
    rows: int | None = None
    if scores is not None:
        if scores.ndim != 2 or scores.shape[1] < 1 or scores.dtype.kind not in "fiu":
            raise PredictionFailed(
                f"the {SCORES_OUTPUT!r} output must be numbers shaped [rows, classes], "
                f"not {scores.dtype} {scores.shape}"
            )
        rows = scores.shape[0]
    if label_out is not None:
        if not (label_out.ndim == 1 or (label_out.ndim == 2 and label_out.shape[1] == 1)):
            raise PredictionFailed(
                f"the {LABEL_OUTPUT!r} output must be shaped [rows], not {label_out.shape}"
            )
        if rows is not None and label_out.shape[0] != rows:
            raise PredictionFailed(
                f"the model returned {label_out.shape[0]} labels for {rows} rows of scores"
            )
        rows = label_out.shape[0]
    assert rows is not None
    return rows


def _label_column(label_out: npt.NDArray[Any], rows: int) -> list[str | int]:
    if label_out.dtype.kind == "f":
        _require_finite(label_out, "labels")
    return [_plain_label(value) for value in label_out.reshape(rows)]


def _plain_label(value: object) -> str | int:
    """A class label as a plain ``str`` or ``int`` (no numpy scalar reaches JSON)."""
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, int | np.integer):
        number = int(value)
        if abs(number) > _JSON_SAFE_INT:
            raise PredictionFailed("a class label is an integer too large for JSON")
        return number
    if isinstance(value, np.floating | float) and float(value).is_integer():
        return _plain_label(int(value))
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise PredictionFailed("a class label is not UTF-8 text") from None
    if isinstance(value, str):
        return str(value)
    raise PredictionFailed(f"a class label of type {type(value).__name__} cannot be served")


def _columns(labels: Sequence[str | int] | None, classes: int) -> list[str | int]:
    if labels is None:
        return list(range(classes))
    if isinstance(labels, str | bytes) or len(labels) != classes:
        count = "text" if isinstance(labels, str | bytes) else f"{len(labels)} labels"
        raise PredictionFailed(f"the class labels ({count}) do not fit the {classes} score columns")
    columns = [_plain_label(label) for label in labels]
    if len(set(columns)) != len(columns):
        raise PredictionFailed("the class labels name a class more than once")
    return columns


def _require_agreement(
    scores: npt.NDArray[Any], chosen: list[str | int], columns: list[str | int], *, given: bool
) -> None:
    """Each row's own label must name a column that holds the row's top score."""
    index = {column: j for j, column in enumerate(columns)}
    picked = np.array([index.get(label, -1) for label in chosen], dtype=np.int64)
    agrees = bool(np.all(picked >= 0))
    if agrees and len(picked):
        top = scores.max(axis=1).astype(np.float64)
        at = scores[np.arange(len(picked)), picked].astype(np.float64)
        agrees = bool(np.all(at >= top - _TIE_RTOL * np.maximum(1.0, np.abs(top))))
    if not agrees:
        which = "the given class labels" if given else "column-index class labels"
        raise PredictionFailed(
            f"the model's {LABEL_OUTPUT!r} output disagrees with its scores under {which}",
            hint="the score columns cannot be named for this model; grant output kind label for it",
        )


def _require_finite(values: npt.NDArray[Any], what: str) -> None:
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise PredictionFailed(f"the model returned NaN or infinite {what}")


def _number(value: Any, decimals: int | None) -> float:
    """A plain ``float``, rounded to ``decimals`` places when set; ``-0.0`` becomes ``0.0``."""
    number = float(value)
    if decimals is not None:
        number = round(number, decimals)
    return number + 0.0
