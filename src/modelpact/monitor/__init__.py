"""Streaming detectors of model extraction over one partner's queries (pure: no I/O).

- :class:`TrainingSummary` — what a model version's training data looked like (mean,
  covariance, per-feature ranges), kept with the version: out-of-distribution scores.
- :class:`Prada` — Juuti et al. 2019: the minimum distances between a partner's successive
  queries follow a normal-looking distribution for natural use and not for synthetic probing.
- :class:`Coverage` — how fast a partner's queries fill the input space.
- :class:`Volume` — a day's volume against the partner's own history.

Each keeps bounded memory and serialises to a JSON-ready dict (``to_state`` /
``from_state``), so the gateway can persist it and carry it across restarts.
"""

from modelpact.monitor.detectors import Alarm, Coverage, Prada, Volume
from modelpact.monitor.summary import TrainingSummary

__all__ = ["Alarm", "Coverage", "Prada", "TrainingSummary", "Volume"]
