"""The attacks against local oracles: what each output policy lets a copy reach."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelpact.errors import InvalidInput
from modelpact.redteam import Answers, adaptive_labels, equation_solving, fidelity, knockoff


@pytest.fixture(scope="module")
def cancer() -> Any:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True)
    train, rest, train_labels, _ = train_test_split(features, labels, test_size=0.5, random_state=0)
    attacker, held_out = rest[: len(rest) // 2], rest[len(rest) // 2 :]
    model = LogisticRegression(max_iter=5000).fit(train, train_labels)
    return model, attacker, held_out


def oracle(model: Any, *, decimals: int | None = None, scores: bool = True) -> Any:
    def ask(rows: Any) -> Answers:
        labels = model.predict(rows)
        if not scores:
            return Answers(labels, None)
        shown = model.predict_proba(rows)
        return Answers(labels, shown if decimals is None else np.round(shown, decimals))

    return ask


def test_equation_solving_copies_a_logistic_regression_from_d_plus_1_exact_scores(
    cancer: Any,
) -> None:
    model, attacker, held_out = cancer
    (step,) = equation_solving(oracle(model), attacker, budget=31)
    assert step.queries == 31
    assert fidelity(step.surrogate, model, held_out) >= 0.99


def test_rounded_scores_leave_too_few_equations_and_labels_none(cancer: Any) -> None:
    model, attacker, _ = cancer
    with pytest.raises(InvalidInput, match="too few to solve for 31 unknowns"):
        list(equation_solving(oracle(model, decimals=2), attacker, budget=62))
    with pytest.raises(InvalidInput, match="needs the two class scores"):
        list(equation_solving(oracle(model, scores=False), attacker, budget=31))


def test_label_only_adaptive_retraining_gets_closer_with_queries(cancer: Any) -> None:
    model, attacker, held_out = cancer
    steps = list(adaptive_labels(oracle(model, scores=False), attacker, budget=600, rounds=6))
    assert [s.queries for s in steps] == [100, 200, 300, 400, 500, 600]
    scores = [fidelity(s.surrogate, model, held_out) for s in steps]
    assert scores[-1] >= 0.9


def test_knockoff_with_natural_rows_copies_a_ten_class_mlp() -> None:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    features, labels = load_digits(return_X_y=True)
    train, rest, train_labels, _ = train_test_split(features, labels, test_size=0.5, random_state=0)
    natural, held_out = rest[:600], rest[600:]
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=0).fit(
        train, train_labels
    )
    steps = list(
        knockoff(oracle(model, scores=False), natural, budget=600, rounds=3, surrogate="mlp")
    )
    assert [s.queries for s in steps] == [200, 400, 600]
    assert fidelity(steps[-1].surrogate, model, held_out) >= 0.85
