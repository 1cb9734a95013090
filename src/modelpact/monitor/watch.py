"""Every detector over one partner's queries to one model under one charter.

:class:`Watch` feeds each answered batch to the detectors — out-of-distribution
share, perturbation probing, boundary seeking, PRADA, input-space coverage, daily
volume — and reports the alarms they raise.  It also counts the queries since the
last escalation step (:class:`~modelpact.monitor.escalation.Ladder` reads it).  Its
state is one JSON-ready dict, bounded whatever the partner sends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np

from modelpact.errors import InvalidInput
from modelpact.monitor.detectors import (
    Alarm,
    Boundary,
    Coverage,
    Outliers,
    Perturbation,
    Prada,
    Volume,
)
from modelpact.monitor.summary import TrainingSummary

__all__ = ["Watch"]

_FORMAT = "modelpact-watch/v1"


class Watch:
    """The detectors for one partner, charter and model.

    ``summary``: the model version's training summary; without one only volume runs: the
    others measure against the training data, and PRADA on raw, unscaled features raised
    false alarms on natural breast-cancer rows (one large-scale feature dominates).
    """

    def __init__(self, summary: TrainingSummary | None, width: int) -> None:
        self.trained = summary is not None
        self.summary = summary if summary is not None else TrainingSummary.identity(width)
        self.prada = Prada(self.summary) if self.trained else None
        self.perturbation = Perturbation(self.summary) if self.trained else None
        cut = self.summary.margin_cut
        self.boundary = Boundary(cut) if self.trained and cut is not None else None
        self.coverage = Coverage(self.summary) if self.trained else None
        self.outliers = Outliers(self.summary) if self.trained else None
        self.volume = Volume()
        self.day: date | None = None
        self.queries = 0
        self.since_step = 0
        self.step = 0  # the last escalation step taken on this watch's alarms

    @property
    def width(self) -> int:
        return self.summary.width

    def observe(
        self,
        rows: Sequence[Sequence[float]],
        labels: Sequence[str | int],
        day: date,
        margins: Sequence[float] | None = None,
    ) -> list[Alarm]:
        """Record one answered batch: its rows, the label each was answered with and, when
        the model has class scores, each row's margin (:func:`~modelpact.monitor.margins`)."""
        if len(rows) != len(labels) or (margins is not None and len(margins) != len(rows)):
            raise InvalidInput("one label (and margin) per row")
        if self.day is not None and day > self.day:
            self.volume.end_day((day - self.day).days)
        if self.day is None or day > self.day:
            self.day = day
        standard = self.summary.standardise(rows)
        if self.prada is not None:
            for point, label in zip(standard, labels, strict=True):
                nearest = self.prada.observe_standard(point, label)
                if nearest is not None and self.perturbation is not None:
                    self.perturbation.observe_distance(nearest)
        if self.coverage is not None:
            for projected in (standard @ self.summary.components.T) / self.summary.spread:
                self.coverage.observe_projected(projected)
        if self.outliers is not None:
            squared = np.einsum("ij,jk,ik->i", standard, self.summary.precision, standard)
            self.outliers.observe_distances(np.sqrt(np.maximum(squared, 0.0)))
        if self.boundary is not None and margins is not None:
            self.boundary.observe_margins(margins)
        self.volume.observe(len(rows))
        self.queries += len(rows)
        self.since_step += len(rows)
        return self.alarms()

    def alarms(self) -> list[Alarm]:
        """The alarms the detectors raise now."""
        detectors = (
            self.outliers,
            self.perturbation,
            self.boundary,
            self.prada,
            self.coverage,
            self.volume,
        )
        return [alarm for d in detectors if d is not None and (alarm := d.check()) is not None]

    def stepped(self, step: int) -> None:
        """Escalation step ``step`` was taken: count queries from here."""
        self.step = step
        self.since_step = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "width": self.width,
            "trained": self.trained,
            "day": None if self.day is None else self.day.isoformat(),
            "queries": self.queries,
            "since_step": self.since_step,
            "step": self.step,
            "prada": None if self.prada is None else self.prada.to_state(),
            "coverage": None if self.coverage is None else self.coverage.to_state(),
            "perturbation": None if self.perturbation is None else self.perturbation.to_state(),
            "boundary": None if self.boundary is None else self.boundary.to_state(),
            "outliers": None if self.outliers is None else self.outliers.to_state(),
            "volume": self.volume.to_state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], summary: TrainingSummary | None) -> Watch:
        """A watch as saved; :class:`InvalidInput` if the state is not one, or was made
        against a summary of another width or with/without one (the caller starts afresh)."""
        try:
            if state["format"] != _FORMAT:
                raise InvalidInput("not a watch state")
            width, trained = int(state["width"]), bool(state["trained"])
            if trained != (summary is not None) or (summary and summary.width != width):
                raise InvalidInput("a watch state made against another training summary")
            watch = cls(summary, width)
            watch.day = None if state["day"] is None else date.fromisoformat(state["day"])
            watch.queries, watch.since_step = int(state["queries"]), int(state["since_step"])
            watch.step = int(state["step"])
            if watch.prada is not None:
                watch.prada.load_state(state["prada"])
            watch.volume.load_state(state["volume"])
            if watch.coverage is not None:
                watch.coverage.load_state(state["coverage"])
            if watch.perturbation is not None:
                watch.perturbation.load_state(state["perturbation"])
            if watch.boundary is not None:
                watch.boundary.load_state(state["boundary"])
            if watch.outliers is not None:
                watch.outliers.load_state(state["outliers"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("not a watch state") from None
        return watch
