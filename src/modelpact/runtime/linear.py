"""A registered model as the affine map encrypted scoring evaluates: scores = W x + b.

Encrypted (CKKS) and joint (MPC) scoring run a generalised linear model's affine part on
data the owner cannot see, and the partner applies the link (sigmoid, softmax) after
decrypting.  :func:`linear_form` reads that part out of an ONNX graph as skl2onnx writes
it — an optional ``Scaler`` (folded into the weights) followed by a ``LinearClassifier``
(then perhaps an L1 ``Normalizer``, a no-op after softmax) or a ``LinearRegressor`` — and
refuses anything else with one line: no other graph is affine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput

__all__ = ["LinearForm", "Link", "linear_form"]


class Link(StrEnum):
    """What turns the scores into the model's output, applied by the partner."""

    SIGMOID = "sigmoid"  # one score: the second class's log-odds
    SOFTMAX = "softmax"  # one score per class
    IDENTITY = "identity"  # a regressor's value(s)


@dataclass(frozen=True)
class LinearForm:
    """``scores = weights @ x + bias`` (``weights`` scores x features), then ``link``."""

    weights: npt.NDArray[np.float64]
    bias: npt.NDArray[np.float64]
    link: Link
    labels: tuple[str | int, ...] | None  # the classes, in score-column order

    @property
    def width(self) -> int:
        return int(self.weights.shape[1])

    def scores(self, rows: Any) -> npt.NDArray[np.float64]:
        found: npt.NDArray[np.float64] = np.asarray(rows, dtype=np.float64) @ self.weights.T
        return found + self.bias

    def outputs(self, scores: Any) -> npt.NDArray[np.float64]:
        """The link applied: class probabilities (rows x classes) or the regressor's values."""
        s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
        if self.link is Link.SIGMOID:
            p = 1.0 / (1.0 + np.exp(-s[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        if self.link is Link.SOFTMAX:
            e = np.exp(s - s.max(axis=1, keepdims=True))
            found: npt.NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
            return found
        return s


def _attributes(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def linear_form(data: bytes) -> LinearForm:
    """The affine part of an ONNX linear model (see the module docstring), or
    :class:`InvalidInput` naming what is not linear."""
    import onnx  # the registry checked the graph already: parse it, in memory

    graph = onnx.load_from_string(data).graph
    nodes = list(graph.node)
    kinds = [n.op_type for n in nodes]
    scale: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
    if kinds and kinds[0] == "Scaler":
        found = _attributes(nodes[0])
        scale = (np.asarray(found["offset"], float), np.asarray(found["scale"], float))
        nodes, kinds = nodes[1:], kinds[1:]
    if kinds not in (["LinearClassifier"], ["LinearClassifier", "Normalizer"], ["LinearRegressor"]):
        raise InvalidInput(
            "encrypted and joint scoring take linear or logistic models only; this graph has "
            + ", ".join(n.op_type for n in graph.node)
        )
    found = _attributes(nodes[0])
    weights = np.asarray(found["coefficients"], dtype=np.float64)
    bias = np.asarray(found["intercepts"], dtype=np.float64)
    post = found.get("post_transform", b"NONE")
    post = post.decode() if isinstance(post, bytes) else str(post)
    labels: tuple[str | int, ...] | None = None
    if kinds[0] == "LinearClassifier":
        if "classlabels_ints" in found:
            labels = tuple(int(v) for v in found["classlabels_ints"])
        else:
            labels = tuple(v.decode() for v in found["classlabels_strings"])
        weights = weights.reshape(len(bias), -1)
        if len(labels) == 2 and len(bias) == 2 and post == "LOGISTIC":
            # skl2onnx writes a binary model as [-w, w]: the second row is the log-odds.
            weights, bias, link = weights[1:], bias[1:], Link.SIGMOID
        elif post == "SOFTMAX" and len(bias) == len(labels):
            link = Link.SOFTMAX
        else:
            raise InvalidInput(f"a linear classifier with post_transform {post} is not supported")
    else:
        if post != "NONE":
            raise InvalidInput(f"a linear regressor with post_transform {post} is not supported")
        weights, link = weights.reshape(len(bias), -1), Link.IDENTITY
    if scale is not None:
        offset, factor = scale
        if offset.shape != factor.shape or len(factor) != weights.shape[1]:
            raise InvalidInput("the scaler and the linear model disagree on the features")
        bias = bias - (weights * factor) @ offset  # w . ((x - o) * s) + b
        weights = weights * factor
    return LinearForm(weights, bias, link, labels)
