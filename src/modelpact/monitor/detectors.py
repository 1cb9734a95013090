"""Streaming extraction detectors over one partner's queries, with bounded memory.

Each detector takes queries as they come (:meth:`observe`) and returns an
:class:`Alarm` — the detector, its statistic, the threshold it crossed and the
window it looked at — when its statistic crosses its threshold, else ``None``.
State is a JSON-ready dict (``to_state`` / ``from_state``).
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput
from modelpact.monitor.summary import TrainingSummary

__all__ = [
    "DEFAULT_DELTA",
    "Alarm",
    "Boundary",
    "Coverage",
    "Outliers",
    "Perturbation",
    "Prada",
    "Volume",
    "calibrate_prada",
    "margins",
]


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


#: PRADA measures in standardised units clipped to this: a rare value of a feature that
#: hardly varies in training (a corner pixel) must not make one distance dominate W.  With
#: it, natural digits give W 0.93-0.97 on training and held-out rows alike (0.60-0.84 on
#: held-out rows without); breast-cancer rows 0.78-0.92.
_CLIP = 3.0


class Prada:
    """PRADA (Juuti et al., EuroS&P 2019), per partner.

    For each query, the minimum L2 distance (in training-standardised units) to the
    earlier queries the model gave the same class is recorded; the query joins that
    class's growing set when that distance is above the class's mean minus one
    standard deviation (distances in standardised units, each clipped to ±3).  Natural
    queries give roughly normal distances; synthetic
    ones (line searches, perturbations of a few seeds) do not.  Once ``min_queries``
    distances are in, a Shapiro-Wilk statistic below ``delta`` is an alarm.  How
    normal natural traffic looks depends on the data (breast-cancer hold-out rows give
    W 0.77-0.83, natural digits much less), so ``delta`` defaults to the summary's
    calibration (:func:`calibrate_prada`, made when the model is registered), else
    :data:`DEFAULT_DELTA`.  Perturbation and line-search probes give 0.12-0.34;
    random probes look normal here and are :class:`Outliers`' to catch.
    Memory: at most ``max_points`` points (float32) for each of at most ``max_classes``
    classes, and ``window`` distances.
    """

    name = "prada"

    def __init__(
        self,
        summary: TrainingSummary,
        *,
        delta: float | None = None,
        min_queries: int = 100,
        window: int = 1000,
        max_points: int = 500,
        max_classes: int = 64,
    ) -> None:
        if delta is None:
            delta = summary.prada_delta if summary.prada_delta is not None else DEFAULT_DELTA
        if not 0 < delta < 1 or min_queries < 3 or window < min_queries or max_points < 1:
            raise InvalidInput("PRADA needs 0 < delta < 1 and 3 <= min_queries <= window")
        self.summary = summary
        self.delta = delta
        self.min_queries = min_queries
        self.window = window
        self.max_points = max_points
        self.max_classes = max_classes
        self._classes: dict[str, _Growing] = {}
        self._all: deque[float] = deque(maxlen=window)
        self.every = 10
        self._added = 0  # distances recorded since this object was made
        self._cached: tuple[int, float] | None = None  # (_added, W) when last computed

    def _growing(self, label: str | int) -> _Growing:
        key = str(label)
        growing = self._classes.get(key)
        if growing is None:
            if len(self._classes) >= self.max_classes:
                key = "\x00other"  # bounded memory whatever labels a model answers with
                growing = self._classes.get(key)
            if growing is None:
                growing = self._classes[key] = _Growing(
                    self.max_points, self.summary.width, self.window
                )
        return growing

    def observe(self, row: Any, label: str | int) -> Alarm | None:
        self.observe_standard(self.summary.standardise([row])[0], label)
        return self.check()

    def observe_standard(self, point: npt.NDArray[np.float64], label: str | int) -> float | None:
        """Record one query already standardised (:meth:`TrainingSummary.standardise`);
        its distance to the nearest earlier query of its class (None: first, or a repeat)."""
        nearest = self._growing(label).add(np.clip(point, -_CLIP, _CLIP))
        if nearest is not None:
            self._all.append(nearest)
            self._added += 1
        return nearest

    @property
    def recorded(self) -> int:
        """How many distances the statistic covers now."""
        return len(self._all)

    def statistic(self) -> float | None:
        """Shapiro-Wilk's W over the recorded distances, once there are enough."""
        if len(self._all) < self.min_queries:
            return None
        values = np.asarray(self._all)
        # Every distance the same: as far from natural as it gets.
        from scipy import stats  # here: the model worker imports this module and never tests

        w = 0.0 if float(np.ptp(values)) == 0.0 else float(stats.shapiro(values).statistic)
        self._cached = (self._added, w)
        return w

    def _recent(self) -> float | None:
        """:meth:`statistic`, recomputed once every ``every`` new distances (a test costs
        ~0.2 ms, more than everything else a query costs the monitor); in between, the last
        value stands."""
        if self._cached is not None and self._added - self._cached[0] < self.every:
            return self._cached[1] if len(self._all) >= self.min_queries else None
        return self.statistic()

    def check(self) -> Alarm | None:
        w = self._recent()
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
            "classes": {k: v.to_state() for k, v in self._classes.items()},
            "all": list(self._all),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            classes = {
                str(k): _Growing.from_state(v, self.max_points, self.summary.width, self.window)
                for k, v in state["classes"].items()
            }
            self._all = deque((float(d) for d in state["all"]), self.window)
            self._cached = None
        except (KeyError, TypeError, ValueError, AttributeError):  # binascii.Error: ValueError
            raise InvalidInput("not a PRADA state") from None
        self._classes = classes


class _Growing:
    """One class's growing set of queries (a ring of at most ``size`` points) and its distances.

    Points are kept as float32: a distance between standardised rows needs no more, and it
    halves what a partner's state costs.
    """

    __slots__ = ("count", "distances", "next", "points")

    def __init__(self, size: int, width: int, window: int) -> None:
        self.points = np.zeros((size, width), dtype=np.float32)
        self.count = 0
        self.next = 0
        self.distances: deque[float] = deque(maxlen=window)

    def add(self, point: npt.NDArray[np.float64]) -> float | None:
        """The minimum distance to the set (None for its first point and for a repeat); grows
        the set when the point is farther than the class's mean minus one standard deviation.

        Repeats are left out: a partner scoring the same records again is common and
        benign, and teaches an attacker nothing."""
        if self.count == 0:
            self._append(point)
            return None
        gaps = self.points[: self.count] - point.astype(np.float32)
        nearest = float(np.sqrt(np.min(np.einsum("ij,ij->i", gaps, gaps))))
        if nearest == 0.0:
            return None  # the same query again: it tells an attacker nothing new
        self.distances.append(nearest)
        values = np.fromiter(self.distances, dtype=np.float64, count=len(self.distances))
        if nearest > float(values.mean() - values.std()):
            self._append(point)
        return nearest

    def _append(self, point: npt.NDArray[np.float64]) -> None:
        self.points[self.next] = point
        self.next = (self.next + 1) % self.points.shape[0]
        self.count = min(self.count + 1, self.points.shape[0])

    def to_state(self) -> dict[str, Any]:
        return {
            "points": base64.b64encode(self.points[: self.count].tobytes()).decode("ascii"),
            "next": self.next,
            "distances": list(self.distances),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], size: int, width: int, window: int) -> _Growing:
        growing = cls(size, width, window)
        raw = np.frombuffer(base64.b64decode(state["points"], validate=True), dtype=np.float32)
        if raw.size % width or raw.size // width > size:
            raise ValueError("points of another shape")
        count = raw.size // width
        growing.points[:count] = raw.reshape(count, width)
        growing.count = count
        growing.next = int(state["next"])
        if not 0 <= growing.next < size:
            raise ValueError("next out of range")
        growing.distances = deque((float(d) for d in state["distances"]), window)
        return growing


DEFAULT_DELTA = 0.6
"""PRADA's threshold for a summary made without calibration."""


def calibrate_prada(
    summary: TrainingSummary,
    rows: Any,
    labels: Any,
    *,
    orders: int = 20,
    margin: float = 0.1,
    seed: int = 0,
) -> float:
    """A PRADA threshold for this data: ``margin`` below the lowest W that natural rows
    (``rows``, answered ``labels``) reach, over ``orders`` random orders of at most 1000
    rows and every check from ``min_queries`` on.  Clamped to [0.1, 0.9]."""
    data = summary.standardise(rows)
    answers = np.asarray(labels).reshape(-1)
    if len(answers) != len(data):
        raise InvalidInput("one label per row")
    rng = np.random.default_rng(seed)
    lowest = 1.0
    for _ in range(orders):
        prada = Prada(summary, delta=0.5)
        for i in rng.permutation(len(data))[:1000]:
            prada.observe_standard(data[i], answers[i].item())
            if prada.recorded >= prada.min_queries and prada.recorded % 25 == 0:
                w = prada.statistic()
                if w is not None:
                    lowest = min(lowest, w)
    return float(min(max(lowest - margin, 0.1), 0.9))


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

    def _bucket(self, projected: npt.NDArray[np.float64]) -> int:
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
        self.observe_projected(self.summary.project([row])[0])
        return self.check()

    def observe_projected(self, projected: npt.NDArray[np.float64]) -> None:
        """Record one query already projected (:meth:`TrainingSummary.project`)."""
        bucket = self._bucket(projected)
        byte, bit = divmod(bucket, 8)
        if not self._bitmap[byte] & (1 << bit):
            self._bitmap[byte] |= 1 << bit
            self._set += 1
        self.queries += 1

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


class _Share:
    """The share of a partner's last ``window`` queries that a subclass flags; above
    ``threshold`` once ``min_queries`` are in is an alarm.  State: the flags as a bit string."""

    name = "share"
    detail = ""

    def __init__(self, *, threshold: float, window: int, min_queries: int) -> None:
        if not 0 < threshold < 1 or window < min_queries or min_queries < 1:
            raise InvalidInput(
                f"{self.name} needs 0 < threshold < 1 and 1 <= min_queries <= window"
            )
        self.threshold = threshold
        self.window = window
        self.min_queries = min_queries
        self._flags: deque[bool] = deque(maxlen=window)

    def _flag(self, flags: Any) -> None:
        self._flags.extend(bool(f) for f in flags)

    def statistic(self) -> float | None:
        if len(self._flags) < self.min_queries:
            return None
        return sum(self._flags) / len(self._flags)

    def check(self) -> Alarm | None:
        share = self.statistic()
        if share is None or share <= self.threshold:
            return None
        return Alarm(self.name, share, self.threshold, len(self._flags), self.detail)

    def to_state(self) -> dict[str, Any]:
        return {"flags": "".join("1" if f else "0" for f in self._flags)}

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            flags = str(state["flags"])
        except (KeyError, TypeError):
            raise InvalidInput(f"not a {self.name} state") from None
        if set(flags) - {"0", "1"}:
            raise InvalidInput(f"not a {self.name} state")
        self._flags = deque((f == "1" for f in flags), self.window)


class Perturbation(_Share):
    """Queries that are small perturbations of earlier ones.

    Equation solving, line searches and perturbation probes ask about a few seed
    rows again and again, each time slightly moved.  The statistic is the share of
    the last ``window`` new queries whose nearest earlier query of the same class
    (PRADA's distance; exact repeats are left out) is closer than ``near`` times the
    training rows' median nearest-neighbour distance.  Natural rows are never that
    close (on the breast-cancer and digits hold-outs the closest pair is 0.63 and
    0.49 of it; equation solving's perturbations 0.18 and 0.15).
    """

    name = "perturbation"
    detail = "many queries are small perturbations of earlier ones"

    def __init__(
        self,
        summary: TrainingSummary,
        *,
        near: float = 0.25,
        threshold: float = 0.1,
        window: int = 200,
        min_queries: int = 30,
    ) -> None:
        if not 0 < near < 1:
            raise InvalidInput("perturbation needs 0 < near < 1")
        super().__init__(threshold=threshold, window=window, min_queries=min_queries)
        self.limit = near * summary.neighbour

    def observe_distance(self, nearest: float) -> None:
        self._flag([nearest < self.limit])


def margins(scores: Any) -> npt.NDArray[np.float64]:
    """Each row's margin: its top class score minus the runner-up (1 for one column)."""
    values = np.asarray(scores, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        return np.ones(len(values))
    top = np.sort(values, axis=1)[:, -2:]
    result: npt.NDArray[np.float64] = top[:, 1] - top[:, 0]
    return result


class Boundary(_Share):
    """Queries the model is unsure about: the signature of boundary-seeking attacks.

    Adaptive attacks ask where their surrogate is least sure, which is where the model
    is least sure too.  A query is uncertain when the model's margin (top class score
    minus the runner-up, whatever the partner is shown) is below ``cut`` — the
    summary's ``margin_cut``, the 10th percentile of the training rows' margins, set
    when the model is registered.  The statistic is the uncertain share.
    """

    name = "boundary"
    detail = "many recent queries lie on the model's decision boundary"

    def __init__(
        self, cut: float, *, threshold: float = 0.4, window: int = 200, min_queries: int = 100
    ) -> None:
        super().__init__(threshold=threshold, window=window, min_queries=min_queries)
        self.cut = cut

    def observe_margins(self, values: Any) -> None:
        self._flag(m < self.cut for m in np.asarray(values).reshape(-1))


class Outliers(_Share):
    """How many of a partner's recent queries lie outside the training distribution.

    A query is an outlier when its Mahalanobis distance
    (:meth:`TrainingSummary.distance`) is above the summary's ``limit`` (the
    training rows' 99.5th percentile).  Natural traffic has a few; random or
    space-filling probes have almost nothing else.
    """

    name = "outliers"
    detail = "many recent queries lie far outside the training distribution"

    def __init__(
        self,
        summary: TrainingSummary,
        *,
        threshold: float = 0.25,
        window: int = 200,
        min_queries: int = 50,
    ) -> None:
        super().__init__(threshold=threshold, window=window, min_queries=min_queries)
        self.summary = summary

    def observe(self, row: Any) -> Alarm | None:
        self.observe_distances(self.summary.distance([row]))
        return self.check()

    def observe_distances(self, distances: npt.NDArray[np.float64]) -> None:
        """Record queries by their distances (:meth:`TrainingSummary.distance`)."""
        self._flag(d > self.summary.limit for d in distances)


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

    def end_day(self, days: int = 1) -> None:
        """Close the current day (its count joins the history) and ``days - 1`` idle ones."""
        self._history.append(self.today)
        self._history.extend([0] * min(max(days - 1, 0), self.days))
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
