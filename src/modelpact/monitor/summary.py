"""A model version's training distribution, summarised for out-of-distribution scores."""

from __future__ import annotations

import functools
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


def _optional(value: Any) -> float | None:
    return None if value is None else float(value)


def _median_neighbour(standard: npt.NDArray[np.float64], sample: int = 2000) -> float:
    """The median distance from a row to its nearest other row (over at most ``sample`` rows,
    in blocks: memory stays small whatever the training set's size)."""
    rows = standard[np.random.default_rng(0).permutation(len(standard))[:sample]]
    nearest = np.empty(len(rows))
    norms = np.einsum("ij,ij->i", rows, rows)
    for start in range(0, len(rows), 256):
        block = rows[start : start + 256]
        gaps = np.maximum(norms[start : start + 256, None] + norms[None, :] - 2 * block @ rows.T, 0)
        gaps[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf
        gaps[gaps < 1e-12] = np.inf  # duplicate training rows say nothing of the spacing
        nearest[start : start + len(block)] = np.sqrt(gaps.min(axis=1))
    finite = nearest[np.isfinite(nearest)]
    return float(np.median(finite)) if len(finite) else 1.0


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
    limit: float  # the training rows' 99.5th-percentile distance: beyond it is an outlier
    neighbour: float  # the median distance from a training row to its nearest other one
    prada_delta: float | None = None  # PRADA's threshold, calibrated on natural rows
    margin_cut: float | None = None  # the training rows' 10th-percentile model margin

    @classmethod
    def fit(cls, rows: Any) -> TrainingSummary:
        data = _matrix(rows)
        if data.shape[0] < 2:
            raise InvalidInput("a training summary needs at least two rows")
        mean = data.mean(axis=0)
        spread = data.std(axis=0)
        # A feature that is almost always the same (a corner pixel) has a tiny spread that
        # would blow its rare other values up to hundreds of units: no spread below an
        # eighth of the feature's range (about 0.7 sd for normal data: left alone).
        spread = np.maximum(spread, (data.max(axis=0) - data.min(axis=0)) / 8)
        std = np.where(spread > 0, spread, 1.0)
        standard = (data - mean) / std
        correlation = np.atleast_2d(np.cov(standard, rowvar=False))
        correlation = correlation + np.eye(correlation.shape[0]) * _RIDGE
        values, vectors = np.linalg.eigh(correlation)
        order = np.argsort(values)[::-1][: min(_COMPONENTS, data.shape[1])]
        precision = np.linalg.inv(correlation)
        squared = np.einsum("ij,jk,ik->i", standard, precision, standard)
        return cls(
            mean=mean,
            std=std,
            precision=precision,
            components=vectors[:, order].T.copy(),
            spread=np.sqrt(np.maximum(values[order], _RIDGE)),
            low=data.min(axis=0),
            high=data.max(axis=0),
            count=int(data.shape[0]),
            limit=float(np.quantile(np.sqrt(np.maximum(squared, 0.0)), 0.995)),
            neighbour=_median_neighbour(standard),
        )

    @classmethod
    def identity(cls, width: int) -> TrainingSummary:
        """A summary that leaves rows as they are: for a model registered without one
        (only the detectors that need no training data are then meaningful)."""
        if width < 1:
            raise InvalidInput("a summary needs at least one feature")
        kept = min(_COMPONENTS, width)
        huge = np.full(width, float(np.finfo(np.float64).max))
        return cls(
            mean=np.zeros(width),
            std=np.ones(width),
            precision=np.eye(width),
            components=np.eye(width)[:kept].copy(),
            spread=np.ones(kept),
            low=-huge,
            high=huge,
            count=0,
            limit=float("inf"),
            neighbour=1.0,
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

    def whiten(self, rows: Any) -> npt.NDArray[np.float64]:
        """Rows standardised, then decorrelated (the precision matrix's symmetric square root):
        every direction has unit variance over the training rows, but for near-collinear
        ones, which the ridge holds below it rather than blow up."""
        white: npt.NDArray[np.float64] = self.standardise(rows) @ self._whitening
        return white

    @functools.cached_property
    def _whitening(self) -> npt.NDArray[np.float64]:
        """The precision matrix's symmetric square root, decomposed once per summary."""
        values, vectors = np.linalg.eigh(self.precision)
        root: npt.NDArray[np.float64] = (vectors * np.sqrt(np.maximum(values, 0.0))) @ vectors.T
        return root

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
            "limit": self.limit,
            "neighbour": self.neighbour,
            "prada_delta": self.prada_delta,
            "margin_cut": self.margin_cut,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TrainingSummary:
        try:
            parts = {
                name: np.asarray(state[name], dtype=np.float64)
                for name in ("mean", "std", "precision", "components", "spread", "low", "high")
            }
            summary = cls(
                **parts,
                count=int(state["count"]),
                limit=float(state["limit"]),
                neighbour=float(state["neighbour"]),
                prada_delta=_optional(state["prada_delta"]),
                margin_cut=_optional(state["margin_cut"]),
            )
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
