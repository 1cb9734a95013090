"""A model version's training distribution, summarised for out-of-distribution scores."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput

__all__ = ["TrainingSummary"]

#: Added to the correlation matrix's diagonal: features that never vary in training, or vary
#: together, must not make its inverse blow up.
_RIDGE = 1e-3
#: Principal directions kept for :meth:`TrainingSummary.project` (coverage cells).
_COMPONENTS = 4


def _matrix(rows: Any, width: int | None = None) -> npt.NDArray[np.float64]:
    array = np.asarray(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or (width is not None and array.shape[1] != width):
        raise InvalidInput(
            f"rows must be a non-empty 2-D array{'' if width is None else f' of width {width}'}"
        )
    if not np.isfinite(array).all():
        raise InvalidInput("rows hold NaN or infinite values")
    return array


@dataclass(frozen=True)
class TrainingSummary:
    """What the training rows looked like, in a few numbers per feature.

    Features are standardised by the training mean and spread; :meth:`distance` is
    the Mahalanobis distance in that space (natural rows score near
    ``sqrt(width)``, far-away probes much higher), :meth:`outside` the fraction of a
    row's features outside the training range, and :meth:`project` a row's
    coordinates along the training data's main principal directions, in units of
    their spread.
    """

    mean: npt.NDArray[np.float64]
    std: npt.NDArray[np.float64]  # per feature; 1 where a feature never varied
    precision: npt.NDArray[np.float64]  # inverse of the (ridged) correlation matrix
    components: npt.NDArray[np.float64]  # principal directions, one per row
    spread: npt.NDArray[np.float64]  # the spread along each of them
    low: npt.NDArray[np.float64]
    high: npt.NDArray[np.float64]
    count: int

    @classmethod
    def fit(cls, rows: Any) -> TrainingSummary:
        data = _matrix(rows)
        if data.shape[0] < 2:
            raise InvalidInput("a training summary needs at least two rows")
        mean = data.mean(axis=0)
        spread = data.std(axis=0)
        std = np.where(spread > 0, spread, 1.0)
        standard = (data - mean) / std
        correlation = np.atleast_2d(np.cov(standard, rowvar=False))
        correlation = correlation + np.eye(correlation.shape[0]) * _RIDGE
        values, vectors = np.linalg.eigh(correlation)
        order = np.argsort(values)[::-1][: min(_COMPONENTS, data.shape[1])]
        return cls(
            mean=mean,
            std=std,
            precision=np.linalg.inv(correlation),
            components=vectors[:, order].T.copy(),
            spread=np.sqrt(np.maximum(values[order], _RIDGE)),
            low=data.min(axis=0),
            high=data.max(axis=0),
            count=int(data.shape[0]),
        )

    @property
    def width(self) -> int:
        return int(self.mean.shape[0])

    def standardise(self, rows: Any) -> npt.NDArray[np.float64]:
        """Rows centred on the training mean, each feature in units of its training spread."""
        return (_matrix(rows, self.width) - self.mean) / self.std

    def distance(self, rows: Any) -> npt.NDArray[np.float64]:
        """The Mahalanobis distance of each row from the training distribution."""
        standard = self.standardise(rows)
        squared = np.einsum("ij,jk,ik->i", standard, self.precision, standard)
        distances: npt.NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
        return distances

    def outside(self, rows: Any) -> npt.NDArray[np.float64]:
        """The fraction of each row's features outside the training range."""
        data = _matrix(rows, self.width)
        fraction: npt.NDArray[np.float64] = ((data < self.low) | (data > self.high)).mean(axis=1)
        return fraction

    def project(self, rows: Any) -> npt.NDArray[np.float64]:
        """Each row along the main principal directions, in units of their spread."""
        return (self.standardise(rows) @ self.components.T) / self.spread

    def to_state(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "precision": self.precision.tolist(),
            "components": self.components.tolist(),
            "spread": self.spread.tolist(),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "count": self.count,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrainingSummary:
        try:
            parts = {
                name: np.asarray(state[name], dtype=np.float64)
                for name in ("mean", "std", "precision", "components", "spread", "low", "high")
            }
            summary = cls(**parts, count=int(state["count"]))
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("not a training summary") from None
        width, kept = summary.width, summary.spread.shape[0]
        if (
            summary.precision.shape != (width, width)
            or summary.components.shape != (kept, width)
            or any(p.shape != (width,) for p in (summary.std, summary.low, summary.high))
        ):
            raise InvalidInput("a training summary whose parts disagree in width")
        return summary
