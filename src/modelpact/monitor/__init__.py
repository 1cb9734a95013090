"""Streaming detectors of model extraction over one partner's queries (pure: no I/O).

- :class:`TrainingSummary` — what a model version's training data looked like (mean,
  covariance, per-feature ranges), kept with the version: out-of-distribution scores.
- :class:`Prada` — Juuti et al. 2019: the minimum distances between a partner's successive
  queries follow a normal-looking distribution for natural use and not for synthetic probing.
- :class:`Coverage` — how fast a partner's queries fill the input space.
- :class:`Perturbation` — the share of queries that are small moves of earlier ones.
- :class:`Boundary` — the share of queries on the model's decision boundary.
- :class:`Outliers` — the share of recent queries far outside the training distribution.
- :class:`Volume` — a day's volume against the partner's own history.
- :class:`Watch` — all of them for one partner, charter and model; :class:`Ladder` — the
  charter's escalation from alarms to responses.

Each keeps bounded memory and serialises to a JSON-ready dict (``to_state`` /
``from_state``), so the gateway can persist it and carry it across restarts.
"""

from modelpact.monitor.detectors import (
    Alarm,
    Boundary,
    Coverage,
    Outliers,
    Perturbation,
    Prada,
    Volume,
    calibrate_prada,
    margins,
)
from modelpact.monitor.escalation import ORDER, Ladder
from modelpact.monitor.summary import TrainingSummary
from modelpact.monitor.watch import Watch

__all__ = [
    "ORDER",
    "Alarm",
    "Boundary",
    "Coverage",
    "Ladder",
    "Outliers",
    "Perturbation",
    "Prada",
    "TrainingSummary",
    "Volume",
    "Watch",
    "calibrate_prada",
    "margins",
]
