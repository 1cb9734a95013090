"""Streaming extraction detectors over one partner's queries, with bounded memory.

Each detector takes queries as they come (:meth:`observe`) and returns an
:class:`Alarm` — the detector, its statistic, the threshold it crossed and the
window it looked at — when its statistic crosses its threshold, else ``None``.
State is a JSON-ready dict (``to_state`` / ``from_state``).
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from modelpact.errors import InvalidInput
from modelpact.monitor.summary import TrainingSummary

__all__ = ["Alarm", "Coverage", "Prada", "Volume"]


@dataclass(frozen=True, slots=True)
class Alarm:
    """What a detector saw: the evidence an audit entry carries."""

    detector: str
    statistic: float
    threshold: float
    window: int  # how many queries (or days) the statistic covers
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "statistic": round(self.statistic, 6),
            "threshold": self.threshold,
            "window": self.window,
            "detail": self.detail,
        }


class Prada:
    """PRADA (Juuti et al., EuroS&P 2019), per partner.

    For each query, the minimum L2 distance (in training-standardised units) to the
    earlier queries the model gave the same class is recorded; the query joins that
    class's growing set when that distance is above the class's mean minus one
    standard deviation.  Natural queries give roughly normal distances; synthetic
    ones (line searches, perturbations of a few seeds) do not.  Once ``min_queries``
    distances are in, a Shapiro-Wilk statistic below ``delta`` is an alarm.  The
    default ``delta`` is provisional: on the breast-cancer hold-out rows natural
    traffic gives W 0.77-0.83, perturbation and line-search probes 0.12-0.34; random
    probes are normal-looking here and are :meth:`TrainingSummary.distance`'s to catch.
    Memory: at most ``max_points`` points per class and ``window`` distances.
    """

    name = "prada"

    def __init__(
        self,
        summary: TrainingSummary,
        *,
        delta: float = 0.6,
        min_queries: int = 100,
        window: int = 1000,
        max_points: int = 2000,
    ) -> None:
        if not 0 < delta < 1 or min_queries < 3 or window < min_queries or max_points < 1:
            raise InvalidInput("PRADA needs 0 < delta < 1 and 3 <= min_queries <= window")
        self.summary = summary
        self.delta = delta
        self.min_queries = min_queries
        self.window = window
        self.max_points = max_points
        self._points: dict[str, deque[npt.NDArray[np.float64]]] = {}
        self._distances: dict[str, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=window)

    def observe(self, row: Any, label: str | int) -> Alarm | None:
        point = self.summary.standardise([row])[0]
        key = str(label)
        points = self._points.setdefault(key, deque(maxlen=self.max_points))
        distances = self._distances.setdefault(key, deque(maxlen=self.window))
        if points:
            nearest = float(np.min(np.linalg.norm(np.asarray(points) - point, axis=1)))
            distances.append(nearest)
            self._all.append(nearest)
            threshold = float(np.mean(distances) - np.std(distances))
            if nearest > threshold:
                points.append(point)
        else:
            points.append(point)
        return self.check()

    def statistic(self) -> float | None:
        """Shapiro-Wilk's W over the recorded distances, once there are enough."""
        if len(self._all) < self.min_queries:
            return None
        values = np.asarray(self._all)
        if float(np.ptp(values)) == 0.0:
            return 0.0  # every distance the same: as far from natural as it gets
        return float(stats.shapiro(values).statistic)

    def check(self) -> Alarm | None:
        w = self.statistic()
        if w is None or w >= self.delta:
            return None
        return Alarm(
            self.name,
            w,
            self.delta,
            len(self._all),
            "minimum distances between successive queries are far from normal",
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "points": {k: [p.tolist() for p in v] for k, v in self._points.items()},
            "distances": {k: list(v) for k, v in self._distances.items()},
            "all": list(self._all),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._points = {
                str(k): deque((np.asarray(p, dtype=np.float64) for p in v), self.max_points)
                for k, v in state["points"].items()
            }
            self._distances = {
                str(k): deque((float(d) for d in v), self.window)
                for k, v in state["distances"].items()
            }
            self._all = deque((float(d) for d in state["all"]), self.window)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InvalidInput("not a PRADA state") from None


class Coverage:
    """How fast a partner's queries fill the input space.

    Each query is projected on the training data's main principal directions
    (:meth:`TrainingSummary.project`) and cut into ``bins`` bins per direction over
    ±3 spreads; the cell it lands in is hashed into ``buckets`` bits, and distinct
    cells are estimated by linear counting (memory: the bitmap).  Natural queries
    revisit the populated cells; a probe filling the space along those directions
    does not.  The statistic is distinct cells per query over the partner's queries;
    above ``threshold`` after ``min_queries`` queries is an alarm.
    """

    name = "coverage"

    def __init__(
        self,
        summary: TrainingSummary,
        *,
        bins: int = 8,
        buckets: int = 1 << 16,
        threshold: float = 0.85,
        min_queries: int = 200,
    ) -> None:
        if bins < 2 or buckets < 64 or not 0 < threshold <= 1 or min_queries < 1:
            raise InvalidInput("coverage needs bins >= 2, buckets >= 64, 0 < threshold <= 1")
        self.summary = summary
        self.bins = bins
        self.buckets = buckets
        self.threshold = threshold
        self.min_queries = min_queries
        self._bitmap = bytearray(buckets // 8)
        self._set = 0  # bits set in the bitmap, kept as they are set
        self.queries = 0

    def _bucket(self, row: Any) -> int:
        projected = self.summary.project([row])[0]
        cells = np.clip(((projected + 3.0) / 6.0 * self.bins).astype(np.int64), 0, self.bins - 1)
        digest = hashlib.blake2b(cells.astype(np.int8).tobytes(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.buckets

    def distinct(self) -> float:
        """The estimated number of distinct cells seen (linear counting)."""
        empty = self.buckets - self._set
        if empty == 0:
            return float(self.buckets)  # saturated: at least this many
        return -self.buckets * math.log(empty / self.buckets)

    def observe(self, row: Any) -> Alarm | None:
        bucket = self._bucket(row)
        byte, bit = divmod(bucket, 8)
        if not self._bitmap[byte] & (1 << bit):
            self._bitmap[byte] |= 1 << bit
            self._set += 1
        self.queries += 1
        return self.check()

    def statistic(self) -> float | None:
        if self.queries < self.min_queries:
            return None
        return self.distinct() / self.queries

    def check(self) -> Alarm | None:
        ratio = self.statistic()
        if ratio is None or ratio <= self.threshold:
            return None
        return Alarm(
            self.name,
            ratio,
            self.threshold,
            self.queries,
            "almost every query lands in a cell of the input space not queried before",
        )

    def to_state(self) -> dict[str, Any]:
        return {"bitmap": self._bitmap.hex(), "queries": self.queries}

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            bitmap = bytearray.fromhex(state["bitmap"])
            queries = int(state["queries"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("not a coverage state") from None
        if len(bitmap) != self.buckets // 8 or queries < 0:
            raise InvalidInput("a coverage state of another size")
        self._bitmap, self.queries = bitmap, queries
        self._set = sum(bin(byte).count("1") for byte in bitmap)


class Volume:
    """A day's queries against the partner's own history.

    Keeps the last ``days`` daily counts; a day whose count is more than
    ``sigmas`` standard deviations above the history's mean (and above
    ``floor``, so a quiet partner's first busy day is not an incident) is an alarm.
    """

    name = "volume"

    def __init__(self, *, days: int = 28, sigmas: float = 4.0, floor: int = 1000) -> None:
        if days < 3 or sigmas <= 0 or floor < 0:
            raise InvalidInput("volume needs days >= 3, sigmas > 0 and floor >= 0")
        self.days = days
        self.sigmas = sigmas
        self.floor = floor
        self._history: deque[int] = deque(maxlen=days)
        self.today = 0

    def end_day(self) -> None:
        """Close the current day: its count joins the history."""
        self._history.append(self.today)
        self.today = 0

    def observe(self, rows: int = 1) -> Alarm | None:
        self.today += rows
        return self.check()

    def threshold(self) -> float | None:
        if len(self._history) < 3:
            return None
        history = np.asarray(self._history, dtype=np.float64)
        return max(float(history.mean() + self.sigmas * history.std()), float(self.floor))

    def check(self) -> Alarm | None:
        limit = self.threshold()
        if limit is None or self.today <= limit:
            return None
        return Alarm(
            self.name,
            float(self.today),
            round(limit, 3),
            len(self._history),
            f"today's volume is far above this partner's last {len(self._history)} days",
        )

    def to_state(self) -> dict[str, Any]:
        return {"history": list(self._history), "today": self.today}

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._history = deque((int(c) for c in state["history"]), self.days)
            self.today = int(state["today"])
        except (KeyError, TypeError, ValueError):
            raise InvalidInput("not a volume state") from None
