"""The extraction detectors on real data: natural queries against synthetic probes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpact.errors import InvalidInput
from modelpact.monitor import Coverage, Prada, TrainingSummary, Volume


@pytest.fixture(scope="module")
def data() -> Any:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    features, labels = load_breast_cancer(return_X_y=True)
    train, held_out, train_labels, _ = train_test_split(
        features, labels, test_size=0.5, random_state=0
    )
    model = LogisticRegression(max_iter=5000).fit(train, train_labels)
    return TrainingSummary.fit(train), held_out, model, train


def natural(data: Any, seed: int, count: int = 250) -> Any:
    _, held_out, _, _ = data
    return held_out[np.random.default_rng(seed).permutation(len(held_out))[:count]]


def test_the_summary_scores_probes_far_from_training(data: Any) -> None:
    summary, held_out, _, _ = data
    rng = np.random.default_rng(1)
    box = rng.uniform(summary.low, summary.high, size=(200, summary.width))
    assert np.median(summary.distance(held_out)) < 10 < np.median(summary.distance(box))
    assert summary.outside(held_out).mean() < 0.02
    beyond = summary.high + summary.std
    assert summary.outside([beyond]).tolist() == [1.0]
    again = TrainingSummary.from_state(json.loads(json.dumps(summary.to_state())))
    assert np.allclose(again.distance(held_out), summary.distance(held_out))
    with pytest.raises(InvalidInput, match="width"):
        summary.distance([[1.0, 2.0]])
    with pytest.raises(InvalidInput):
        TrainingSummary.from_state({"mean": [1.0]})


def run_prada(data: Any, rows: Any) -> Prada:
    summary, _, model, _ = data
    prada = Prada(summary)
    for row in rows:
        prada.observe(row, int(model.predict([row])[0]))
    return prada


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prada_stays_quiet_for_natural_queries(data: Any, seed: int) -> None:
    assert run_prada(data, natural(data, seed)).check() is None


def test_prada_flags_perturbation_and_line_search_probes(data: Any) -> None:
    summary, _, _, train = data
    rng = np.random.default_rng(3)
    seeds = train[:5]
    perturbed = [
        seeds[i % 5] + rng.normal(0, 0.01, summary.width) * summary.std for i in range(250)
    ]
    line = [train[0] + (train[1] - train[0]) * t for t in rng.uniform(0, 1, 250)]
    for rows in (perturbed, line):
        prada = run_prada(data, rows)
        alarm = prada.check()
        assert alarm is not None and alarm.detector == "prada"
        assert alarm.statistic < alarm.threshold and alarm.window >= 240
        restored = Prada(summary)
        restored.load_state(json.loads(json.dumps(prada.to_state())))
        assert restored.statistic() == pytest.approx(prada.statistic())


def test_coverage_flags_a_probe_that_fills_the_space(data: Any) -> None:
    summary, _, _, _ = data
    quiet = Coverage(summary)
    for row in natural(data, 0):
        assert quiet.observe(row) is None
    rng = np.random.default_rng(4)
    along = rng.uniform(-3, 3, size=(250, summary.spread.shape[0])) * summary.spread
    probes = summary.mean + (along @ summary.components) * summary.std
    filling = Coverage(summary)
    alarms = [filling.observe(row) for row in probes]
    assert alarms[-1] is not None and alarms[-1].statistic > 0.85
    restored = Coverage(summary)
    restored.load_state(filling.to_state())
    assert restored.statistic() == filling.statistic()


def test_volume_flags_a_day_far_above_the_partners_history() -> None:
    volume = Volume(floor=100)
    for count in (120, 90, 110, 100, 95):
        volume.observe(count)
        volume.end_day()
    assert volume.observe(130) is None
    alarm = volume.observe(1000)
    assert alarm is not None and alarm.statistic == 1130 and alarm.window == 5
    restored = Volume(floor=100)
    restored.load_state(volume.to_state())
    assert restored.check() == alarm


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10_000), min_size=3, max_size=40), st.integers(0, 10_000))
def test_volume_never_flags_a_day_no_busier_than_the_median_day(
    history: list[int], today: int
) -> None:
    # A median is never more than one standard deviation above the mean.
    volume = Volume(floor=0)
    for count in history:
        volume.observe(count)
        volume.end_day()
    volume.observe(min(today, int(np.median(history[-28:]))))
    assert volume.check() is None
