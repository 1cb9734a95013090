"""``modelpact serve``: run the partner gateway (TLS by default) on uvicorn."""

from __future__ import annotations

import functools
import ipaddress
import ssl
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from modelpact.cli.terminal import open_ws, replace_durably
from modelpact.errors import InvalidInput, UnsafeDeployment

if TYPE_CHECKING:
    from modelpact.services import Workspace

__all__ = ["serve"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked(ws: Workspace, *, tls: bool, host: str) -> None:
    """The doctor's checks: warnings printed, critical problems refuse the start."""
    from modelpact.services.doctor import critical, diagnose

    hosts = (host,) if host not in ("0.0.0.0", "::") else ("127.0.0.1",)  # noqa: S104
    findings = diagnose(ws, tls=tls, hosts=hosts)
    for finding in findings:
        if finding.severity != "ok":
            print(f"modelpact: {finding.severity}: {finding.problem}", file=sys.stderr)
    worst = critical(findings)
    if worst:
        more = f" (and {len(worst) - 1} more)" if len(worst) > 1 else ""
        raise UnsafeDeployment(
            f"refusing to serve: {worst[0].check}: {worst[0].problem}{more}",
            hint=f"{worst[0].fix}; `modelpact doctor` lists every problem",
        )


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8443,
    mtls: Annotated[
        bool, typer.Option("--mtls", help="Also require a client certificate from the local CA.")
    ] = False,
    plain_http: Annotated[
        bool,
        typer.Option(
            "--plain-http", help="No TLS (loopback only, for local experiments): tokens in clear."
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Model worker processes; they alone hold decrypted weights "
            "(0: run models in the gateway process itself).",
        ),
    ] = 1,
    worker_memory_mb: Annotated[
        int, typer.Option(min=64, help="Address-space limit of each model worker, MiB.")
    ] = 4096,
    worker_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a model worker may take per request.")
    ] = 30.0,
    webhook_ca: Annotated[
        Path | None,
        typer.Option(
            help="CA certificate(s), PEM, that incident webhooks' servers must chain to "
            "(default: the system's trust store)."
        ),
    ] = None,
    sweep_interval: Annotated[
        float,
        typer.Option(
            min=1.0,
            max=86_400.0,
            help="Seconds between expiry sweeps: charters whose window closed are ended "
            "(exit reports in exits/), expiry warnings sent, retention ended.",
        ),
    ] = 60.0,
    warn_days: Annotated[
        list[int] | None,
        typer.Option(
            "--warn-days",
            metavar="DAYS",
            min=1,
            max=3650,
            help="Warn this many days before a charter's window closes: dashboard and "
            "webhook (repeatable; default 14 and 1).",
        ),
    ] = None,
) -> None:
    """(Owner) Serve the partner gateway: sessions, predictions, receipts, log proofs; and,
    in the background, the expiry sweep (see 'modelpact charter expire')."""
    import uvicorn

    from modelpact.gateway.app import create_app

    if plain_http and not _loopback(host):
        raise InvalidInput(
            f"plain HTTP is allowed only on loopback, not on {host}",
            hint="drop --plain-http; the gateway serves TLS with the workspace's certificate",
        )
    if plain_http and mtls:
        raise InvalidInput("--mtls needs TLS; drop --plain-http")
    with open_ws(ctx) as ws:
        options: dict[str, object] = {}
        if not plain_http:
            ws.ensure_tls([host] if host not in ("0.0.0.0", "::") else None)  # noqa: S104
            options = {
                "ssl_certfile": str(ws.server_cert_path),
                "ssl_keyfile": str(ws.server_key_path),
            }
            if mtls:
                options["ssl_ca_certs"] = str(ws.ca_cert_path)
                options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
        _checked(ws, tls=not plain_http, host=host)
        pool = None
        if workers:
            from modelpact.services.model_workers import WorkerPool

            pool = WorkerPool(
                ws.root, size=workers, timeout=worker_timeout, memory_mb=worker_memory_mb
            )
        else:
            print(
                "modelpact: warning: --workers 0: decrypted models live in the gateway process",
                file=sys.stderr,
            )
        from modelpact.services.expiry import DEFAULT_WARNINGS, ExpirySweep, Sweeper
        from modelpact.services.webhooks import Notifier

        if webhook_ca is not None and not webhook_ca.is_file():
            raise InvalidInput(f"--webhook-ca {webhook_ca} is not a file")
        notifier = Notifier(ws.owner_key(), ca=webhook_ca)
        sweeper = Sweeper(
            ExpirySweep(
                ws,
                write=functools.partial(replace_durably, mode=0o644),  # handed to partners
                warnings=warn_days or DEFAULT_WARNINGS,
                notifier=notifier,
            ),
            interval=sweep_interval,
        )
        app = create_app(ws, workers=pool, notifier=notifier, sweeper=sweeper)
        scheme = "http" if plain_http else "https"
        print(f"modelpact gateway on {scheme}://{host}:{port} (Ctrl-C stops)", file=sys.stderr)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            server_header=False,
            **options,  # type: ignore[arg-type]
        )
