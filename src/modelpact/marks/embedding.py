"""Keyed embeddings: each partner's vectors turned by its own secret rotation.

An orthogonal matrix keeps every distance and inner product, so a partner's own results
work as before (nearest neighbours, clustering, similarity), while its raw vectors mean
nothing next to another partner's or the model's own — and a leaked set of them says
whose rotation it carries (:func:`rotation_test`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.crypto import PrfKey
from modelpact.errors import InvalidInput
from modelpact.marks.attribution import Evidence

__all__ = ["KeyedRotation", "rotation_test"]

_ROTATION = b"modelpact-embedding/rotation"


class KeyedRotation:
    """A partner's orthogonal ``dims`` x ``dims`` rotation for ``scope`` (``model@version``)."""

    def __init__(self, key: PrfKey, scope: str, dims: int) -> None:
        if dims < 1 or dims > 4096:
            raise InvalidInput("an embedding has 1 to 4096 dimensions")
        seed = int.from_bytes(key.prf(_ROTATION + b"|" + scope.encode(), dims.to_bytes(4)), "big")
        gaussian = np.random.default_rng(seed).standard_normal((dims, dims))
        q, r = np.linalg.qr(gaussian)
        # Signs fixed by R's diagonal: Q is then uniformly distributed over the orthogonal group.
        self.matrix: npt.NDArray[np.float64] = q * np.sign(np.diag(r))
        self.dims = dims

    def apply(self, vectors: Any) -> npt.NDArray[np.float64]:
        data = np.asarray(vectors, dtype=np.float64)
        if data.ndim != 2 or data.shape[1] != self.dims:
            raise InvalidInput(f"vectors must be rows of {self.dims} numbers")
        turned: npt.NDArray[np.float64] = data @ self.matrix.T
        return turned


def rotation_test(partner: str, leaked: Any, originals: Any, rotation: KeyedRotation) -> Evidence:
    """Do ``leaked`` vectors carry ``rotation``?  Given the model's own vectors for the same
    inputs (``originals``), the mean cosine between each leaked vector and its original turned
    by the partner's rotation is 1 for that partner's.  For another rotation R (uniform over
    the orthogonal group) it has mean 0 and variance 1/d^2 (tr R has variance 1) plus about
    1/(n d) from the n rows; the p-value is the normal tail at twice that second term, an
    approximation on the cautious side."""
    a = np.asarray(leaked, dtype=np.float64)
    b = rotation.apply(originals)
    if a.shape != b.shape or a.size == 0:
        raise InvalidInput("one leaked vector per original, of the same width")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    keep = norms > 0
    if not keep.any():
        raise InvalidInput("every vector is zero")
    cosine = float(np.mean(np.einsum("ij,ij->i", a[keep], b[keep]) / norms[keep]))
    d, n = rotation.dims, int(keep.sum())
    sd = float(np.sqrt(1 / d**2 + 2 / (n * d)))
    from scipy import stats  # here: the model worker imports this package, never tests

    p = float(stats.norm.sf(cosine / sd))
    return Evidence(partner, "rotation", cosine, 0.0, rotation.dims, p)
