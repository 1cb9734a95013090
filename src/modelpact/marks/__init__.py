"""Per-partner output watermarks and the statistics that attribute a leaked copy (pure).

- :class:`Watermark` — one partner's marks on one model version: a keyed selection of
  about 0.5% of queries whose answer is swapped to a keyed alternative class (after DAWN,
  Szyller et al. 2021), and a small keyed tilt of the decision function that a faithful
  linear copy inherits.
- :class:`KeyedRotation` — a partner's secret orthogonal rotation of embedding vectors.
- :mod:`modelpact.marks.attribution` — the tests: matches with a partner's swapped labels
  against the chance rate (one-sided binomial), and the angle between a suspect's deviation
  from the model and a partner's tilt direction against a random direction's.
"""

from modelpact.marks.attribution import (
    Evidence,
    TiltProbe,
    boundary_weight,
    chance_rate,
    coefficients,
    deviation,
    flip_test,
    log_odds,
    model_directions,
    tilt_test,
)
from modelpact.marks.embedding import KeyedRotation, rotation_test
from modelpact.marks.watermark import MC_TILT, RATE, TILT, TILTED_RATE, Watermark, tilt_basis

__all__ = [
    "MC_TILT",
    "RATE",
    "TILT",
    "TILTED_RATE",
    "Evidence",
    "KeyedRotation",
    "TiltProbe",
    "Watermark",
    "boundary_weight",
    "chance_rate",
    "coefficients",
    "deviation",
    "flip_test",
    "log_odds",
    "model_directions",
    "rotation_test",
    "tilt_basis",
    "tilt_test",
]
