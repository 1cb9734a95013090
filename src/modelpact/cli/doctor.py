"""``modelpact doctor``: check this installation and workspace; each problem with its fix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from modelpact.cli.terminal import open_ws, out, ws_root

if TYPE_CHECKING:  # the services import server dependencies: only when a command runs
    from modelpact.services.doctor import Finding

__all__ = ["doctor", "report"]

_MARK = {"critical": "[red]CRITICAL[/red]", "warning": "[yellow]warning[/yellow]", "ok": "ok"}


def report(findings: list[Finding]) -> None:
    """Print findings, one line each, fixes indented beneath."""
    console = out()
    for finding in findings:
        console.print(f"{_MARK[finding.severity]} ", end="", markup=True, highlight=False)
        console.print(f"{finding.check}: {finding.problem}", markup=False, highlight=False)
        if finding.fix:
            console.print(f"    fix: {finding.fix}", markup=False, highlight=False)


def doctor(
    ctx: typer.Context,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="Check as `serve --plain-http` would run.")
    ] = False,
) -> None:
    """(Owner) Check installed files, key permissions, TLS and charter pins; exit 1 on critical."""
    from modelpact.services.doctor import check_keys, critical, diagnose

    # An insecure key stops the workspace from opening at all: check those first, alone.
    findings = check_keys(ws_root(ctx))
    if not critical(findings):
        with open_ws(ctx) as ws:
            findings = diagnose(ws, tls=not plain_http)
    report(findings)
    worst = critical(findings)
    if worst:
        out().print(
            f"{len(worst)} critical problem(s): `modelpact serve` refuses to start until fixed",
            markup=False,
        )
        raise typer.Exit(1)
