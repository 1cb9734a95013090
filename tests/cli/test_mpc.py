"""``modelpact mpc``: three real ``modelpact mpc join`` processes over TLS on 127.0.0.1, the
certificate commands, and one-line refusals for every bad input."""

from __future__ import annotations

import csv
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score

from modelpact.audit.entries import AccessEntry, decode_entry
from modelpact.services import open_workspace
from tests.cli.conftest import (
    Cli,
    Result,
    Setup,
    assert_one_line_error,
    render_charter,
    tree_digest,
)
from tests.services.test_joint import free_port

MODELPACT = str(Path(sys.executable).with_name("modelpact"))
RUN = 120  # seconds any one party process may take (the suite may load the host)
X, Y = load_breast_cancer(return_X_y=True)
MODEL = LogisticRegression(max_iter=5000).fit(X, Y)  # as tests/cli/conftest.py's onnx_model
PICK = np.r_[np.flatnonzero(MODEL.predict(X) != Y)[:5], np.arange(35)]


def write_rows(path: Path, rows: np.ndarray, labels: np.ndarray | None = None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        names = [f"f{i}" for i in range(rows.shape[1])]
        writer.writerow(names if labels is None else [*names, "diagnosis"])
        for i, row in enumerate(rows):
            cells = [repr(float(v)) for v in row]
            writer.writerow(cells if labels is None else [*cells, str(labels[i])])
    return path


@pytest.fixture
def joint(cli: Cli, tmp_path: Path, onnx_model: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    """A workspace with cancer-screen 1.0.0 and partner acme under the demo charter, cut to
    that model's grant and extended to joint runs; certificates for a one-host run."""
    workspace = tmp_path / "owner"
    assert cli("init", workspace).code == 0
    monkeypatch.setenv("MODELPACT_WORKSPACE", str(workspace))
    assert cli("model", "add", "cancer-screen", onnx_model, "--version", "1.0.0").code == 0
    partner_key = cli("partner", "keygen", "--out", tmp_path / "acme.key").out.strip()
    assert cli("partner", "add", "acme", "--public-key", partner_key).code == 0
    owner_key = (workspace / "keys" / "owner-ed25519.pub").read_text().strip()
    setup = Setup(tmp_path, workspace, owner_key, partner_key, tmp_path / "acme.key")
    source = render_charter(
        tmp_path / "charter.yaml",
        owner_key=owner_key,
        partner_key=partner_key,
        extra="joint:\n  compute_party: {id: tallyhall, name: Tally Hall}\n  metrics: [accuracy]\n",
    )
    text = source.read_text().replace(
        "actions: [predict, predict_encrypted]",
        "actions: [predict, predict_encrypted, predict_joint, evaluate_joint]",
    )
    cut = text.index("  - model: cancer-screen-mlp")
    source.write_text(text[:cut] + text[text.index("limits:") :])
    envelope = tmp_path / "charter.signed.json"
    assert cli("charter", "sign", source, "--out", envelope).code == 0
    assert cli("charter", "countersign", envelope, "--key", setup.partner_key_file).code == 0
    assert cli("charter", "apply", envelope).code == 0
    assert cli("mpc", "certs", "--out", tmp_path / "tls").code == 0
    return setup


def three(setup: Setup, task: str, partner: list[str], owner: list[str] = ()) -> list[Result]:
    """Owner, partner and compute as three ``modelpact mpc join`` processes."""
    peers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    common = ["mpc", "join", "--peers", peers, "--tls-dir", str(setup.root / "tls"),
              "--task", task, "--connect-timeout", "40", "--timeout", "90"]  # fmt: skip
    commands = [
        [*common, "--role", "owner", "--charter", "northwind-acme-screening",
         "--model", "cancer-screen", *owner],
        [*common, "--role", "partner", "--charter", "northwind-acme-screening", *partner],
        [*common, "--role", "compute"],
    ]  # fmt: skip

    def run(args: list[str]) -> Result:
        env = {"MODELPACT_WORKSPACE": str(setup.workspace), "PATH": "/usr/bin:/bin"}
        try:
            done = subprocess.run(
                [MODELPACT, *args], capture_output=True, text=True, timeout=RUN, env=env
            )
        except subprocess.TimeoutExpired:  # run() kills the process first
            return Result(124, "", "modelpact: error: the test's timeout ran out\n")
        return Result(done.returncode, done.stdout, done.stderr)

    with ThreadPoolExecutor(3) as pool:
        return list(pool.map(run, commands))


def access_entries(setup: Setup) -> list[AccessEntry]:
    with open_workspace(setup.workspace) as ws, ws.store.unit_of_work() as uow:
        records = uow.audit.entries(0, uow.audit.size())
    return [e for e in (decode_entry(r.entry) for r in records) if isinstance(e, AccessEntry)]


def test_score_then_evaluate_from_the_command_line(joint: Setup) -> None:
    rows = write_rows(joint.root / "rows.csv", X[:4])
    outputs = joint.root / "outputs.csv"
    owner, partner, compute = three(joint, "score", ["--rows", str(rows), "--out", str(outputs)])
    assert (owner.code, partner.code, compute.code) == (0, 0, 0), (owner, partner, compute)
    assert "scored 4 rows with cancer-screen 1.0.0" in partner.out
    assert "4 rows" in owner.out and "4 rows" in compute.out
    with outputs.open() as handle:
        table = list(csv.reader(handle))
    assert table[0] == ["label", "p_0", "p_1"]
    found = np.array([[float(v) for v in row[1:]] for row in table[1:]])
    assert np.abs(found - MODEL.predict_proba(X[:4])).max() < 1e-4
    assert [int(row[0]) for row in table[1:]] == MODEL.predict(X[:4]).tolist()

    labelled = write_rows(joint.root / "labelled.csv", X[PICK], Y[PICK])
    owner, partner, compute = three(
        joint, "evaluate", ["--rows", str(labelled), "--labels", "diagnosis"]
    )
    assert (owner.code, partner.code, compute.code) == (0, 0, 0), (owner, partner, compute)
    expected = accuracy_score(Y[PICK], MODEL.predict(X[PICK]))
    for side in (owner, partner):
        assert f"accuracy │ {expected:.6f}" in side.out, side.out
    assert "40 rows" in compute.out and "accuracy" not in compute.out
    score, evaluation = access_entries(joint)
    assert (score.action, score.decision, score.rows) == ("predict_joint", "allow", 4)
    assert (evaluation.action, evaluation.rows) == ("evaluate_joint", 40)
    assert f"revealed accuracy = {expected:.6f}" in evaluation.reasons
    assert "auc" not in partner.out  # not asked: not revealed


def test_a_metric_not_agreed_is_refused_by_all_three_in_one_line(cli: Cli, joint: Setup) -> None:
    labelled = write_rows(joint.root / "labelled.csv", X[PICK], Y[PICK])
    asked = ["--rows", str(labelled), "--labels", "diagnosis", "--metrics", "accuracy,auc"]
    results = three(joint, "evaluate", asked)
    for result in results:
        assert_one_line_error(result, "does not agree to reveal auc")
    (entry,) = access_entries(joint)
    assert (entry.decision, entry.action, entry.rows) == ("deny", "evaluate_joint", 40)
    before = tree_digest(joint.workspace)
    owner = ["mpc", "join", "--role", "owner", "--peers", "h:1,h:2,h:3", "--task", "score",
             "--tls-dir", joint.root / "tls", "--model", "cancer-screen"]  # fmt: skip
    assert_one_line_error(cli(*owner, "--charter", "nope"), "nope")
    assert tree_digest(joint.workspace) == before


# -- without a run ---------------------------------------------------------------------------


def test_bad_inputs_fail_in_one_line_and_write_nothing(cli: Cli, tmp_path: Path) -> None:
    tls, rows = tmp_path / "tls", write_rows(tmp_path / "rows.csv", X[:3])
    assert cli("mpc", "certs", "--out", tls).code == 0
    base = ["mpc", "join", "--peers", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "--tls-dir", tls]
    cases = {
        ("--role", "partner", "--task", "score", "--charter", "c", "--rows", rows):
            "the partner needs --out",
        ("--role", "partner", "--task", "evaluate", "--charter", "c", "--rows", rows):
            "evaluate needs --labels",
        ("--role", "partner", "--task", "score", "--charter", "c", "--rows", rows,
         "--out", tmp_path / "o.csv", "--labels", "x"): "--labels applies to evaluate only",
        ("--role", "partner", "--task", "evaluate", "--charter", "c", "--rows", rows,
         "--labels", "f0", "--metrics", "f1"): "--metrics takes accuracy, auc",
        ("--role", "partner", "--task", "score", "--charter", "c", "--rows", tmp_path / "no",
         "--out", tmp_path / "o.csv"): "does not exist",
        ("--role", "compute", "--task", "score", "--model", "m"): "--model do(es) not apply",
        ("--role", "owner", "--task", "score", "--charter", "c"): "the owner needs --model",
    }  # fmt: skip
    for args, message in cases.items():
        assert_one_line_error(cli(*base, *args), message)
    assert not (tmp_path / "o.csv").exists()
    wrong = ["mpc", "join", "--peers", "a:1,b:2", "--tls-dir", tls, "--role", "compute"]
    assert_one_line_error(cli(*wrong, "--task", "score"), "a joint run has three")
    empty = ["--tls-dir", tmp_path, "--role", "compute", "--task", "score"]
    assert_one_line_error(cli(*base[:4], *empty), "mpyc_ca.crt does not exist")
    before = sorted(p.name for p in tls.iterdir())
    assert_one_line_error(cli("mpc", "certs", "--out", tls), "already exists")
    assert sorted(p.name for p in tls.iterdir()) == before


def test_each_party_keeps_its_key_and_the_ca_signs_its_request(cli: Cli, tmp_path: Path) -> None:
    assert cli("mpc", "ca", "--out", tmp_path / "ca").code == 0
    assert (tmp_path / "ca" / "mpyc_ca.key").stat().st_mode & 0o777 == 0o600
    party = tmp_path / "partner"
    assert cli("mpc", "request", "--role", "partner", "--tls-dir", party).code == 0
    assert (party / "party_1.key").stat().st_mode & 0o777 == 0o600
    sign = ["mpc", "issue", "--ca-dir", tmp_path / "ca", "--request", party / "party_1.csr"]
    assert_one_line_error(
        cli(*sign, "--role", "compute", "--out", party / "party_2.crt"),
        "names 'MPyC party 1', not 'MPyC party 2'",
    )
    assert not (party / "party_2.crt").exists()
    assert cli(*sign, "--role", "partner", "--out", party / "party_1.crt").code == 0
    assert "BEGIN CERTIFICATE" in (party / "party_1.crt").read_text()
