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
- **Tilt** (binary models): every answer's log-odds move by ``tilt`` times the row's
  projection on a keyed unit direction in the training summary's *whitened* space
  (:meth:`~modelpact.monitor.TrainingSummary.whiten`).  A linear copy fitted to the
  answers inherits the direction — low-capacity copies do not learn a handful of swapped
  labels — and in whitened coordinates its estimation error is about the same in every
  direction, so the direction shows through (in standardised coordinates the error
  concentrates where the data hardly varies, and drowned it: cosine 0.1-0.6 against
  0.7-0.9 whitened, at the same accuracy cost).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.crypto import PrfKey
from modelpact.errors import InvalidInput
from modelpact.monitor import TrainingSummary

__all__ = ["RATE", "TILT", "Watermark"]

RATE = 0.005
"""The default share of answers swapped (at most 0.5%)."""
TILT = 0.85
"""The tilt served on binary models with a training summary: log-odds moved by 0.85 per
whitened unit along the keyed direction (measured: linear copies named 20/20 at 0.49 pp)."""

_SELECT = b"modelpact-watermark/select"
_LABEL = b"modelpact-watermark/label"
_TILT = b"modelpact-watermark/tilt"
_TWO64 = float(2**64)
_EDGE = 1e-12  # probabilities are kept inside (0, 1) for log-odds


def row_bytes(row: Any) -> bytes:
    """A row as the PRF reads it: little-endian float64, -0.0 made 0.0."""
    values = np.asarray(row, dtype="<f8").reshape(-1) + 0.0
    return values.tobytes()


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
    ) -> None:
        if classes < 2:
            raise InvalidInput("a watermark needs a classifier with at least two classes")
        if not 0 <= rate <= 0.05:
            raise InvalidInput("the watermark rate must be between 0 and 0.05")
        if tilt < 0 or (tilt > 0 and (classes != 2 or summary is None)):
            raise InvalidInput("a tilt needs a binary model and its training summary")
        self._key = key
        self._scope = scope.encode("utf-8")
        self.classes = classes
        self.rate = rate
        self.tilt = tilt
        self.summary = summary

    @classmethod
    def served(
        cls, key: PrfKey, scope: str, *, classes: int, summary: TrainingSummary | None
    ) -> Watermark:
        """The watermark the gateway serves: swaps at :data:`RATE`, and the :data:`TILT`
        where the model is binary and was registered with its training summary."""
        tilt = TILT if classes == 2 and summary is not None else 0.0
        return cls(key, scope, classes=classes, tilt=tilt, summary=summary if tilt else None)

    def shown(self, rows: Any, scores: Any) -> npt.NDArray[np.float64]:
        """The scores before any swap (the tilt only): what a partner was shown on rows its
        watermark did not select, against which a suspect's chance agreement is measured."""
        unswapped = Watermark(
            self._key, self._scope.decode("utf-8"), classes=self.classes, rate=0.0,
            tilt=self.tilt, summary=self.summary,
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

    def direction(self) -> npt.NDArray[np.float64]:
        """The keyed unit direction of the tilt, in whitened feature space."""
        if self.summary is None:
            raise InvalidInput("a tilt direction needs the training summary")
        seed = int.from_bytes(self._key.prf(_TILT + b"|" + self._scope, b""), "big")
        vector = np.random.default_rng(seed).standard_normal(self.summary.width)
        unit: npt.NDArray[np.float64] = vector / np.linalg.norm(vector)
        return unit

    def apply(
        self, rows: Any, scores: Any
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """The watermarked scores (rows x classes, each row summing to 1 as given) and which
        rows had their label swapped."""
        data = np.asarray(rows, dtype=np.float64)
        out = np.array(scores, dtype=np.float64, copy=True)
        if out.ndim != 2 or out.shape != (len(data), self.classes):
            raise InvalidInput("scores must be rows x classes")
        if self.tilt > 0 and self.summary is not None:
            p = np.clip(out[:, 1] / np.maximum(out.sum(axis=1), _EDGE), _EDGE, 1 - _EDGE)
            logit = np.log(p) - np.log1p(-p)
            logit += self.tilt * (self.summary.whiten(data) @ self.direction())
            total = out.sum(axis=1)
            out[:, 1] = total / (1 + np.exp(-logit))
            out[:, 0] = total - out[:, 1]
        selected = self.marked(data) if self.rate > 0 else np.zeros(len(data), dtype=bool)
        for i in np.nonzero(selected)[0]:
            top = int(np.argmax(out[i]))
            alt = self.alternative(data[i], top)
            out[i, top], out[i, alt] = out[i, alt], out[i, top]
        return out, selected
