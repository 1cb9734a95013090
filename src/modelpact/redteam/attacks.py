"""Model-extraction attacks against a query function, and how faithful their copies get.

Each attack spends a query budget through ``oracle`` — a function from rows to the
answers a partner would see (class scores, or labels only) — and yields, as it goes,
the number of queries spent and a surrogate model fitted to what it learned.
:func:`fidelity` measures a surrogate against the real model on held-out rows
(the fraction of rows on which they agree).

- :func:`equation_solving` (Tramèr et al., USENIX Security 2016): for a logistic
  regression, ``d + 1`` exact scores give ``d + 1`` linear equations in its weights
  and bias (the log-odds of each score); rounding the scores blurs them, labels alone
  leave nothing to solve.
- :func:`adaptive_labels`: label-only retraining that asks next about synthetic points
  between earlier ones, near the current surrogate's decision boundary.
- :func:`knockoff`: Knockoff/Copycat style, natural rows of a similar distribution (a
  disjoint split), a surrogate trained on the answers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.errors import InvalidInput

__all__ = [
    "Answers",
    "Oracle",
    "Step",
    "adaptive_labels",
    "equation_solving",
    "fidelity",
    "knockoff",
]


@dataclass(frozen=True)
class Answers:
    """What the oracle revealed for a batch: labels, and class scores when the policy shows them."""

    labels: npt.NDArray[Any]
    scores: npt.NDArray[np.float64] | None  # rows x classes, in column order, or None


Oracle = Callable[[npt.NDArray[np.float64]], Answers]


@dataclass(frozen=True)
class Step:
    """An attack's progress: queries spent so far and the surrogate it has now."""

    queries: int
    surrogate: Any  # anything with predict(rows) -> labels


class _Linear:
    """A binary linear classifier from recovered weights: ``w.x + b > 0`` is class 1."""

    def __init__(self, weights: npt.NDArray[np.float64], bias: float, classes: Any) -> None:
        self.weights, self.bias, self.classes = weights, bias, np.asarray(classes)

    def predict(self, rows: Any) -> npt.NDArray[Any]:
        margin = np.asarray(rows, dtype=np.float64) @ self.weights + self.bias
        labels: npt.NDArray[Any] = self.classes[(margin > 0).astype(int)]
        return labels


def fidelity(surrogate: Any, model: Any, rows: Any) -> float:
    """The fraction of ``rows`` on which ``surrogate`` and ``model`` give the same label."""
    data = np.asarray(rows, dtype=np.float64)
    return float(np.mean(np.asarray(surrogate.predict(data)) == np.asarray(model.predict(data))))


def _box(reference: npt.NDArray[np.float64], count: int, rng: np.random.Generator) -> Any:
    """Random rows inside the range of ``reference`` (what an attacker can guess)."""
    low, high = reference.min(axis=0), reference.max(axis=0)
    return rng.uniform(low, high, size=(count, reference.shape[1]))


def equation_solving(
    oracle: Oracle,
    reference: npt.NDArray[np.float64],
    *,
    budget: int,
    seed: int = 0,
) -> Iterator[Step]:
    """Solve for a binary logistic regression's weights from its scores.

    Queries rows near ``reference``'s (natural rows the attacker holds, slightly
    perturbed, so the scores are not saturated) in batches of ``d + 1``, and after each
    least-squares fits ``logit(p) = w.x + b`` over every answer so far whose score is
    strictly between 0 and 1 (``d + 1`` exact ones determine it).  Raises
    :class:`InvalidInput` when the oracle shows labels only, or when too few scores
    survive rounding to solve anything.
    """
    rng = np.random.default_rng(seed)
    width = reference.shape[1]
    if budget < width + 1:
        raise InvalidInput(f"equation solving needs at least {width + 1} queries")
    sizes = [width + 1] * (budget // (width + 1))  # d + 1: the least that can determine it
    rows = np.empty((0, width))
    scores = np.empty((0, 2))
    labels: list[Any] = []
    for size in sizes:
        picked = reference[rng.integers(0, len(reference), size)]
        batch = picked + rng.normal(0.0, 0.05, picked.shape) * reference.std(axis=0)
        answers = oracle(batch)
        if answers.scores is None or answers.scores.shape[1] != 2:
            raise InvalidInput("equation solving needs the two class scores of a binary model")
        rows = np.vstack([rows, batch])
        scores = np.vstack([scores, answers.scores])
        labels.extend(answers.labels.tolist())
        p = scores[:, 1]
        usable = (p > 0) & (p < 1)
        if int(usable.sum()) < width + 1:
            if len(rows) >= budget:
                raise InvalidInput(
                    f"only {int(usable.sum())} of {len(rows)} scores are strictly between 0 "
                    f"and 1: too few to solve for {width + 1} unknowns (the output policy "
                    "rounds them away)"
                )
            continue
        logits = np.log(p[usable]) - np.log1p(-p[usable])
        design = np.hstack([rows[usable], np.ones((int(usable.sum()), 1))])
        solution, *_ = np.linalg.lstsq(design, logits, rcond=None)
        classes = np.unique(labels) if len(np.unique(labels)) == 2 else [0, 1]
        yield Step(len(rows), _Linear(solution[:-1], float(solution[-1]), classes))


def _fit(rows: Any, labels: Any, kind: str, seed: int) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:  # nothing to separate yet: answer the one class seen
        return _Constant(labels[0])
    estimator: Any = (
        LogisticRegression(max_iter=2000)
        if kind == "logistic"
        else MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
    )
    with warnings.catch_warnings():  # an attacker's surrogate need not converge to be useful
        warnings.simplefilter("ignore", ConvergenceWarning)
        return make_pipeline(StandardScaler(), estimator).fit(rows, labels)


class _Constant:
    def __init__(self, label: Any) -> None:
        self.label = label

    def predict(self, rows: Any) -> npt.NDArray[Any]:
        return np.full(len(rows), self.label)


def adaptive_labels(
    oracle: Oracle,
    reference: npt.NDArray[np.float64],
    *,
    budget: int,
    rounds: int = 10,
    surrogate: str = "logistic",
    seed: int = 0,
) -> Iterator[Step]:
    """Label-only adaptive retraining (after Papernot et al.'s synthetic augmentation).

    The first round asks about a few of the attacker's natural rows; each later round
    makes candidates between pairs of rows asked so far that the current surrogate
    puts in different classes (``a x + (1 - a) y``, so near its boundary), asks about
    those it is least sure of, and refits on every answer so far.
    """
    rng = np.random.default_rng(seed)
    per_round = max(1, budget // rounds)
    rows = reference[rng.permutation(len(reference))[:per_round]]
    labels = oracle(rows).labels
    model = _fit(rows, labels, surrogate, seed)
    yield Step(len(rows), model)
    while len(rows) + per_round <= budget:
        candidates = _between(rows, model, per_round * 20, rng)
        if hasattr(model, "predict_proba"):
            certainty = model.predict_proba(candidates).max(axis=1)
            chosen = candidates[np.argsort(certainty)[:per_round]]
        else:
            chosen = candidates[:per_round]
        rows = np.vstack([rows, chosen])
        labels = np.concatenate([labels, oracle(chosen).labels])
        model = _fit(rows, labels, surrogate, seed)
        yield Step(len(rows), model)


def _between(rows: Any, model: Any, count: int, rng: np.random.Generator) -> Any:
    """Points on segments between rows the surrogate labels differently (any pair if it
    sees one class only)."""
    predicted = np.asarray(model.predict(rows))
    first = rng.integers(0, len(rows), count * 3)
    second = rng.integers(0, len(rows), count * 3)
    differ = predicted[first] != predicted[second]
    if differ.sum() >= count:
        first, second = first[differ][:count], second[differ][:count]
    else:
        first, second = first[:count], second[:count]
    weight = rng.uniform(0.0, 1.0, (len(first), 1))
    return weight * rows[first] + (1 - weight) * rows[second]


def knockoff(
    oracle: Oracle,
    natural: npt.NDArray[np.float64],
    *,
    budget: int,
    rounds: int = 10,
    surrogate: str = "logistic",
    seed: int = 0,
) -> Iterator[Step]:
    """Natural rows of a similar distribution (never the model's own training rows), asked
    in ``rounds`` batches; a surrogate trained on the labels seen so far after each."""
    rng = np.random.default_rng(seed)
    pool = natural[rng.permutation(len(natural))][:budget]
    per_round = max(1, len(pool) // rounds)
    labels: list[Any] = []
    for start in range(0, len(pool), per_round):
        batch = pool[start : start + per_round]
        labels.extend(oracle(batch).labels.tolist())
        seen = pool[: len(labels)]
        yield Step(len(labels), _fit(seen, labels, surrogate, seed))
