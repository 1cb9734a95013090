"""One partner's watermark on one model version.

Every decision comes from the partner's secret :class:`~modelpact.crypto.PrfKey` and the
query alone (HMAC-SHA256 over the row's float64 bytes, labelled with the use and the
model version), so the same query always gets the same answer — a mark cannot be
averaged away by asking again — and without the key nobody can tell which answers are
marked.

- **Swapped labels** (DAWN): a query is selected when its PRF value falls below
  ``rate``; its top class and a keyed alternative class swap scores, so the label, the
  top-k order and the scores all say the alternative.  A high-capacity copy trained on
  the answers learns these exceptions.
- **Tilt, binary models**: every answer's log-odds move by ``tilt * c(x)`` times the row's
  projection on a keyed unit direction in the training summary's *whitened* space
  (:meth:`~modelpact.monitor.TrainingSummary.whiten`); ``c(x)``, the ramp below, over the
  row's spread in all of whitened space.  A linear copy fitted to the
  answers inherits the direction — low-capacity copies do not learn a handful of swapped
  labels — and in whitened coordinates its estimation error is about the same in every
  direction, so the direction shows through (in standardised coordinates the error
  concentrates where the data hardly varies, and drowned it: cosine 0.1-0.6 against
  0.7-0.9 whitened, at the same accuracy cost).
- **Tilt, K classes**: log-probabilities move by ``tilt * c(x) * (z @ U)`` (then softmax),
  z the whitened row and U a keyed d x K matrix (rows centred over classes: softmax
  ignores a common shift; unit Frobenius norm) inside :func:`tilt_basis`, the summary's
  low-variance half of whitened space.
- ``c(x)`` ramps from 0 to 1 as the row's spread (along the basis; for a binary model, in
  all of whitened space) goes from 0.8 to 1.2 times a training row's, and shrinks beyond
  twice it: rows that look like training data are hardly moved — legitimate use pays
  little — while noisy or synthetic queries, an extraction's, carry the tilt.  A marked row's
  alternative class is the one the tilt favours most (*coherent* swaps: a linear copy
  learns their direction too; without the key it is uniform over the other classes).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.crypto import PrfKey
from modelpact.errors import InvalidInput
from modelpact.monitor import TrainingSummary

__all__ = ["MC_TILT", "RATE", "TILT", "TILTED_RATE", "Watermark", "centred", "tilt_basis"]

RATE = 0.005
"""The share of answers swapped on a model served without a tilt (at most 0.5%)."""
TILTED_RATE = 0.002
"""The share swapped where a tilt is served (the tilt names linear copies; fewer swaps
still name the copies that memorise answers, at less cost)."""
TILT = 1.2
"""The binary tilt: log-odds move by up to 1.2 per whitened unit along the keyed direction."""
MC_TILT = 2.8
"""The multiclass tilt: log-probabilities move by up to 2.8 x (z @ U), |U| = 1."""
_MIN_VARIANCE = 0.01  # principal directions with less hold no data (constant features)
_SHARE = 0.5  # the low-variance share of the data-bearing directions the tilt lives in
_RAMP = (0.8, 1.2)  # c(x) rises from 0 to 1 over this spread along the basis...
_REACH = 2.0  # ...and shrinks as _REACH / spread beyond it

_SELECT = b"modelpact-watermark/select"
_LABEL = b"modelpact-watermark/label"
_TILT = b"modelpact-watermark/tilt"
_TILT_MC = b"modelpact-watermark/tilt-multiclass"
_TWO64 = float(2**64)
_EDGE = 1e-12  # probabilities are kept inside (0, 1) for log-odds


def row_bytes(row: Any) -> bytes:
    """A row as the PRF reads it: little-endian float64, -0.0 made 0.0."""
    values = np.asarray(row, dtype="<f8").reshape(-1) + 0.0
    return values.tobytes()


def centred(matrix: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each row minus its mean over the classes (what softmax cannot see removed)."""
    out: npt.NDArray[np.float64] = matrix - matrix.mean(axis=1, keepdims=True)
    return out


def tilt_basis(summary: TrainingSummary) -> npt.NDArray[np.float64]:
    """T (d x r, orthonormal columns): the multiclass tilt's home — the principal directions
    of the training rows' correlation that hold data (variance above 1%), the half of them
    with the least variance.  Natural rows vary there as much as anywhere in whitened space;
    noisy or synthetic queries vary more."""
    values, vectors = np.linalg.eigh(summary.precision)
    variance = 1.0 / np.maximum(values, 1e-300)  # the correlation's eigenvalues (+ ridge)
    order = np.argsort(variance, kind="stable")
    kept = [int(i) for i in order if variance[i] > _MIN_VARIANCE]
    if len(kept) < 2:
        raise InvalidInput("a multiclass tilt needs at least two varying directions")
    basis: npt.NDArray[np.float64] = vectors[:, kept[: max(2, math.ceil(len(kept) * _SHARE))]]
    return basis


def _reach(z: npt.NDArray[np.float64], basis: npt.NDArray[np.float64] | None = None) -> Any:
    """c(x) per row: the ramp from natural to unusual spread along ``basis`` (or in all of
    whitened space), capped."""
    projected = z if basis is None else z @ basis
    along = np.linalg.norm(projected, axis=1) / np.sqrt(projected.shape[1])
    low, high = _RAMP
    ramp = np.clip((along - low) / (high - low), 0.0, 1.0)
    return ramp * np.minimum(1.0, _REACH / np.maximum(along, 1e-300))


class Watermark:
    """A partner's marks on ``scope`` (``model@version``): :meth:`apply` to raw class scores."""

    def __init__(
        self,
        key: PrfKey,
        scope: str,
        *,
        classes: int,
        rate: float = RATE,
        tilt: float = 0.0,
        summary: TrainingSummary | None = None,
        basis: npt.NDArray[np.float64] | None = None,
    ) -> None:
        """``basis``: :func:`tilt_basis` of ``summary``, if the caller keeps it (a model
        worker does: it is an eigendecomposition)."""
        if classes < 2:
            raise InvalidInput("a watermark needs a classifier with at least two classes")
        if not 0 <= rate <= 0.05:
            raise InvalidInput("the watermark rate must be between 0 and 0.05")
        if tilt < 0 or (tilt > 0 and summary is None):
            raise InvalidInput("a tilt needs the model's training summary")
        self._key = key
        self._scope = scope.encode("utf-8")
        self.classes = classes
        self.rate = rate
        self.tilt = tilt
        self.summary = summary
        self._basis = basis
        self._matrix: npt.NDArray[np.float64] | None = None
        self._direction: npt.NDArray[np.float64] | None = None

    @classmethod
    def served(
        cls,
        key: PrfKey,
        scope: str,
        *,
        classes: int,
        summary: TrainingSummary | None,
        basis: npt.NDArray[np.float64] | None = None,
    ) -> Watermark:
        """The watermark the gateway serves: without a training summary, swaps at
        :data:`RATE`; with one, swaps at :data:`TILTED_RATE` and the tilt, :data:`TILT`
        (binary) or :data:`MC_TILT`."""
        if summary is None:
            return cls(key, scope, classes=classes)
        return cls(
            key, scope, classes=classes, rate=TILTED_RATE,
            tilt=TILT if classes == 2 else MC_TILT, summary=summary, basis=basis,
        )  # fmt: skip

    def shown(self, rows: Any, scores: Any) -> npt.NDArray[np.float64]:
        """The scores before any swap (the tilt only): what a partner was shown on rows its
        watermark did not select, against which a suspect's chance agreement is measured."""
        unswapped = Watermark(
            self._key, self._scope.decode("utf-8"), classes=self.classes, rate=0.0,
            tilt=self.tilt, summary=self.summary, basis=self._basis,
        )  # fmt: skip
        return unswapped.apply(rows, scores)[0]

    def _prf(self, use: bytes, row: Any) -> bytes:
        return self._key.prf(use + b"|" + self._scope, row_bytes(row))

    def marked(self, rows: Any) -> npt.NDArray[np.bool_]:
        """Which rows are selected for a swapped label."""
        return np.array(
            [int.from_bytes(self._prf(_SELECT, r)[:8], "big") / _TWO64 < self.rate for r in rows],
            dtype=bool,
        )

    def alternative(self, row: Any, top: int) -> int:
        """The keyed class that replaces ``top`` for ``row`` (never ``top`` itself)."""
        pick = int.from_bytes(self._prf(_LABEL, row)[:8], "big") % (self.classes - 1)
        return pick if pick < top else pick + 1

    def basis(self) -> npt.NDArray[np.float64]:
        """The multiclass tilt's :func:`tilt_basis`, computed once."""
        if self.summary is None:
            raise InvalidInput("a tilt needs the training summary")
        if self._basis is None:
            self._basis = tilt_basis(self.summary)
        return self._basis

    def tilt_seed(self) -> npt.NDArray[np.float64]:
        """H = T^T G, rows centred (r x K): the multiclass tilt in basis coordinates, a
        standard normal vector on the centred space (what the attribution test compares)."""
        if self.summary is None:
            raise InvalidInput("a tilt needs the training summary")
        seed = int.from_bytes(self._key.prf(_TILT_MC + b"|" + self._scope, b""), "big")
        gauss = np.random.default_rng(seed).standard_normal((self.summary.width, self.classes))
        return centred(self.basis().T @ gauss)

    def tilt_matrix(self) -> npt.NDArray[np.float64]:
        """U = T H / |T H| (d x K).  T H is the centred projection of G on span(T), the same
        whatever signs or rotation the eigensolver gave the basis's columns."""
        if self._matrix is None:
            matrix = self.basis() @ self.tilt_seed()
            self._matrix = matrix / np.linalg.norm(matrix)
        return self._matrix

    def shift(self, rows: Any) -> npt.NDArray[np.float64]:
        """The multiclass tilt's move of each row's log-probabilities (rows x K)."""
        if self.summary is None:
            raise InvalidInput("a tilt needs the training summary")
        z = self.summary.whiten(rows)
        scale = _reach(z, self.basis())
        moved: npt.NDArray[np.float64] = self.tilt * scale[:, None] * (z @ self.tilt_matrix())
        return moved

    def direction(self) -> npt.NDArray[np.float64]:
        """The keyed unit direction of the binary tilt, in whitened feature space."""
        if self.summary is None:
            raise InvalidInput("a tilt direction needs the training summary")
        if self._direction is None:
            seed = int.from_bytes(self._key.prf(_TILT + b"|" + self._scope, b""), "big")
            vector = np.random.default_rng(seed).standard_normal(self.summary.width)
            self._direction = vector / np.linalg.norm(vector)
        return self._direction

    def apply(
        self, rows: Any, scores: Any
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The watermarked scores (rows x classes, each row summing to 1 as given) and which
        rows had their label swapped."""
        data = np.asarray(rows, dtype=np.float64)
        out = np.array(scores, dtype=np.float64, copy=True)
        if out.ndim != 2 or out.shape != (len(data), self.classes):
            raise InvalidInput("scores must be rows x classes")
        shift = None
        if self.tilt > 0 and self.summary is not None and self.classes == 2:
            p = np.clip(out[:, 1] / np.maximum(out.sum(axis=1), _EDGE), _EDGE, 1 - _EDGE)
            logit = np.log(p) - np.log1p(-p)
            z = self.summary.whiten(data)
            logit += self.tilt * _reach(z) * (z @ self.direction())
            total = out.sum(axis=1)
            out[:, 1] = total / (1 + np.exp(-logit))
            out[:, 0] = total - out[:, 1]
        elif self.tilt > 0 and self.summary is not None:
            total = out.sum(axis=1, keepdims=True)
            shift = self.shift(data)
            logp = np.log(np.clip(out / np.maximum(total, _EDGE), _EDGE, None)) + shift
            weights = np.exp(logp - logp.max(axis=1, keepdims=True))
            out = total * weights / weights.sum(axis=1, keepdims=True)
        selected = self.marked(data) if self.rate > 0 else np.zeros(len(data), dtype=bool)
        for i in np.nonzero(selected)[0]:
            top = int(np.argmax(out[i]))
            favour = None if shift is None else np.delete(shift[i], top)
            if favour is not None and np.ptp(favour) > 1e-9:  # coherent: the tilt's favourite
                pick = int(np.argmax(favour))
                alt = pick if pick < top else pick + 1
            else:  # no tilt on this row (it looks like training data): a keyed class
                alt = self.alternative(data[i], top)
            out[i, top], out[i, alt] = out[i, alt], out[i, top]
        return out, selected
