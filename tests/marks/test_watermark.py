"""Watermarks: deterministic, keyed, at most the rate, and the tests that attribute a copy."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer

from modelpact.crypto import PrfKey
from modelpact.errors import InvalidInput
from modelpact.marks import (
    MC_TILT,
    RATE,
    TILT,
    TILTED_RATE,
    TiltProbe,
    Watermark,
    chance_rate,
    deviation,
    flip_test,
    tilt_basis,
    tilt_test,
)
from modelpact.monitor import TrainingSummary

ROWS = load_breast_cancer().data


def scores(n: int, classes: int, seed: int = 0) -> np.ndarray:
    raw = np.random.default_rng(seed).random((n, classes)) + 0.01
    return raw / raw.sum(axis=1, keepdims=True)


def test_the_same_query_always_gets_the_same_answer_and_keys_differ() -> None:
    key = PrfKey.generate()
    rows = np.random.default_rng(1).normal(size=(4000, 5))
    first, marked = Watermark(key, "m@1", classes=3).apply(rows, scores(4000, 3))
    again, marked_again = Watermark(key, "m@1", classes=3).apply(rows, scores(4000, 3))
    assert np.array_equal(first, again) and np.array_equal(marked, marked_again)
    other = Watermark(PrfKey.generate(), "m@1", classes=3).marked(rows)
    elsewhere = Watermark(key, "m@2", classes=3).marked(rows)
    assert marked.any() and not np.array_equal(marked, other)  # another partner's marks
    assert not np.array_equal(marked, elsewhere)  # another model version's marks
    assert 0.002 < marked.mean() < 0.009  # about the 0.5% rate
    assert np.array_equal(Watermark(key, "m@1", classes=3).marked(-0.0 * rows[:3]),
                          Watermark(key, "m@1", classes=3).marked(0.0 * rows[:3]))  # fmt: skip


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(0, 2**31))
def test_a_marked_answer_swaps_its_top_class_for_another_and_keeps_its_scores(
    classes: int, seed: int
) -> None:
    rows = np.random.default_rng(seed).normal(size=(600, 3))
    given_scores = scores(600, classes, seed)
    out, marked = Watermark(PrfKey.generate(), "m@1", classes=classes, rate=0.05).apply(
        rows, given_scores
    )
    assert np.allclose(np.sort(out, axis=1), np.sort(given_scores, axis=1))
    unmarked = ~marked
    assert np.array_equal(out[unmarked], given_scores[unmarked])
    changed = out[marked].argmax(axis=1) != given_scores[marked].argmax(axis=1)
    ties = np.isclose(
        np.sort(given_scores[marked], 1)[:, -1], np.sort(given_scores[marked], 1)[:, -2]
    )
    assert np.all(changed | ties)


def test_the_tilt_moves_log_odds_along_a_keyed_direction() -> None:
    summary = TrainingSummary.fit(ROWS)
    key = PrfKey.generate()
    mark = Watermark(key, "m@1", classes=2, rate=0.0, tilt=0.5, summary=summary)
    given_scores = scores(len(ROWS), 2)
    out, marked = mark.apply(ROWS, given_scores)
    assert not marked.any()
    moved = np.log(out[:, 1] / out[:, 0]) - np.log(given_scores[:, 1] / given_scores[:, 0])
    # Along the keyed direction, by up to the tilt: none for rows that spread like training
    # rows (a ramp from 0.8 to 1.2 times their spread), all of it at 1.2 to 2 times.
    z = summary.whiten(ROWS)
    along = z @ mark.direction()
    spread = np.linalg.norm(z, axis=1) / np.sqrt(z.shape[1])
    scale = moved / along
    assert np.all((scale > -1e-9) & (scale < 0.5 + 1e-9))
    assert np.allclose(moved[spread < 0.8], 0) and (spread < 0.8).any()
    middle = (spread > 1.2) & (spread < 2)
    assert middle.any() and np.allclose(moved[middle], 0.5 * along[middle])
    # Whitened: unit variance in every direction, but for near-collinear ones (radius,
    # perimeter, area) which the summary's ridge holds back rather than blow up.
    variance = np.linalg.eigvalsh(np.cov(summary.whiten(ROWS), rowvar=False))
    assert variance.max() < 1.01 and np.median(variance) > 0.9
    assert np.allclose(out.sum(axis=1), 1.0)
    assert abs(np.linalg.norm(mark.direction()) - 1) < 1e-12
    assert not np.allclose(
        mark.direction(),
        Watermark(PrfKey.generate(), "m@1", classes=2, tilt=0.5, summary=summary).direction(),
    )
    with pytest.raises(InvalidInput):
        Watermark(key, "m@1", classes=3, tilt=0.5)  # no summary
    with pytest.raises(InvalidInput):
        Watermark(key, "m@1", classes=2, rate=0.2)


def test_the_served_watermark_tilts_only_where_it_can_and_shows_what_was_unswapped() -> None:
    summary, key = TrainingSummary.fit(ROWS), PrfKey.generate()
    binary = Watermark.served(key, "m@1", classes=2, summary=summary)
    assert binary.tilt == TILT and binary.rate == TILTED_RATE
    assert Watermark.served(key, "m@1", classes=2, summary=None).rate == RATE
    assert Watermark.served(key, "m@1", classes=2, summary=None).tilt == 0
    given_scores = scores(len(ROWS), 2)
    out, marked = Watermark(key, "m@1", classes=2, rate=0.05, tilt=TILT, summary=summary).apply(
        ROWS, given_scores
    )
    shown = binary.shown(ROWS, given_scores)  # the tilt alone: unmarked answers as given
    assert np.allclose(shown[~marked], out[~marked]) and marked.any()
    assert not np.allclose(shown[marked], out[marked])


def test_the_multiclass_tilt_moves_unusual_rows_and_hardly_natural_ones() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits().data
    # A fixed key: with a random one, about one run in 30 marks no row the tilt leaves alone,
    # and the keyed-alternative branch below would go unchecked.
    summary, key = TrainingSummary.fit(digits), PrfKey(hashlib.sha256(b"k0").digest())
    mark = Watermark.served(key, "d@1", classes=10, summary=summary)
    assert (mark.tilt, mark.rate) == (MC_TILT, TILTED_RATE)
    u = mark.tilt_matrix()
    assert np.allclose(u.sum(axis=1), 0) and abs(np.linalg.norm(u) - 1) < 1e-12
    # U lies in the basis's span and does not depend on which orthonormal basis of it.
    basis = tilt_basis(summary)
    assert np.allclose(basis @ (basis.T @ u), u)
    turned = basis @ np.linalg.qr(np.random.default_rng(0).normal(size=(basis.shape[1],) * 2))[0]
    same = Watermark.served(key, "d@1", classes=10, summary=summary, basis=turned)
    assert np.allclose(same.tilt_matrix(), u)
    noisy = digits + np.random.default_rng(1).normal(0, 0.3, digits.shape) * digits.std(axis=0)
    assert np.median(np.abs(mark.shift(digits)).max(axis=1)) < 0.05  # natural: hardly moved
    assert np.median(np.abs(mark.shift(noisy)).max(axis=1)) > 0.2  # unusual: moved
    given = scores(len(noisy), 10)
    out, marked = Watermark(key, "d@1", classes=10, rate=0.05, tilt=MC_TILT, summary=summary).apply(
        noisy, given
    )
    assert np.allclose(out.sum(axis=1), 1.0) and marked.any()
    # A marked row's new label is the class the tilt favours most (coherent swaps); where the
    # row gets no tilt (it looks like training data), the keyed alternative.
    shift = mark.shift(noisy[marked])
    tilted = mark.shown(noisy[marked], given[marked]).argmax(axis=1)
    moved = np.ptp(shift, axis=1) > 1e-9
    shift[np.arange(len(tilted)), tilted] = -np.inf
    new = out[marked].argmax(axis=1)
    assert moved.sum() > 10 and (~moved).sum() > 0
    assert np.array_equal(new[moved], shift[moved].argmax(axis=1))
    still = zip(noisy[marked][~moved], tilted[~moved], strict=True)
    keyed = [mark.alternative(row, top) for row, top in still]
    assert new[~moved].tolist() == keyed


def test_the_multiclass_tilt_test_names_the_key_a_linear_copy_learnt_and_is_uniform_else() -> None:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    summary = TrainingSummary.fit(x)
    rng = np.random.default_rng(3)
    noise = x.std(axis=0)

    def noisy(n: int) -> np.ndarray:
        picked = x[rng.integers(0, len(x), n)]
        return picked + rng.normal(0, 0.3, picked.shape) * noise

    thief = Watermark.served(PrfKey.generate(), "d@1", classes=10, summary=summary)
    asked = noisy(5000)
    labels = thief.apply(asked, model.predict_proba(asked))[0].argmax(axis=1)
    copy = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(asked, labels)
    probes = noisy(2000)
    fitted = TiltProbe.fit(thief, probes, copy.predict_proba(probes), model.predict_proba(probes))
    assert fitted is not None
    assert fitted.test("thief", thief).p_value < 1e-8
    others = [
        fitted.test("other", Watermark.served(PrfKey.generate(), "d@1", classes=10,
                                              summary=summary)).p_value
        for _ in range(300)
    ]  # fmt: skip
    assert 0.02 < np.mean(np.asarray(others) < 0.1) < 0.2  # about 10%: a uniform p
    assert min(others) > 1e-5


def test_flip_test_names_a_copy_that_learnt_the_marks_and_not_one_that_did_not() -> None:
    swapped = np.array([1, 0, 1, 1, 0] * 5)
    learnt = flip_test("acme", swapped, swapped, chance=0.04)
    assert learnt.statistic == 1.0 and learnt.p_value < 1e-30
    assert "25 of 25" in learnt.explain()
    independent = flip_test("acme", 1 - swapped, swapped, chance=0.04)
    assert independent.p_value == 1.0
    assert chance_rate([0, 1, 1, 1], [0, 1, 1, 0]) == 0.25
    assert chance_rate([1, 1], [1, 1]) == 1e-3  # never zero: the benefit of the doubt
    with pytest.raises(InvalidInput):
        flip_test("acme", [1, 2], [1], chance=0.1)


def test_tilt_test_tails_are_those_of_a_random_direction() -> None:
    rng = np.random.default_rng(0)
    dims = 30
    w = rng.normal(size=dims)
    cosines = []
    p_values = []
    for _ in range(2000):
        v, u = rng.normal(size=dims), rng.normal(size=dims)
        evidence = tilt_test("p", v, w, u)
        cosines.append(evidence.statistic)
        p_values.append(evidence.p_value)
    # For unrelated directions the p-value is uniform on its upper half: P(p < a) = a.
    assert abs(np.mean(np.array(p_values) < 0.1) - 0.1) < 0.03
    aligned = tilt_test("p", 3 * w + rng.normal(size=dims) * 0.01 + 5 * np.eye(dims)[0], w,
                        np.eye(dims)[0])  # fmt: skip
    assert aligned.p_value < 1e-12 and aligned.statistic > 0.99


def test_deviation_recovers_a_linear_difference() -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(500, 6))
    direction = rng.normal(size=6)
    found = deviation(z @ direction + 0.3, np.zeros(500), z)
    assert np.allclose(found, direction)


def test_keyed_rotations_are_orthogonal_deterministic_and_per_key() -> None:
    from modelpact.marks import KeyedRotation, rotation_test

    key = PrfKey.generate()
    turn = KeyedRotation(key, "e@1", 16)
    assert np.allclose(turn.matrix @ turn.matrix.T, np.eye(16))
    assert np.array_equal(turn.matrix, KeyedRotation(key, "e@1", 16).matrix)
    assert not np.allclose(turn.matrix, KeyedRotation(key, "e@2", 16).matrix)
    vectors = np.random.default_rng(3).normal(size=(50, 16))
    assert np.allclose(np.linalg.norm(turn.apply(vectors), axis=1), np.linalg.norm(vectors, axis=1))
    leaked = turn.apply(vectors)
    assert rotation_test("p", leaked, vectors, turn).p_value < 1e-30
    # Another partner's rotation: the p-value is not small (500 keys, at most a few below 1%).
    small = sum(
        rotation_test("q", leaked, vectors, KeyedRotation(PrfKey.generate(), "e@1", 16)).p_value
        < 0.01
        for _ in range(500)
    )
    assert small <= 12
    with pytest.raises(InvalidInput):
        turn.apply(vectors[:, :3])
