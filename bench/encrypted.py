"""Encrypted predictions (CKKS): row and batch packing through the gateway, beside Concrete ML.

Run: .venv/bin/python -m bench.encrypted [--row-requests 50] [--batch-rows 4096]
     [--batch-requests 5] [--concrete-venv /work/venvs/concrete-ml] [--concrete-rows 50]

One run, on loopback.  The model: scikit-learn's breast-cancer data (30 features), split
70/30 (``random_state=0``, stratified), a StandardScaler + LogisticRegression pipeline
fitted on the training part, exported to ONNX and registered in a temporary workspace
(SQLite), with a charter granting ``predict_encrypted`` (4,096 rows per request, no
quota).  ``modelpact``'s gateway runs in its own process with one model worker (as
``modelpact serve`` does; plain HTTP on 127.0.0.1), and the partner's blocking SDK drives it:

- *row packing*: one test row per request, ``--row-requests`` of them after a warm-up:
  the partner's latency end to end (encrypt, upload, score in the worker, answer,
  decrypt, link), and each step timed alone in this process with the same keys;
- *batch packing*: ``--batch-rows`` rows per request (one ciphertext per feature),
  ``--batch-requests`` requests: rows/s end to end, and the same steps alone.

Bytes per row are what went over the wire (request bodies and response bodies, counted
by the SDK's HTTP client), the context upload (once per session) shown apart.  Decrypted
probabilities must agree with scikit-learn's within 1e-3 or the run fails.

Concrete ML (``bench/concrete_ml/baseline.py``) runs in the same run from its own venv
(``bash bench/concrete_ml/setup.sh``): it pins numpy, scikit-learn and torch versions
this project cannot share.  Without that venv its lines are left out and said so.  The
issue's targets: batch at least 100x Concrete ML's rows/s with at most a fifth of its bytes
per row; row packing within 5x its latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODEL = "breast-cancer"
PARTNER = "bench-partner"
CHARTER = "owner-bench-partner"
PURPOSE = "benchmark"


def split() -> tuple[Any, Any, Any, Any]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    parts: tuple[Any, Any, Any, Any] = train_test_split(
        x, y, test_size=0.3, random_state=0, stratify=y
    )
    return parts


def build(root: Path, x_train: Any, y_train: Any, partner_key: Any) -> Any:
    """The workspace, and the fitted pipeline (for the reference probabilities)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from modelpact.charter import Charter, to_yaml
    from modelpact.runtime import export_sklearn
    from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, init_workspace

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    pipeline.fit(x_train, y_train)
    with init_workspace(root) as ws:
        ModelRegistry(ws).add(MODEL, export_sklearn(pipeline), version="1.0.0", source="m.onnx")
        PartnerDirectory(ws).enrol(PARTNER, partner_key.verify_key.encode())
        now = ws.clock()
        charter = Charter.model_validate(
            {
                "charter": CHARTER,
                "version": 1,
                "owner": {"name": "Bench owner", "key": ws.owner_verify_key.encode()},
                "partner": {
                    "id": PARTNER,
                    "name": "Bench partner",
                    "key": partner_key.verify_key.encode(),
                },
                "objective": "Measure encrypted predictions.",
                "valid": {
                    "from": (now - timedelta(days=1)).isoformat(),
                    "until": (now + timedelta(days=30)).isoformat(),
                },
                "purposes": [PURPOSE],
                "grants": [
                    {
                        "model": MODEL,
                        "versions": "1.*",
                        "actions": ["predict", "predict_encrypted"],
                        "output": {"kind": "scores"},
                    }
                ],
                "limits": {
                    "requests_per_minute": 1_000_000,
                    "max_batch_rows": 4096,
                    "session_ttl": "1h",
                },
            }
        )
        desk = CharterDesk(ws)
        signed = desk.sign(to_yaml(charter), source="bench.yaml")
        desk.apply(signed.countersign(partner_key).to_json(), source="bench.json")
    return pipeline


@contextmanager
def gateway(workspace: Path) -> Iterator[str]:
    """``python -m bench.gateway.serve secure --workers 1`` on a free loopback port."""
    from bench.gateway.servers import free_port

    port = free_port()
    log = workspace.parent / "gateway.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.gateway.serve", "secure", "--port", str(port),
             "--workspace", str(workspace), "--workers", "1"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:  # bounded: 60 s
                if process.poll() is not None:
                    raise RuntimeError("the gateway exited:\n" + log.read_text()[-2000:])
                try:
                    if httpx.get(url + "/readyz", timeout=2).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the gateway did not start within 60 s")
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


class Wire:
    """Bytes each way, counted on the SDK's HTTP client."""

    def __init__(self) -> None:
        self.sent = self.received = self.context = 0

    def hooks(self) -> dict[str, list[Callable[..., None]]]:
        def request(r: httpx.Request) -> None:
            self.sent += len(r.content)
            if r.method == "PUT":
                self.context += len(r.content)

        def response(r: httpx.Response) -> None:
            r.read()
            self.received += len(r.content)

        return {"request": [request], "response": [response]}

    def take(self) -> tuple[int, int]:
        found = (self.sent, self.received)
        self.sent = self.received = 0
        return found


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def steps(packing: str, rows: Any, repeat: int, form: Any) -> dict[str, float]:
    """Encrypt, score (the gateway's code, in this process) and decrypt, each timed alone."""
    from modelpact.client.encrypted import Encryption
    from modelpact.crypto.homomorphic import PublicContext
    from modelpact.services.encrypted import ACCEPTED

    keys = Encryption().keys(packing, rows.shape[1])  # type: ignore[arg-type]
    public = PublicContext.load(keys.public, allowed=ACCEPTED, max_bytes=64 << 20)
    if packing == "batch":
        enc_s, cts = timed(lambda: keys.secret.encrypt_columns(rows), repeat)
        run_s, (scores, _) = timed(lambda: public.score_columns(cts, form.weights, form.bias),
                                   repeat)  # fmt: skip
        dec_s, _ = timed(lambda: keys.secret.decrypt(scores[0], len(rows)), repeat)
    else:
        enc_s, cts = timed(lambda: keys.secret.encrypt_rows(rows), repeat)
        run_s, scores = timed(lambda: public.score_rows(cts, form.weights, form.bias), repeat)
        columns, width = form.weights.shape
        dec_s, _ = timed(lambda: [keys.secret.decrypt_row(c, columns, width) for c in scores],
                         repeat)  # fmt: skip
    return {
        "encrypt_ms": enc_s * 1000,
        "run_ms": run_s * 1000,
        "decrypt_ms": dec_s * 1000,
        "input_bytes": float(sum(len(c) for c in cts)),
        "output_bytes": float(sum(len(c) for c in scores)),
    }


def concrete(venv: Path, rows: int) -> dict[str, Any] | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    script = ROOT / "bench" / "concrete_ml" / "baseline.py"
    done = subprocess.run(
        [str(python), str(script), "--rows", str(rows)],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError("Concrete ML's baseline failed:\n" + done.stderr[-2000:])
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.encrypted")
    parser.add_argument("--row-requests", type=int, default=50)
    parser.add_argument("--batch-rows", type=int, default=4096)
    parser.add_argument("--batch-requests", type=int, default=5)
    parser.add_argument(
        "--concrete-venv",
        type=Path,
        default=Path(os.environ.get("CONCRETE_VENV", "/work/venvs/concrete-ml")),
    )
    parser.add_argument("--concrete-rows", type=int, default=50)
    args = parser.parse_args()

    from modelpact.client import PartnerClient
    from modelpact.crypto import SigningKey
    from modelpact.runtime import export_sklearn
    from modelpact.runtime.linear import linear_form

    x_train, x_test, y_train, _ = split()
    key = SigningKey.generate()
    batch_rows = np.resize(x_test, (args.batch_rows, x_test.shape[1]))  # test rows, cycled
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        pipeline = build(Path(scratch) / "ws", x_train, y_train, key)
        form = linear_form(export_sklearn(pipeline))
        with gateway(Path(scratch) / "ws") as url:
            wire = Wire()
            sdk = PartnerClient(url, partner=PARTNER, key=key, charter=CHARTER, purpose=PURPOSE,
                                attest=False, timeout=120.0)  # fmt: skip
            sdk._http.event_hooks = wire.hooks()  # count what crosses the wire
            with sdk:
                for packing, rows in (("rows", x_test[:1]), ("batch", batch_rows[:64])):
                    sdk.predict_encrypted(MODEL, rows, packing=packing)  # keys, upload, load
                sdk.predict(MODEL, x_test[:1])
                wire.take()
                # The plain path through the same gateway, for what the encryption adds.
                plain = []
                for i in range(args.row_requests):
                    started = time.perf_counter()
                    sdk.predict(MODEL, x_test[i % len(x_test)][None, :])
                    plain.append(time.perf_counter() - started)
                results["plain_p50_ms"] = statistics.median(plain) * 1000
                wire.take()
                # Row packing: one row per request.
                latencies = []
                for i in range(args.row_requests):
                    row = x_test[i % len(x_test)][None, :]
                    started = time.perf_counter()
                    found = sdk.predict_encrypted(MODEL, row, packing="rows")
                    latencies.append(time.perf_counter() - started)
                    expected = pipeline.predict_proba(row)
                    got = np.array([[s["score"] for s in found.outputs[0]["scores"]]])
                    assert np.abs(got - expected).max() < 1e-3, "row packing disagrees"
                sent, received = wire.take()
                results["rows"] = {
                    "p50_ms": statistics.median(latencies) * 1000,
                    "p90_ms": float(np.percentile(latencies, 90)) * 1000,
                    "bytes_per_row": (sent + received) / args.row_requests,
                    "sent_per_row": sent / args.row_requests,
                    "received_per_row": received / args.row_requests,
                }
                # Batch packing.
                elapsed = []
                for _ in range(args.batch_requests):
                    started = time.perf_counter()
                    found = sdk.predict_encrypted(MODEL, batch_rows, packing="batch")
                    elapsed.append(time.perf_counter() - started)
                    probabilities = np.array(
                        [[s["score"] for s in o["scores"]] for o in found.outputs]
                    )
                    assert np.abs(probabilities - pipeline.predict_proba(batch_rows)).max() < 1e-3
                sent, received = wire.take()
                seconds = statistics.median(elapsed)
                requests = args.batch_requests
                results["batch"] = {
                    "seconds_per_request": seconds,
                    "rows_per_s": args.batch_rows / seconds,
                    "bytes_per_row": (sent + received) / (requests * args.batch_rows),
                    "sent_per_row": sent / (requests * args.batch_rows),
                    "received_per_row": received / (requests * args.batch_rows),
                }
                results["context_upload_bytes"] = wire.context
        results["rows"]["steps"] = steps("rows", x_test[:1], 30, form)
        results["batch"]["steps"] = steps("batch", batch_rows, 5, form)
    baseline = concrete(args.concrete_venv, args.concrete_rows)
    report(args, results, baseline)


def report(args: Any, results: dict[str, Any], baseline: dict[str, Any] | None) -> None:
    rows, batch = results["rows"], results["batch"]
    rs, bs = rows["steps"], batch["steps"]
    n = args.batch_rows
    print(f"\n## Encrypted predictions (breast cancer, 30 features; {n} rows per batch request)\n")
    print("| | latency or rows/s | bytes per row | encrypt | run (server) | decrypt |")
    print("|---|---|---|---|---|---|")
    print(
        f"| modelpact row packing, through the gateway | p50 {rows['p50_ms']:.1f} ms "
        f"(p90 {rows['p90_ms']:.1f}) | {rows['bytes_per_row'] / 1024:.0f} KiB | "
        f"{rs['encrypt_ms']:.2f} ms | {rs['run_ms']:.2f} ms | {rs['decrypt_ms']:.2f} ms |"
    )
    print(
        f"| modelpact batch packing, through the gateway | {batch['rows_per_s']:,.0f} rows/s "
        f"({batch['seconds_per_request'] * 1000:.0f} ms per {n} rows) | "
        f"{batch['bytes_per_row']:,.0f} B | {bs['encrypt_ms'] / n * 1000:.1f} µs/row | "
        f"{bs['run_ms'] / n * 1000:.2f} µs/row | {bs['decrypt_ms'] / n * 1000:.2f} µs/row |"
    )
    print(
        f"| modelpact plain predict (one row, no encryption), same gateway | "
        f"p50 {results['plain_p50_ms']:.1f} ms | | | | |"
    )
    if baseline is None:
        print(f"\nConcrete ML: no venv at {args.concrete_venv} (bash bench/concrete_ml/setup.sh)")
    else:
        c_latency = baseline["encrypt_ms"] + baseline["run_ms"] + baseline["decrypt_ms"]
        c_bytes = baseline["input_bytes_per_row"] + baseline["output_bytes_per_row"]
        c_rate = 1000 / c_latency
        print(
            f"| Concrete ML {baseline.get('concrete_ml_version', '?')} client/server, "
            f"in process | {c_latency:.1f} ms ({c_rate:.0f} rows/s) | {c_bytes / 1024:.1f} KiB "
            f"| {baseline['encrypt_ms']:.2f} ms | {baseline['run_ms']:.2f} ms | "
            f"{baseline['decrypt_ms']:.2f} ms |"
        )
        print("\n| ratio (target) | measured |")
        print("|---|---|")
        print(f"| batch rows/s ÷ Concrete ML's (≥ 100×) | {batch['rows_per_s'] / c_rate:,.0f}× |")
        print(
            f"| batch bytes/row ÷ Concrete ML's (≤ 0.2) | {batch['bytes_per_row'] / c_bytes:.3f} |"
        )
        print(f"| row latency ÷ Concrete ML's (≤ 5×) | {rows['p50_ms'] / c_latency:.2f}× |")
        print(
            f"| server run per row, batch ÷ Concrete ML's | "
            f"{bs['run_ms'] / n / baseline['run_ms']:.5f} |"
        )
    print(
        f"\nContext uploads, once per session and packing: {results['context_upload_bytes']} "
        "bytes in all (the parameters; neither packing needs evaluation keys)"
    )
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; command: python -m bench.encrypted "
        f"--row-requests {args.row_requests} --batch-rows {n} "
        f"--batch-requests {args.batch_requests}"
    )
    print("\n" + json.dumps({"modelpact": results, "concrete_ml": baseline}, default=float))


if __name__ == "__main__":
    main()
