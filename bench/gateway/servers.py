"""The servers under test: how each is started, stopped, checked and driven."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from bench.gateway import mlserver
from bench.gateway.bare import PATH as BARE_PATH
from bench.gateway.drive import Result, SessionSpec
from bench.gateway.workspace import CHARTER, MODEL, PARTNER, PURPOSE, BenchModel
from modelpact.client import PartnerClient
from modelpact.crypto import SigningKey

__all__ = ["REPO", "Server", "check_agreement", "free_port", "servers_for", "start"]

REPO = Path(__file__).resolve().parents[2]
START_SECONDS = 60.0
MLSERVER_START_SECONDS = 120.0
STOP_SECONDS = 10.0
AGREEMENT = 1e-4  # P(class 1) may differ this much: float32 ONNX against float64 scikit-learn


@dataclass
class Server:
    """One server under test, in its own process group, and how to drive it."""

    key: str
    label: str
    command: list[str]
    cwd: Path
    url: str
    path: str
    body: str
    ready: tuple[str, str]  # method, path answered 200 once the server serves
    scores: Callable[[Server, list[list[float]]], list[float]]
    start_seconds: float = START_SECONDS
    ca_path: str | None = None
    session: SessionSpec | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    results: list[Result] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def start(server: Server, logs: Path, stack: contextlib.ExitStack) -> None:
    """Start ``server`` and return once it answers; it is stopped when ``stack`` closes."""
    server.log = logs / f"{server.key}.log"
    out: IO[bytes] = stack.enter_context(server.log.open("wb"))
    server.process = subprocess.Popen(
        server.command,
        cwd=server.cwd,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: MLServer's workers stop with it
    )
    stack.callback(stop, server)
    deadline = time.monotonic() + server.start_seconds
    method, path = server.ready
    verify = ssl.create_default_context(cafile=server.ca_path) if server.ca_path else True
    with httpx.Client(base_url=server.url, timeout=2.0, verify=verify) as http:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"{server.label} exited ({server.process.returncode}) while starting:\n"
                    + log_tail(server.log)
                )
            try:
                content = server.body if method == "POST" else None
                headers = {"content-type": "application/json"}
                if http.request(method, path, content=content, headers=headers).is_success:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.label} did not answer within {server.start_seconds:.0f} s:\n"
                    + log_tail(server.log)
                )
            time.sleep(0.1)


def stop(server: Server) -> None:
    """Terminate the server's process group (SIGTERM, then SIGKILL after a grace period)."""
    process = server.process
    if process is None:
        return
    if process.poll() is not None:  # the leader is gone: end whatever it left in its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        return
    for sig, grace in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# -- what each server answers: P(class 1) per row, to check they serve the same model ------


def bare_scores(server: Server, rows: list[list[float]]) -> list[float]:
    body = json.dumps({"rows": rows})
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        response = http.post(server.path, content=body, headers=headers)
    response.raise_for_status()
    return [float(row[1]) for row in response.json()["scores"]]


def secure_scores(server: Server, rows: list[list[float]]) -> list[float]:
    """Through the SDK itself: a session opened with the partner's key, then a prediction."""
    assert server.session is not None
    key = SigningKey.load(Path(server.session.key_path))
    with PartnerClient(
        server.url,
        partner=PARTNER,
        key=key,
        charter=CHARTER,
        purpose=PURPOSE,
        verify=server.ca_path or True,
        timeout=10.0,
    ) as client:
        prediction = client.predict(MODEL, rows)
        client.close_session()
    found = []
    for output in prediction.outputs:
        (score,) = [s["score"] for s in output["scores"] if s["label"] == 1]
        found.append(float(score))
    return found


def mlserver_scores(server: Server, rows: list[list[float]]) -> list[float]:
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=10.0) as http:
        response = http.post(server.path, content=mlserver.request_body(rows), headers=headers)
    response.raise_for_status()
    return mlserver.positive_scores(response.content)


def check_agreement(servers: list[Server], rows: list[list[float]]) -> None:
    """Every server gives the same P(class 1) on the same rows, or the comparison is void.

    A row the secure path's watermark marked (about 1 in 200) answers the other class's
    score: P(class 1) becomes 1 - P(class 1).  One such row of the few compared is allowed.
    """
    answers = {server.label: server.scores(server, rows) for server in servers}
    reference_label, reference = next(iter(answers.items()))
    for label, scores in answers.items():
        if len(scores) != len(reference):
            raise RuntimeError(f"{label} answered {len(scores)} rows of {len(reference)}")
        gaps = [abs(a - b) for a, b in zip(scores, reference, strict=True)]
        swapped = [
            i for i, gap in enumerate(gaps)
            if gap > AGREEMENT and abs(scores[i] - (1 - reference[i])) <= AGREEMENT
        ]  # fmt: skip
        worst = max((g for i, g in enumerate(gaps) if i not in swapped[:1]), default=0.0)
        if worst > AGREEMENT:
            raise RuntimeError(
                f"{label} and {reference_label} disagree on the same rows (by {worst:.2g})"
            )


def serve(kind: str, port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "bench.gateway.serve", kind, "--port", str(port), *options]


def servers_for(
    args: argparse.Namespace, root: Path, model: BenchModel, session: SessionSpec
) -> Iterator[Server]:
    rows = model.rows(args.rows)
    body = json.dumps({"rows": rows})
    workspace = root / "workspace"
    port = free_port()
    yield Server(
        key="bare",
        label="bare (FastAPI + onnxruntime)",
        command=serve("bare", port, "--onnx", str(root / "model.onnx")),
        cwd=REPO,
        url=f"http://127.0.0.1:{port}",
        path=BARE_PATH,
        body=body,
        ready=("POST", BARE_PATH),
        scores=bare_scores,
    )
    predict = f"/v1/models/{MODEL}/predict"

    def secure(key: str, label: str, folder: Path, *options: str, tls: bool = False) -> Server:
        """A modelpact gateway over ``folder`` (one of the benchmark's workspaces)."""
        port = free_port()
        return Server(
            key=key,
            label=label,
            command=serve("secure", port, "--workspace", str(folder), *options),
            cwd=REPO,
            url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
            path=predict,
            body=body,
            ready=("GET", "/readyz"),
            scores=secure_scores,
            ca_path=str(folder / "tls" / "ca.pem") if tls else None,
            session=session,
        )

    yield secure("secure", "modelpact secure path (plain HTTP)", workspace)
    count = str(args.workers)
    if args.workers:
        label = f"modelpact secure path, {count} model worker(s)"
        yield secure("secure-workers", label, workspace, "--workers", count)
    if args.monitor_off:
        label = f"secure path, {count} worker(s), monitor off"
        unmonitored = root / "workspace-unmonitored"
        yield secure("secure-unmonitored", label, unmonitored, "--workers", count)
    if args.tls:
        yield secure("secure-tls", "modelpact secure path (TLS)", workspace, "--tls", tls=True)
    if args.mlserver:
        port = free_port()
        yield Server(
            key="mlserver",
            label=f"MLServer (V2, parallel_workers {args.mlserver_workers})",
            command=mlserver.command(root / "mlserver"),
            cwd=root / "mlserver",
            url=f"http://127.0.0.1:{port}",
            path=mlserver.infer_path(),
            body=mlserver.request_body(rows),
            ready=("GET", mlserver.ready_path()),
            scores=mlserver_scores,
            start_seconds=MLSERVER_START_SECONDS,
        )
