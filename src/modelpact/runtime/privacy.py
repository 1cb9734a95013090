"""Class scores released with calibrated noise: OpenDP's Laplace mechanism.

A classifier's scores are a probability vector, and any two such vectors are at most 2
apart in L1.  Adding Laplace noise of scale ``2 / epsilon`` to each score makes every
answer an ``epsilon``-differentially private release of the score vector: whatever the
model's true scores were, the answer is at most ``e^epsilon`` times likelier under them
than under any others.  The noisy vector is then clipped to [0, 1] and renormalised —
post-processing, which costs no privacy.  The partner's budget (the charter's
``budget``) is spent ``epsilon`` per answered row (basic composition), elsewhere.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput

__all__ = ["SENSITIVITY", "noised"]

SENSITIVITY = 2.0
"""L1 distance between any two probability vectors, at most."""


@functools.lru_cache(maxsize=32)
def _mechanism(epsilon: float) -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")  # OpenDP's floating-point Laplace sampler
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    mechanism = dp.m.make_laplace(*space, scale=SENSITIVITY / epsilon)
    # OpenDP's own privacy map must agree that this noise gives epsilon.
    if mechanism.map(SENSITIVITY) > epsilon * (1 + 1e-9):  # type: ignore[no-untyped-call]
        raise InvalidInput(f"the Laplace mechanism does not reach epsilon {epsilon:g}")
    return mechanism


def noised(scores: Any, epsilon: float) -> npt.NDArray[np.float64]:
    """Each row of ``scores`` (a probability vector) through the Laplace mechanism."""
    if not 0 < epsilon <= 100:
        raise InvalidInput("epsilon must be in (0, 100]")
    rows = np.asarray(scores, dtype=np.float64)
    mechanism = _mechanism(float(epsilon))
    out = np.array([mechanism([float(v) for v in row]) for row in rows], dtype=np.float64)
    out = np.clip(out, 0.0, 1.0)
    total = out.sum(axis=1, keepdims=True)
    uniform = np.full_like(out, 1.0 / out.shape[1])
    result: npt.NDArray[np.float64] = np.where(total > 0, out / np.maximum(total, 1e-300), uniform)
    return result
