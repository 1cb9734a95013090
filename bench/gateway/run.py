"""Orchestration: build the workspace, start each server in its own process, drive, report."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

from bench.gateway import mlserver, pyspy
from bench.gateway.drive import CLIENTS, Load, Result, SessionSpec
from bench.gateway.servers import REPO, Server, check_agreement, free_port, servers_for, start
from bench.gateway.workspace import (
    CHARTER,
    MAX_BATCH_ROWS,
    PARTNER,
    PURPOSE,
    build_workspace,
    fit_model,
)
from modelpact.crypto import SigningKey

__all__ = ["main"]

DESCRIPTION = "The same ONNX model served bare and through modelpact's secure path."

TARGET_THROUGHPUT = 0.7  # secure / bare req/s, at least
TARGET_P99 = 2.0  # secure / bare p99, at most
VERSIONS = (
    *("fastapi", "starlette", "uvicorn", "pydantic", "onnxruntime", "numpy", "httpx"),
    *("cedarpy", "sqlalchemy", "modelpact"),
)


# -- driving -------------------------------------------------------------------------------


def drive(
    server: Server,
    args: argparse.Namespace,
    *,
    at_window: Callable[[], object] | None = None,
) -> Result:
    """One run of the load generator against ``server``, in its own process.

    ``at_window`` is called once the measured window starts (the driver marks it in a file).
    """
    with tempfile.TemporaryDirectory(prefix="bench-drive-") as tmp:
        folder = Path(tmp)
        load = Load(
            url=server.url,
            path=server.path,
            body=server.body,
            concurrency=args.concurrency,
            warmup=args.warmup,
            seconds=args.seconds,
            timeout=args.timeout,
            server_pid=server.pid,
            client=args.client,
            ca_path=server.ca_path,
            session=server.session,
            window_mark=str(folder / "window") if at_window else None,
        )
        (folder / "load.json").write_text(json.dumps(asdict(load)))
        deadline = time.monotonic() + args.warmup + args.seconds + args.timeout + 90.0
        with (
            (folder / "load.json").open("rb") as stdin,
            (folder / "out").open("wb") as stdout,
            (folder / "err").open("wb") as stderr,
        ):
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.gateway.drive"],
                cwd=REPO,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
            )
            try:
                while at_window is not None and process.poll() is None:
                    if (folder / "window").exists():
                        at_window()
                        break
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
                process.wait(timeout=max(deadline - time.monotonic(), 1.0))
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        if process.returncode != 0:
            raise RuntimeError(
                f"the load generator failed against {server.label}:\n"
                + (folder / "err").read_text(errors="replace")[-3000:]
            )
        return Result(**json.loads((folder / "out").read_text()))


def profile(server: Server, args: argparse.Namespace, output: Path) -> None:
    """One extra, unmeasured run of ``server``, sampled by py-spy over its measured window."""
    output.unlink(missing_ok=True)
    spies: list[subprocess.Popen[bytes]] = []
    try:
        drive(
            server,
            args,
            at_window=lambda: spies.append(pyspy.record(server.pid, args.seconds, output)),
        )
    finally:
        err = b""
        for spy in spies:
            try:
                _, err = spy.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                _, err = spy.communicate()
    if not output.exists():
        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return
    summary = pyspy.summarise(output)
    busy = max(summary.samples - summary.waiting, 1)
    print(
        f"\npy-spy, {server.label} (pid {server.pid}): {summary.samples} thread samples, "
        f"{summary.waiting} of them waiting (left out); shares of the other {busy}; "
        f"raw stacks in {output}"
    )
    rankings = (
        ("self", summary.by_self),
        ("total", summary.by_total),
        ("modelpact step", summary.by_step),
    )
    for title, ranked in rankings:
        print(f"  top by {title}:")
        for function, count in ranked:
            print(f"    {count / busy:6.1%}  {function}")


# -- reporting -----------------------------------------------------------------------------


def _versions(names: tuple[str, ...]) -> str:
    found = []
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def report(servers: list[Server], args: argparse.Namespace, peer_versions: str) -> bool:
    """Print the table, the ratios and the machine line; whether the run is valid."""
    print(
        f"\n{args.concurrency} connections, {args.rows} row(s) per request, "
        f"{args.warmup:g} s warm-up + {args.seconds:g} s measured, loopback, one process per "
        f"server, one for the load generator ({args.client} client)"
    )
    header = (
        f"{'round':>5}  {'server':<40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>6} {'server CPU':>10} {'driver CPU':>10}"
    )
    print(header)
    print("-" * len(header))
    for round_index in range(args.rounds):
        for server in servers:
            r = server.results[round_index]
            print(
                f"{round_index + 1:>5}  {server.label:<40} {r.rps:>8,.0f} {r.p50_ms:>8.2f} "
                f"{r.p99_ms:>8.2f} {r.errors:>6} {r.server_cpu:>10.0%} {r.driver_cpu:>10.0%}"
            )
    if args.rounds > 1:
        for server in servers:
            rps, p50, p99 = (
                statistics.median(getattr(r, name) for r in server.results)
                for name in ("rps", "p50_ms", "p99_ms")
            )
            print(f"{'median':>6} {server.label:<40} {rps:>8,.0f} {p50:>8.2f} {p99:>8.2f}")
    bare = next(s for s in servers if s.key == "bare")
    print()
    for other in servers:
        if other is bare:
            continue
        pairs = list(zip(other.results, bare.results, strict=True))
        throughput = [_ratio(o.rps, b.rps) for o, b in pairs]
        p99 = [_ratio(o.p99_ms, b.p99_ms) for o, b in pairs]
        line = f"{other.label} / bare: throughput {_ratios(throughput)}, p99 {_ratios(p99)}"
        invalid = any(r.errors for r in [*other.results, *bare.results])
        judged = other.key in ("secure", "secure-workers")
        if judged and invalid:
            line += "  [targets: not judged, the run had errors]"
        elif judged:
            met_t = statistics.median(throughput) >= TARGET_THROUGHPUT
            met_p = statistics.median(p99) <= TARGET_P99
            line += (
                f"  [targets: ≥ {TARGET_THROUGHPUT}× {'met' if met_t else 'NOT met'}, "
                f"≤ {TARGET_P99:g}× {'met' if met_p else 'NOT met'}]"
            )
        print(line)
    errors = [(s, r) for s in servers for r in s.results if r.errors]
    for server, result in errors:
        print(f"INVALID: {server.label}: {result.errors} errors, first: {result.first_error}")
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        + _versions(VERSIONS)
        + f", SQLite {sqlite3.sqlite_version}"
        + (f"; peer venv: {peer_versions}" if peer_versions else "")
    )
    return not errors


def _ratio(value: float, base: float) -> float:
    return value / base if base else math.nan


def _ratios(values: list[float]) -> str:
    shown = " / ".join(f"{v:.2f}×" for v in values)
    return shown if len(values) == 1 else f"{shown} (median {statistics.median(values):.2f}×)"


# -- main ----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gateway", description=DESCRIPTION)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=16, help="connections, each busy")
    parser.add_argument("--rows", type=int, default=1, help="rows per request")
    parser.add_argument("--rounds", type=int, default=1, help="runs per server, alternated")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument(
        "--client", choices=CLIENTS, default="raw", help="the load generator's HTTP client"
    )
    parser.add_argument("--tls", action="store_true", help="also the secure path over TLS")
    parser.add_argument(
        "--monitor-off",
        action="store_true",
        help="also the secure path (with --workers) whose charter turns the extraction "
        "monitor off: what the detectors cost",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="also the secure path with N model worker processes (the gateway decrypts nothing)",
    )
    parser.add_argument("--mlserver", action="store_true", help="also MLServer (see below)")
    parser.add_argument("--mlserver-workers", type=int, default=1, help="its parallel_workers")
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="FILE",
        help="after the measured runs, one more secure run with py-spy; raw stacks to FILE",
    )
    args = parser.parse_args()
    if not 1 <= args.rows <= min(MAX_BATCH_ROWS, 10_000):
        parser.error("--rows must be 1 to 10000")
    if args.concurrency < 1 or args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        parser.error("--concurrency and --rounds must be ≥ 1, --seconds > 0, --warmup ≥ 0")
    if args.mlserver and not mlserver.available():
        parser.error(
            f"--mlserver needs MLServer's own venv at {mlserver.VENV}: "
            "run scripts/bench-mlserver-venv.sh first"
        )
    return args


def main() -> None:
    args = parse_args()
    valid = False
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        root = Path(tmp)
        print("fitting the model, building the workspace ...", flush=True)
        model = fit_model()
        (root / "model.onnx").write_bytes(model.onnx)
        partner_key = SigningKey.generate()
        key_path = root / "partner.key"
        partner_key.save(key_path)
        build_workspace(root / "workspace", model, partner_key)
        if args.monitor_off:
            build_workspace(root / "workspace-unmonitored", model, partner_key, monitored=False)
        session = SessionSpec(
            partner=PARTNER, key_path=str(key_path), charter=CHARTER, purpose=PURPOSE
        )
        servers = list(servers_for(args, root, model, session))
        peer_versions = ""
        for server in servers:
            if server.key == "mlserver":
                port = int(server.url.rsplit(":", 1)[1])
                versions = mlserver.prepare(
                    root / "mlserver",
                    model,
                    http_port=port,
                    grpc_port=free_port(),
                    metrics_port=free_port(),
                    workers=args.mlserver_workers,
                )
                peer_versions = ", ".join(f"{k} {v}" for k, v in versions.items())
            print(f"starting {server.label} ...", flush=True)
            start(server, root, stack)
        check_agreement(servers, model.rows(max(args.rows, 8)))
        print("all servers answer, and agree on the model's scores", flush=True)
        for round_index in range(args.rounds):
            for server in servers:
                print(f"round {round_index + 1}: {server.label} ...", flush=True)
                server.results.append(drive(server, args))
        valid = report(servers, args, peer_versions)
        if args.py_spy is not None:
            secure = next(s for s in servers if s.key == "secure")
            profile(secure, args, args.py_spy.absolute())
    sys.exit(0 if valid else 1)
