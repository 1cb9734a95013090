"""The charter's escalation ladder and the watch that feeds it."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from modelpact.charter import ExtractionMonitor, Response
from modelpact.errors import InvalidInput
from modelpact.monitor import ORDER, Ladder, TrainingSummary, Watch

DAY = date(2026, 3, 1)


def test_the_default_ladder_climbs_throttle_harden_suspend() -> None:
    ladder = Ladder.of(ExtractionMonitor())
    assert ladder.steps == (Response.THROTTLE, Response.HARDEN, Response.SUSPEND)
    assert Ladder.of(ExtractionMonitor(on_alert="alert", on_confirmed="alert")).steps == (
        Response.ALERT,
    )
    # A confirmed response milder than the first: the first only.
    assert Ladder.of(ExtractionMonitor(on_alert="suspend", on_confirmed="throttle")).steps == (
        Response.SUSPEND,
    )


@given(
    st.sampled_from(ORDER),
    st.sampled_from(ORDER),
    st.integers(0, 6),
    st.integers(0, 300),
    st.booleans(),
)
def test_a_step_is_one_at_a_time_and_only_on_an_alarm(
    first: Response, last: Response, current: int, since: int, alarmed: bool
) -> None:
    ladder = Ladder.of(ExtractionMonitor(on_alert=first, on_confirmed=last), spacing=100)
    step = ladder.next_step(current, since, alarmed)
    if step is None:
        assert not alarmed or current >= len(ladder.steps) or (current > 0 and since < 100)
    else:
        assert alarmed and step == current + 1 <= len(ladder.steps)
        assert ORDER.index(ladder.response(step)) >= ORDER.index(first)


@pytest.fixture(scope="module")
def split() -> tuple[np.ndarray, np.ndarray]:
    features, _ = load_breast_cancer(return_X_y=True)
    train, held = train_test_split(features, test_size=0.25, random_state=0)
    return train, held


def test_natural_queries_raise_nothing_and_probes_do(split: tuple[np.ndarray, np.ndarray]) -> None:
    train, held = split
    summary = TrainingSummary.fit(train)
    natural = Watch(summary, train.shape[1])
    for day in range(3):  # the held-out rows, three times over three days
        for start in range(0, len(held), 16):
            batch = held[start : start + 16]
            assert natural.observe(batch, [0] * len(batch), DAY + timedelta(days=day)) == []
    probes = np.random.default_rng(0).uniform(train.min(0), train.max(0), (64, train.shape[1]))
    probing = Watch(summary, train.shape[1])
    alarms = probing.observe(probes, [0] * 64, DAY)
    assert [a.detector for a in alarms][:1] == ["outliers"]


def test_a_watch_survives_a_round_trip_and_refuses_another_summary(
    split: tuple[np.ndarray, np.ndarray],
) -> None:
    train, held = split
    summary = TrainingSummary.fit(train)
    watch = Watch(summary, train.shape[1])
    watch.observe(held[:80], [i % 2 for i in range(80)], DAY)
    watch.stepped(2)
    state = json.loads(json.dumps(watch.to_state()))
    again = Watch.from_state(state, summary)
    assert again.to_state() == watch.to_state()
    assert again.step == 2 and again.queries == 80
    with pytest.raises(InvalidInput):
        Watch.from_state(state, None)  # made against a summary: not without one
    with pytest.raises(InvalidInput):
        Watch.from_state({"format": "other"}, summary)


def test_without_a_summary_only_volume_runs() -> None:
    watch = Watch(None, 4)
    assert watch.coverage is None and watch.outliers is None and watch.prada is None
    rows = np.random.default_rng(1).normal(size=(10, 4))
    assert watch.observe(rows, [0] * 10, DAY) == []
    with pytest.raises(InvalidInput):
        watch.observe(rows, [0], DAY)


def test_share_detectors_round_trip_and_refuse_bad_state(
    split: tuple[np.ndarray, np.ndarray],
) -> None:
    from modelpact.monitor import Boundary, Outliers, Perturbation

    summary = TrainingSummary.fit(split[0])
    boundary = Boundary(0.2, min_queries=2, window=4)
    boundary.observe_margins([0.1, 0.9, 0.05])
    assert boundary.statistic() == pytest.approx(2 / 3)
    alarm = boundary.check()
    assert alarm is not None and alarm.detector == "boundary" and alarm.window == 3
    for detector in (boundary, Outliers(summary), Perturbation(summary)):
        again = type(detector).__new__(type(detector))
        again.__dict__.update(detector.__dict__)
        again.load_state(json.loads(json.dumps(detector.to_state())))
        assert again.to_state() == detector.to_state()
        with pytest.raises(InvalidInput, match=detector.name):
            detector.load_state({"flags": "012"})
        with pytest.raises(InvalidInput):
            detector.load_state({})
    with pytest.raises(InvalidInput):
        Boundary(0.2, threshold=1.5)
