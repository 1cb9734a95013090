"""Joint (MPC) runs with three real parties over TLS on 127.0.0.1: what they cost.

Run: .venv/bin/python -m bench.joint [--score-rows 1,1000] [--eval-rows 500] [--no-auc]

The model is the breast-cancer logistic regression (sklearn ``load_breast_cancer``, 30
features, StandardScaler + LogisticRegression), exported to ONNX and read back as the
affine form the owner's party uses.  Each run starts three party processes (the real
:mod:`modelpact.services.joint_party`); the owner's questions are answered "go" without a
workspace, so the figures are the protocol's, not the audit log's.  Printed as a markdown
table: wall time (process start, TLS, protocol), protocol time (from the first hello to
the result, as the owner's party measured it), and the error against plaintext.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.charter.model import JointMetric
from modelpact.crypto import write_private_file
from modelpact.crypto.tls import create_ca, issue_party_cert, party_request
from modelpact.runtime import export_sklearn
from modelpact.runtime.linear import LinearForm, linear_form
from modelpact.services.joint import (
    Evaluation,
    Network,
    PartnerRows,
    Role,
    Scores,
    Task,
    join_as_compute,
    join_as_partner,
    owner_hello,
    owner_secrets,
    run_party,
)


def certificates(folder: Path) -> Path:
    now = datetime.now(UTC)
    ca, ca_key = create_ca("bench joint CA", now=now)
    (folder / "mpyc_ca.crt").write_bytes(ca)
    for index in range(3):
        request, key = party_request(index)
        cert = issue_party_cert(ca, ca_key, request, index=index, now=now)
        (folder / f"party_{index}.crt").write_bytes(cert)
        write_private_file(folder / f"party_{index}.key", key)
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def one_run(
    tls: Path, form: LinearForm, task: Task, rows: PartnerRows, metrics: tuple[JointMetric, ...]
) -> tuple[float, dict[str, Any], Scores | Evaluation]:
    """Three parties at once; ``(wall seconds, the owner's result, the partner's)``."""
    peers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    network = Network.parse(peers, tls, timeout=900.0, connect_timeout=60.0)
    hello = owner_hello(form, charter="bench", model="cancer", version="1.0.0")
    parties: list[Callable[[], Any]] = [
        lambda: run_party(Role.OWNER, task, network, hello=hello, secrets=owner_secrets(form),
                          on_ask=lambda _: {"go": True}),
        lambda: join_as_partner(network, charter="bench", task=task, rows=rows, metrics=metrics),
        lambda: join_as_compute(network, task=task),
    ]  # fmt: skip
    start = time.perf_counter()
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(party) for party in parties]
        owner, partner, _ = (f.result(timeout=1000) for f in futures)
    return time.perf_counter() - start, owner, partner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score-rows", default="1,1000")
    parser.add_argument("--eval-rows", type=int, default=500)
    parser.add_argument("--no-auc", action="store_true", help="skip the AUC run (the slowest)")
    args = parser.parse_args()

    features, labels = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(features, labels)
    form = linear_form(export_sklearn(model))
    table: list[tuple[str, int, float, float, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        tls = certificates(Path(folder))
        for count in (int(c) for c in args.score_rows.split(",")):
            rows = np.resize(features, (count, features.shape[1]))
            wall, owner, partner = one_run(tls, form, Task.SCORE, PartnerRows(rows.tolist()), ())
            assert isinstance(partner, Scores)
            error = np.abs(np.array(partner.scores) - form.scores(rows)).max()
            table.append(("score", count, wall, owner["seconds"], f"max |Δscore| {error:.1e}"))
        count = args.eval_rows
        rows, truth = np.resize(features, (count, 30)), np.resize(labels, count)
        named = PartnerRows(rows.tolist(), [str(v) for v in truth])
        runs = [(JointMetric.ACCURACY,)] + ([] if args.no_auc else [(JointMetric.AUC,)])
        for metrics in runs:
            wall, owner, partner = one_run(tls, form, Task.EVALUATE, named, metrics)
            assert isinstance(partner, Evaluation)
            (metric,) = metrics
            expected = (
                accuracy_score(truth, model.predict(rows))
                if metric is JointMetric.ACCURACY
                else roc_auc_score(truth, model.decision_function(rows))
            )
            found = partner.metrics[metric.value]
            note = f"{found:.6f} (sklearn {expected:.6f})"
            table.append((metric.value, count, wall, owner["seconds"], note))

    print(f"joint runs, 3 parties over TLS on 127.0.0.1 — {platform.processor() or 'cpu'}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"MPyC {metadata.version('mpyc')}\n")  # fmt: skip
    print("| task | rows | wall (s) | protocol (s) | result |")
    print("|---|---:|---:|---:|---|")
    for task, count, wall, protocol, note in table:
        print(f"| {task} | {count:,} | {wall:.2f} | {protocol:.2f} | {note} |")


if __name__ == "__main__":
    main()
