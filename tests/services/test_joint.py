"""Joint runs with three real party processes over TLS on 127.0.0.1: scores and metrics equal
the plaintext ones, the charter decides and the audit log records each run, and what must
fail fails in one line, within its timeout."""

from __future__ import annotations

import os
import pickle
import socket
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.audit.entries import AccessEntry, decode_entry
from modelpact.charter.model import JointMetric
from modelpact.crypto import write_private_file
from modelpact.crypto.tls import create_ca, issue_party_cert, party_request
from modelpact.errors import Denied, InvalidInput, ModelpactError, NotFound, ServerError
from modelpact.runtime import export_sklearn
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.joint import (
    Evaluation,
    JointDesk,
    Network,
    PartnerRows,
    Role,
    Scores,
    Task,
    join_as_compute,
    join_as_partner,
    parse_rows,
)
from modelpact.services.joint_party import _plain_loads, magnitude_bits
from modelpact.services.serving import ModelServer
from tests.services.test_charters import PARTNER, envelope

X, Y = load_breast_cancer(return_X_y=True)
MODEL = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(X, Y)
#: Rows the model gets wrong and right, both classes: accuracy and AUC are not trivial.
PICK = np.r_[np.flatnonzero(MODEL.predict(X) != Y)[:6], np.arange(34)]
JOINT_GRANT = {
    "model": "screen",
    "versions": "1.*",
    "actions": ["predict_joint", "evaluate_joint"],
    "output": {"kind": "scores", "decimals": 2},
}
JOINT = {"compute_party": {"id": "tallyhall", "name": "Tally Hall"}, "metrics": ["accuracy", "auc"]}
RUN = 90.0  # seconds a whole run may take here (the suite may load the host)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_tls(folder: Path, *, ca_name: str = "joint test CA") -> Path:
    """A CA and the three parties' certificates in one folder (each party would keep its own)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    ca, ca_key = create_ca(ca_name, now=now)
    (folder / "mpyc_ca.crt").write_bytes(ca)
    for index in range(3):
        request, key = party_request(index)
        (folder / f"party_{index}.crt").write_bytes(
            issue_party_cert(ca, ca_key, request, index=index, now=now)
        )
        write_private_file(folder / f"party_{index}.key", key)
    return folder


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def network(tls: Path) -> Network:
    peers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    return Network.parse(peers, tls, timeout=RUN, connect_timeout=40.0)


def joint_workspace(ws: Workspace, **changes: Any) -> Workspace:
    """``screen`` registered; acme enrolled under a charter that grants both joint actions."""
    ModelRegistry(ws).add("screen", export_sklearn(MODEL), version="1.0.0", source="s.onnx")
    PartnerDirectory(ws).enrol("acme", PARTNER.verify_key.encode())
    options: dict[str, Any] = {"grants": [JOINT_GRANT], "joint": JOINT} | changes
    CharterDesk(ws).apply(envelope(ws, **options), source="e.json")
    return ws


@pytest.fixture
def ready(workspace: Workspace) -> Workspace:
    return joint_workspace(workspace)


@dataclass
class Outcome:
    owner: Any
    partner: Any
    compute: Any


def three(
    owner: Callable[[], Any], partner: Callable[[], Any], compute: Callable[[], Any]
) -> Outcome:
    """Run the three parties at once; each result, or the error it raised."""

    def settle(future: Future[Any]) -> Any:
        try:
            return future.result(timeout=RUN + 20)
        except ModelpactError as error:
            return error

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(f) for f in (owner, partner, compute)]
        return Outcome(*(settle(f) for f in futures))


def run(
    ws: Workspace,
    network: Network,
    task: Task,
    rows: PartnerRows,
    metrics: tuple[JointMetric, ...] = (),
) -> Outcome:
    return three(
        lambda: JointDesk(ws).run(
            network, charter="northwind-acme", model="screen", version="1.0.0", task=task
        ),
        lambda: join_as_partner(
            network, charter="northwind-acme", task=task, rows=rows, metrics=metrics
        ),
        lambda: join_as_compute(network, task=task),
    )


def access_entries(ws: Workspace) -> list[AccessEntry]:
    with ws.store.unit_of_work() as uow:
        records = uow.audit.entries(0, uow.audit.size())
    return [e for e in (decode_entry(r.entry) for r in records) if isinstance(e, AccessEntry)]


def test_scores_reach_the_partner_only_and_match_the_plaintext(
    ready: Workspace, network: Network
) -> None:
    rows = X[:5]
    found = run(ready, network, Task.SCORE, PartnerRows(rows.tolist()))
    assert isinstance(found.partner, Scores), found
    form = ModelServer(ready).linear("screen", "1.0.0")
    assert np.abs(np.array(found.partner.scores) - form.scores(rows)).max() < 1e-3
    assert np.abs(np.array(found.partner.outputs()) - MODEL.predict_proba(rows)).max() < 1e-4
    assert (found.partner.model, found.partner.version, found.partner.labels) == (
        "screen",
        "1.0.0",
        (0, 1),
    )
    assert found.compute == 5 and found.owner.rows == 5 and found.owner.metrics == {}
    (entry,) = access_entries(ready)
    assert (entry.action, entry.decision, entry.rows, entry.actor) == (
        "predict_joint",
        "allow",
        5,
        "acme",
    )
    assert entry.subject == found.owner.transcript == found.partner.transcript
    with ready.store.unit_of_work() as uow:
        assert uow.audit.size() == found.owner.audit_index + 1  # the last entry
    assert str(rows[0][0]) not in entry.model_dump_json()


def test_evaluation_reveals_the_agreed_metrics_to_both(ready: Workspace, network: Network) -> None:
    rows, labels = X[PICK], Y[PICK]
    asked = (JointMetric.ACCURACY, JointMetric.AUC)
    found = run(
        ready, network, Task.EVALUATE, PartnerRows(rows.tolist(), [str(v) for v in labels]), asked
    )
    assert isinstance(found.partner, Evaluation), found
    expected_accuracy = accuracy_score(labels, MODEL.predict(rows))
    expected_auc = roc_auc_score(labels, MODEL.decision_function(rows))
    assert found.partner.metrics["accuracy"] == pytest.approx(expected_accuracy, abs=1e-9)
    assert found.partner.metrics["auc"] == pytest.approx(expected_auc, abs=1e-5)
    assert 0.8 < expected_accuracy < 1 and found.owner.metrics == found.partner.metrics
    (entry,) = access_entries(ready)
    assert (entry.action, entry.decision, entry.rows) == ("evaluate_joint", "allow", 40)
    assert f"revealed accuracy = {expected_accuracy:.6f}" in entry.reasons


def test_a_metric_the_charter_does_not_agree_to_is_refused_and_audited(
    workspace: Workspace, network: Network
) -> None:
    ws = joint_workspace(workspace, joint=JOINT | {"metrics": ["accuracy"]})
    rows = PartnerRows(X[PICK[:10]].tolist(), [str(v) for v in Y[PICK[:10]]])
    found = run(ws, network, Task.EVALUATE, rows, (JointMetric.AUC,))
    for party in (found.owner, found.partner, found.compute):
        assert isinstance(party, Denied), party
        assert "does not agree to reveal auc" in party.summary
    (entry,) = access_entries(ws)
    assert (entry.decision, entry.action, entry.rows) == ("deny", "evaluate_joint", 10)


def test_a_charter_without_the_grant_refuses_the_run(
    workspace: Workspace, network: Network
) -> None:
    grant = JOINT_GRANT | {"actions": ["predict_joint"]}
    ws = joint_workspace(workspace, grants=[grant])
    rows = PartnerRows(X[PICK[:10]].tolist(), [str(v) for v in Y[PICK[:10]]])
    found = run(ws, network, Task.EVALUATE, rows, (JointMetric.ACCURACY,))
    assert isinstance(found.owner, Denied) and isinstance(found.partner, Denied)
    assert "does not allow evaluate_joint on screen 1.0.0" in found.partner.summary
    (entry,) = access_entries(ws)
    assert entry.decision == "deny"


def test_a_wrong_ca_fails_in_one_line_within_the_timeout(
    ready: Workspace, network: Network, tmp_path: Path
) -> None:
    other = make_tls(tmp_path / "other", ca_name="another CA")
    short = replace(network, connect_timeout=6.0, timeout=20.0)
    found = three(
        lambda: JointDesk(ready).run(
            short, charter="northwind-acme", model="screen", version="1.0.0", task=Task.SCORE
        ),
        lambda: join_as_partner(
            replace(short, tls_dir=other),
            charter="northwind-acme",
            task=Task.SCORE,
            rows=PartnerRows([[1.0] * 30]),
        ),
        lambda: join_as_compute(short, task=Task.SCORE),
    )
    for party in (found.owner, found.partner, found.compute):
        assert isinstance(party, ServerError), party
        assert "did not all connect within 6 s" in party.summary
    for party in (found.owner, found.partner):
        assert "CERTIFICATE_VERIFY_FAILED" in party.summary
    assert "broke off the TLS handshake" in found.compute.summary
    assert access_entries(ready) == []  # no partner ever asked: nothing to audit


# -- without processes ---------------------------------------------------------------------


def test_rows_are_read_strictly() -> None:
    parsed = parse_rows("a,b,y\n1,2,yes\n3,4.5,no\n", label_column="y")
    assert parsed == PartnerRows([[1.0, 2.0], [3.0, 4.5]], ["yes", "no"])
    bad = {
        "": "empty",
        "a,b\n": "holds no rows",
        "a,b\n1\n": "line 2 has 1 cells; the header has 2",
        "a,b\n1,x\n": "line 2 holds a cell that is not a number",
        "a,b\n1,nan\n": "not finite or beyond",
        "a,b\n1,3e9\n": "not finite or beyond",
    }
    for text, message in bad.items():
        with pytest.raises(InvalidInput, match=message):
            parse_rows(text)
    with pytest.raises(InvalidInput, match="no column 'y'"):
        parse_rows("a,b\n1,2\n", label_column="y")


def test_peers_and_tls_files_are_checked_before_anything_starts(tls: Path, tmp_path: Path) -> None:
    for peers in ("127.0.0.1:1,127.0.0.1:2", "a:1,b,c:3", "a:1,b:0,c:3"):
        with pytest.raises(InvalidInput):
            Network.parse(peers, tls)
    network = Network.parse("[::1]:5000,h:5001,h:5002", tls)
    assert network.peers[0] == ("::1", 5000)
    now = datetime.now(UTC)
    with pytest.raises(NotFound, match="does not exist"):
        replace(network, tls_dir=tmp_path).check(Role.OWNER, now)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for name in ("mpyc_ca.crt", "party_1.crt", "party_1.key"):
        (mixed / name).write_bytes((tls / name).read_bytes())
    (mixed / "party_1.key").chmod(0o600)
    (mixed / "party_0.crt").write_bytes((tls / "party_1.crt").read_bytes())
    write_private_file(mixed / "party_0.key", (tls / "party_1.key").read_bytes())
    with pytest.raises(InvalidInput, match="certificate of party 1, not of the owner"):
        replace(network, tls_dir=mixed).check(Role.OWNER, now)


def test_multiclass_accuracy_counts_the_rows_whose_own_class_scores_highest(
    workspace: Workspace, network: Network
) -> None:
    digits, classes = load_digits(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(digits[:300], classes[:300])  # the rows below are partly unseen: some are wrong
    ModelRegistry(workspace).add("digits", export_sklearn(model), version="1.0.0", source="d")
    grant = JOINT_GRANT | {"model": "digits"}
    ws = joint_workspace(workspace, grants=[JOINT_GRANT, grant])
    rows, labels = digits[1500:1530], classes[1500:1530]
    found = three(
        lambda: JointDesk(ws).run(network, charter="northwind-acme", model="digits",
                                  version="1.0.0", task=Task.EVALUATE),
        lambda: join_as_partner(network, charter="northwind-acme", task=Task.EVALUATE,
                                rows=PartnerRows(rows.tolist(), [str(v) for v in labels]),
                                metrics=(JointMetric.ACCURACY,)),
        lambda: join_as_compute(network, task=Task.EVALUATE),
    )  # fmt: skip
    assert isinstance(found.partner, Evaluation), found
    expected = accuracy_score(labels, model.predict(rows))
    assert 0.5 < expected < 1
    assert found.partner.metrics == {"accuracy": pytest.approx(expected, abs=1e-9)}


def test_a_peers_pickle_decodes_to_plain_data_only() -> None:
    assert _plain_loads(pickle.dumps(["hello", 3, {"a": b"x"}])) == ["hello", 3, {"a": b"x"}]
    for hostile in (pickle.dumps(os.system), pickle.dumps(np.zeros(2))):
        with pytest.raises(pickle.UnpicklingError, match="pickled global"):
            _plain_loads(hostile)


def test_magnitudes_are_powers_of_two_that_bound_the_values() -> None:
    assert [magnitude_bits(v) for v in ([], [0.5], [1.0], [-3.0], [4.0], [4.01])] == [
        0, 0, 0, 2, 2, 3,
    ]  # fmt: skip
