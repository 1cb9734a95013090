"""``model add --reference``, ``modelpact redteam`` and ``modelpact monitor`` from the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter


def write_csv(path: Path, rows: list[list[float]], header: list[str] | None = None) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def test_redteam_writes_its_table_and_plot_and_marks_the_monitor(
    cli: Cli, setup: Setup, onnx_model: Path
) -> None:
    features, labels = load_breast_cancer(return_X_y=True)
    train, held, _, held_y = train_test_split(features, labels, test_size=0.25, random_state=0)
    reference = write_csv(setup.root / "train.csv", train.tolist(), [f"f{i}" for i in range(30)])
    added = cli(
        "model", "add", "cancer-screen", onnx_model, "--version", "1.1.0", "--reference", reference
    )
    assert added.code == 0, added.err
    assert "no --reference" not in added.out
    plain = cli("model", "add", "cancer-screen-mlp", onnx_model, "--version", "1.1.0")
    assert "no --reference rows" in plain.out
    envelope = signed_charter(cli, setup)
    assert cli("charter", "apply", envelope).code == 0
    data = write_csv(
        setup.root / "held.csv",
        [[*row, label] for row, label in zip(held.tolist(), held_y.tolist(), strict=True)],
        [*(f"f{i}" for i in range(30)), "label"],
    )
    out = setup.root / "rt"
    result = cli(
        "redteam",
        "--charter", "northwind-acme-screening",
        "--model", "cancer-screen",
        "--data", data,
        "--attack", "equation-solving",
        "--attack", "adaptive",
        "--budget", "200",
        "--out", out,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert (out / "fidelity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    assert report["ladder"] == ["throttle", "harden", "suspend"]
    curves = {(c["attack"], c["policy"]): c for c in report["curves"]}
    # Exact scores: equation solving recovers the model (less well when one of its answers
    # was a watermark's swap: about one run in two), and the monitor sees perturbations.
    exact = curves[("equation-solving", "scores")]
    assert exact["points"][-1][1] >= 0.85
    assert exact["marks"] and exact["marks"][0][1] == "throttle"
    assert exact["logged"] is not None  # the gateway's own log holds the incident
    # Labels only: equation solving cannot even start, and the report says why.
    assert "two class scores" in curves[("equation-solving", "label")]["failure"]
    table = (out / "report.md").read_text()
    assert "| equation-solving | scores/2dp (grant) |" in table


def test_monitor_commands(cli: Cli, setup: Setup, onnx_model: Path) -> None:
    listed = cli("monitor", "list")
    assert listed.code == 0 and "no responses in force" in listed.out
    missing = cli(
        "monitor", "clear", "--partner", "acme", "--charter", "c", "--model", "m", "--reason", "x"
    )
    assert_one_line_error(missing, "no response in force")
    narrow = write_csv(setup.root / "narrow.csv", [[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]])
    wrong = cli("model", "add", "other", onnx_model, "--version", "1", "--reference", narrow)
    assert_one_line_error(wrong, "2 features", "30")
    bad = setup.root / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    assert_one_line_error(
        cli("model", "add", "other", onnx_model, "--version", "1", "--reference", bad),
        "line 2",
    )
