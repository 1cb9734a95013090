"""The extraction monitor service on both stores: steps, evidence, restarts, clearing."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modelpact.audit.entries import IncidentEntry, decode_entry
from modelpact.charter import ExtractionMonitor
from modelpact.crypto import SigningKey
from modelpact.errors import InvalidInput, NotFound, Tampered
from modelpact.runtime import export_sklearn
from modelpact.services import ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.monitoring import (
    LABEL_ONLY,
    Monitor,
    Observation,
    ProtectionDesk,
    _open_state,
    hardened,
    throttled_rate,
    watched_label,
)
from tests.services.conftest import admin_actions

MODEL = "screen"
AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, bytes]:
    features, labels = load_breast_cancer(return_X_y=True)
    train, held, train_y, _ = train_test_split(features, labels, test_size=0.25, random_state=0)
    onnx = export_sklearn(LogisticRegression(max_iter=5000).fit(train, train_y))
    return train, held, onnx


@pytest.fixture
def ready(workspace: Workspace, data: tuple[np.ndarray, np.ndarray, bytes]) -> Workspace:
    train, _, onnx = data
    ModelRegistry(workspace).add(MODEL, onnx, version="1", source="m.onnx", reference=train)
    PartnerDirectory(workspace).enrol("acme", SigningKey.generate().verify_key.encode())
    return workspace


def batch(rows: np.ndarray, settings: ExtractionMonitor | None = None) -> Observation:
    return Observation(
        partner="acme",
        charter="c",
        model=MODEL,
        version="1",
        rows=rows.tolist(),
        labels=[0] * len(rows),
        at=AT,
        settings=settings or ExtractionMonitor(),
    )


def incidents(ws: Workspace) -> list[IncidentEntry]:
    with ws.store.unit_of_work() as uow:
        found = [decode_entry(r.entry) for r in uow.audit.entries(0, uow.audit.size())]
    return [e for e in found if isinstance(e, IncidentEntry)]


def test_the_summary_is_kept_with_the_version(
    ready: Workspace, data: tuple[np.ndarray, np.ndarray, bytes]
) -> None:
    train, _, onnx = data
    summary = ModelRegistry(ready).training_summary(MODEL, "1")
    assert summary is not None and summary.count == len(train) and summary.width == 30
    with pytest.raises(InvalidInput, match="30"):  # reference rows of the wrong width
        ModelRegistry(ready).add(MODEL, onnx, version="2", source="m.onnx", reference=train[:, :5])
    with pytest.raises(NotFound):
        ModelRegistry(ready).training_summary(MODEL, "9")


def test_probes_climb_the_ladder_with_evidence_and_suspend_the_partner(
    ready: Workspace, data: tuple[np.ndarray, np.ndarray, bytes]
) -> None:
    train, held, _ = data
    monitor = Monitor(ready, spacing=64)
    for start in range(0, len(held), 32):
        assert monitor.observe(batch(held[start : start + 32])) is None
    rng = np.random.default_rng(3)
    steps = []
    for _ in range(4):
        probes = rng.uniform(train.min(0), train.max(0), (64, 30))
        entry = monitor.observe(batch(probes))
        steps.append(None if entry is None else entry.response)
    assert steps == ["throttle", "harden", "suspend", None]  # the top of the ladder: stays
    logged = incidents(ready)
    assert [e.step for e in logged] == [1, 2, 3]
    assert all(e.detector and e.window and e.statistic and e.threshold for e in logged)
    assert PartnerDirectory(ready).get("acme").status == "suspended"
    (record,) = ProtectionDesk(ready).all()
    assert record.response == "suspend" and json.loads(record.evidence)[0]["detector"]


def test_state_survives_a_restart(
    ready: Workspace, data: tuple[np.ndarray, np.ndarray, bytes]
) -> None:
    _, held, _ = data
    first = Monitor(ready)
    first.observe(batch(held[:40]))
    first.close()  # saves
    second = Monitor(ready)
    second.observe(batch(held[40:60]))
    second.save()
    with ready.store.unit_of_work() as uow:
        record = uow.monitor.state("acme", "c", MODEL)
    assert record is not None
    # The saved state holds standardised partner queries: sealed at rest, never in clear.
    envelope = json.loads(record.state)
    assert set(envelope) == {"format", "key", "state"} and "queries" not in record.state
    assert json.loads(_open_state(ready, ("acme", "c", MODEL), record.state))["queries"] == 60
    with pytest.raises(Tampered):  # bound to its partner, charter and model
        _open_state(ready, ("globex", "c", MODEL), record.state)


def test_clearing_lifts_the_response_on_the_record_and_restarts_the_watch(
    ready: Workspace, data: tuple[np.ndarray, np.ndarray, bytes]
) -> None:
    train, _, _ = data
    monitor = Monitor(ready, spacing=64)
    probes = np.random.default_rng(4).uniform(train.min(0), train.max(0), (64, 30))
    assert monitor.observe(batch(probes)) is not None
    with pytest.raises(InvalidInput):
        ProtectionDesk(ready).clear("acme", "c", MODEL, reason="  ")
    lifted = ProtectionDesk(ready).clear("acme", "c", MODEL, reason="false alarm, reviewed")
    assert lifted.response == "throttle" and ProtectionDesk(ready).all() == []
    assert admin_actions(ready, f"acme/c/{MODEL}") == ["monitor.clear"]
    with pytest.raises(NotFound):
        ProtectionDesk(ready).clear("acme", "c", MODEL, reason="again")
    # The gateway's watch still alarms: the first alarm after a clear restarts it instead
    # of climbing on from where the cleared response stood.
    assert monitor.observe(batch(probes)) is None
    assert monitor.observe(batch(probes)) is not None  # a fresh watch, a first step
    assert [e.step for e in incidents(ready)] == [1, 1]


def test_a_stopped_monitor_refuses_once_its_queue_is_full(
    ready: Workspace, data: tuple[np.ndarray, np.ndarray, bytes]
) -> None:
    _, held, _ = data
    monitor = Monitor(ready, queue_size=1)  # never started: nothing drains the queue
    assert monitor.submit(batch(held[:1]))
    assert not monitor.submit(batch(held[1:2]))


def test_responses_and_labels() -> None:
    assert throttled_rate(600) == 60 and throttled_rate(5) == 1 and throttled_rate(None) == 6
    assert hardened(LABEL_ONLY) is LABEL_ONLY
    assert watched_label({"label": "b"}) == "b"
    assert watched_label({"scores": [{"label": 0, "score": 0.2}, {"label": 1, "score": 0.8}]}) == 1
    assert watched_label({"top_k": [{"label": "x", "score": 0.9}]}) == "x"
    assert watched_label({"value": 3.5}) == "value"
