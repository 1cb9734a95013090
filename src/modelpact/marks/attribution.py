"""Attributing a suspect model to a partner: two one-sided tests, each with its p-value.

- :func:`flip_test`: replay a partner's marked queries to the suspect and count how often
  it gives the partner's swapped label.  A model that never saw the answers gives that
  label no more often than it disagrees with the original model at all (on a binary model
  exactly that; on k classes at most that), which :func:`chance_rate` measures on
  unmarked rows; the p-value is the binomial tail of the matches at that rate.
- :func:`tilt_test`: the suspect's deviation from the original model, as a direction in
  whitened feature space (:func:`deviation`), with the model's own direction
  projected out, against the partner's tilt direction (likewise projected).  For a
  direction unrelated to the partner's, the cosine is that of a uniformly random unit
  vector in ``m`` dimensions, whose tail is a regularised incomplete beta function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput
from modelpact.marks.watermark import Watermark, centred

__all__ = [
    "Evidence",
    "TiltProbe",
    "boundary_weight",
    "chance_rate",
    "coefficients",
    "deviation",
    "flip_test",
    "log_odds",
    "model_directions",
    "tilt_test",
]

#: Log-odds beyond this say little: float32 scores saturate near 16.6, and a copy's and the
#: model's extreme answers differ by where they clip, not by their direction.
_LOGIT_CAP = 16.0

#: The smallest chance rate a test assumes: a suspect that agrees with the model on every
#: probe row still gets the benefit of the doubt of one disagreement in a thousand.
_MIN_CHANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Evidence:
    """One test of a suspect against one partner's watermark."""

    partner: str
    test: str  # "flip", "tilt" or "rotation"
    statistic: float  # matches / marks, or the cosine
    chance: float  # the rate (flip) or 0 (tilt) the null hypothesis allows
    count: int  # marks replayed (flip) or dimensions (tilt)
    p_value: float

    def explain(self) -> str:
        if self.test == "flip":
            return (
                f"{round(self.statistic * self.count)} of {self.count} marked queries answered "
                f"with {self.partner}'s swapped label (chance at most {self.chance:.3g}): "
                f"p = {self.p_value:.3g}"
            )
        if self.test == "rotation":
            return (
                f"the vectors carry {self.partner}'s rotation: mean cosine "
                f"{self.statistic:.3f} in {self.count} dimensions: p = {self.p_value:.3g}"
            )
        return (
            f"deviation from the model points along {self.partner}'s tilt: cosine "
            f"{self.statistic:.3f} in {self.count} dimensions: p = {self.p_value:.3g}"
        )


def chance_rate(suspect: Any, original: Any) -> float:
    """How often the suspect's labels differ from the original's on unmarked probe rows."""
    a, b = np.asarray(suspect), np.asarray(original)
    if a.shape != b.shape or a.size == 0:
        raise InvalidInput("chance rate needs the same, non-empty probe rows for both models")
    return max(float(np.mean(a != b)), _MIN_CHANCE)


def flip_test(partner: str, suspect: Any, swapped: Any, chance: float) -> Evidence:
    """The suspect's labels on a partner's marked queries against the labels it was given."""
    answers, marks = np.asarray(suspect), np.asarray(swapped)
    if answers.shape != marks.shape:
        raise InvalidInput("one suspect label per marked query")
    n = int(marks.size)
    matches = int(np.sum(answers == marks))
    from scipy import stats  # here: the model worker imports this package, never tests

    p = float(stats.binom.sf(matches - 1, n, chance)) if n else 1.0
    return Evidence(partner, "flip", matches / n if n else 0.0, chance, n, p)


def deviation(suspect_logits: Any, original_logits: Any, standard: Any) -> npt.NDArray[np.float64]:
    """The least-squares direction of ``suspect - original`` log-odds over ``standard`` rows
    (whitened, as the tilt is: :meth:`~modelpact.monitor.TrainingSummary.whiten`)."""
    z = np.asarray(standard, dtype=np.float64)
    gap = np.asarray(suspect_logits, dtype=np.float64) - np.asarray(original_logits)
    design = np.hstack([z, np.ones((len(z), 1))])
    solution, *_ = np.linalg.lstsq(design, gap, rcond=None)
    direction: npt.NDArray[np.float64] = solution[:-1]
    return direction


def _without(vector: npt.NDArray[np.float64], axis: npt.NDArray[np.float64]) -> Any:
    unit = axis / np.linalg.norm(axis)
    return vector - (vector @ unit) * unit


def tilt_test(
    partner: str,
    deviation_: npt.NDArray[np.float64],
    model_direction: npt.NDArray[np.float64],
    tilt: npt.NDArray[np.float64],
) -> Evidence:
    """Cosine between the suspect's deviation and the partner's tilt, the model's own
    direction (a copy's scale and bias differ from the model's anyway) projected out of both."""
    v, u = _without(deviation_, model_direction), _without(tilt, model_direction)
    dims = len(u) - 1
    norms = float(np.linalg.norm(v) * np.linalg.norm(u))
    cosine = float(v @ u / norms) if norms > 0 else 0.0
    p = _cosine_tail(cosine, dims)
    return Evidence(partner, "tilt", cosine, 0.0, dims, p)


def log_odds(scores: Any) -> npt.NDArray[np.float64]:
    """Binary class scores as log-odds of the second class (kept finite)."""
    p = np.clip(np.asarray(scores, dtype=np.float64)[:, 1], 1e-9, 1 - 1e-9)
    found: npt.NDArray[np.float64] = np.log(p) - np.log1p(-p)
    return found


_TEMPERATURE = 2.0  # the model's log-probabilities are softened so for the boundary weight


def coefficients(
    probabilities: Any, z: npt.NDArray[np.float64], basis: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """V = T^T B (r x K): the least-squares fit (with intercept) of centred log-probabilities
    on the whitened probe rows, in the tilt basis — a softmax-linear model's coefficients."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)
    logp = centred(np.log(p / p.sum(axis=1, keepdims=True)))
    design = np.hstack([z, np.ones((len(z), 1))])
    solution, *_ = np.linalg.lstsq(design, logp, rcond=None)
    found: npt.NDArray[np.float64] = basis.T @ solution[:-1]
    return found


def boundary_weight(
    probabilities: Any, z: npt.NDArray[np.float64], basis: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """M (r x r) = mean g_i t_i t_i^T, t_i the probe row in the basis, g_i the Gini impurity
    of the model's softened probabilities: the directions along which rows near the model's
    boundaries vary, where a copy's boundaries are pinned down best (a matched filter)."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, None)
    logits = np.log(p) / _TEMPERATURE
    q = np.exp(logits - logits.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    gini = 1.0 - np.sum(q * q, axis=1)
    t = z @ basis
    weight: npt.NDArray[np.float64] = (t * gini[:, None]).T @ t / len(t)
    return weight


def model_directions(
    original: npt.NDArray[np.float64], weight: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """An orthonormal basis (columns, over flattened r x K) of the model's own directions,
    one per class (a copy's per-class scale differs from the model's anyway)."""
    r, k = original.shape
    vectors = []
    for c in range(k):
        single = np.zeros((r, k))
        single[:, c] = weight @ original[:, c]
        vectors.append(centred(single).ravel())
    q, upper = np.linalg.qr(np.array(vectors).T)
    diagonal = np.abs(np.diag(upper))
    found: npt.NDArray[np.float64] = q[:, diagonal > 1e-10 * max(float(diagonal.max()), 1e-300)]
    return found


def _cosine_tail(cosine: float, dims: int) -> float:
    """P(cos >= c) for a uniformly random unit vector in ``dims`` dimensions."""
    if cosine <= 0 or dims < 2:
        return 1.0
    from scipy import special  # here: the model worker imports this package, never tests

    return float(0.5 * special.betainc((dims - 1) / 2, 0.5, 1 - cosine**2))


@dataclass(frozen=True)
class TiltProbe:
    """What the tilt tests need of a suspect and of the model on the probe rows, fitted once
    and then tested against each partner's key (:meth:`test`).  Everything here comes from
    the two models, the rows and the training summary, never a key: the tests' null
    distribution (a uniformly random direction's cosine) is exact."""

    classes: int
    #: binary: the suspect's deviation and the model's direction (whitened space);
    #: K classes: the suspect's filtered coefficients and the model's directions.
    found: npt.NDArray[np.float64]
    own: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float64] | None = None

    @classmethod
    def fit(
        cls,
        mark: Watermark,
        rows: Any,
        suspect_scores: Any,
        original_scores: Any,
    ) -> TiltProbe | None:
        """None when ``mark`` has no tilt, the suspect shows no scores of the model's shape,
        or too few usable rows are left to fit (four per feature)."""
        summary = mark.summary
        if (
            mark.tilt <= 0
            or summary is None
            or suspect_scores is None
            or np.shape(suspect_scores) != np.shape(original_scores)
            or np.shape(original_scores)[1:] != (mark.classes,)
        ):
            return None
        data = np.asarray(rows, dtype=np.float64)
        if mark.classes == 2:
            theirs, ours = log_odds(suspect_scores), log_odds(original_scores)
            usable = (np.abs(theirs) < _LOGIT_CAP) & (np.abs(ours) < _LOGIT_CAP)
            if usable.sum() < 4 * summary.width:
                return None
            z = summary.whiten(data[usable])
            own = deviation(ours[usable], np.zeros(int(usable.sum())), z)
            return cls(2, deviation(theirs[usable], ours[usable], z), own)
        if len(data) < 4 * summary.width:
            return None
        z, basis = summary.whiten(data), mark.basis()
        weight = boundary_weight(original_scores, z, basis)
        own = model_directions(coefficients(original_scores, z, basis), weight)
        found = centred(weight @ coefficients(suspect_scores, z, basis)).ravel()
        return cls(mark.classes, found - own @ (own.T @ found), own, weight)

    def test(self, partner: str, mark: Watermark) -> Evidence:
        """Cosine between the suspect's deviation and ``partner``'s tilt, the model's own
        directions projected out of both."""
        if self.classes == 2:
            return tilt_test(partner, self.found, self.own, mark.direction())
        h = mark.tilt_seed().ravel()
        h = h - self.own @ (self.own.T @ h)
        dims = len(h) - mark.tilt_seed().shape[0] - self.own.shape[1]  # centred, then less W
        norms = float(np.linalg.norm(self.found) * np.linalg.norm(h))
        cosine = float(self.found @ h / norms) if norms > 0 else 0.0
        return Evidence(partner, "tilt", cosine, 0.0, dims, _cosine_tail(cosine, dims))
