"""``modelpact review ...`` (owner): access reviews of the grants in force.

- ``review`` lists every grant of every active charter with its last use, volume,
  incidents and expiry, and flags grants unused for ``--unused-days`` or expiring within
  ``--expiring-days`` (``--json`` for scripts);
- ``review decide`` records a decision on one grant (``keep``, ``narrow``, ``suspend``,
  ``revoke``) in the audit log; ``suspend`` and ``revoke`` are carried out on the partner,
  ``narrow`` leaves the owner to amend the charter.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Column, Table

from modelpact.cli.terminal import open_ws, out

app = typer.Typer(
    invoke_without_command=True,
    help=(
        "(Owner) Access reviews: with no command, list every grant in force with its last use, "
        "volume, incidents, expiry and flags; 'decide' records a decision on one grant."
    ),
)

_NEXT = {
    "keep": "recorded only; the grant stays as it is",
    "narrow": (
        "recorded only; now amend the charter: sign and apply a new version with the narrower "
        "grant ('modelpact charter sign', 'charter countersign' by the partner, 'charter apply')"
    ),
    "suspend": "partner {partner} is now {status}; 'modelpact partner resume' lifts it",
    "revoke": "partner {partner} is now {status} (final)",
}


@app.callback()
def review(
    ctx: typer.Context,
    unused_days: Annotated[
        int, typer.Option(min=0, help="Flag grants with no allowed use in this many days.")
    ] = 30,
    expiring_days: Annotated[
        int, typer.Option(min=0, help="Flag grants whose charter ends within this many days.")
    ] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every grant in force with its last use, volume, incidents, expiry and flags."""
    if ctx.invoked_subcommand is not None:
        return
    from modelpact.services.review import ReviewDesk

    with open_ws(ctx) as ws:
        report = ReviewDesk(ws).report(ws.clock(), unused_days, expiring_days)
    if as_json:
        out().print(json.dumps(report.as_dict(), indent=1))
        return
    if not report.rows:
        out().print("no grants in force")
        return
    days = report.window_days
    headers = (
        "partner",
        "charter",
        "model@versions",
        "actions → output",
        "last use (UTC)",
        f"rows {days}d/all",
        f"requests {days}d/all",
        "incidents",
        "until (UTC)",
        "flags",
    )
    table = Table(*(Column(h, overflow="fold") for h in headers))
    for row in report.rows:
        g = row.grant
        partner = g.partner if g.partner_status == "active" else f"{g.partner} ({g.partner_status})"
        until = "never" if g.until is None else f"{_minute(g.until)} ({row.days_left}d)"
        table.add_row(
            partner,
            f"{g.charter} v{g.version}",
            f"{g.model}@{g.versions}",
            f"{','.join(g.actions)} → {g.output}",
            "never" if row.last_use is None else _minute(row.last_use),
            f"{row.rows_window}/{row.rows_total}",
            f"{row.requests_window}/{row.requests_total}",
            str(row.incidents),
            until,
            ",".join(row.flags),
        )
    out().print(table)
    flagged = sum(1 for row in report.rows if row.flags)
    out().print(
        f"{len(report.rows)} grants, {flagged} flagged (unused {report.unused_days}d, "
        f"expiring {report.expiring_days}d)"
    )
    if not report.complete:
        out().print(
            f"note: read the newest {report.log_size - report.scanned_from} of "
            f"{report.log_size} log entries; older use is not counted"
        )


@app.command("decide")
def decide(
    ctx: typer.Context,
    charter: Annotated[str, typer.Option(help="Charter id (its active version is reviewed).")],
    model: Annotated[str, typer.Option(help="Model the grant is for.")],
    decision: Annotated[str, typer.Option(help="keep, narrow, suspend or revoke.")],
    reason: Annotated[str, typer.Option(help="Why (goes in the audit log).")],
    reviewer: Annotated[str, typer.Option(help="Who reviewed (goes in the audit log).")] = "owner",
) -> None:
    """Record a decision on one grant; suspend and revoke act on the partner (audited)."""
    from modelpact.services.review import ReviewDesk

    with open_ws(ctx) as ws:
        verdict = ReviewDesk(ws).decide(charter, model, decision, reason=reason, reviewer=reviewer)
    g = verdict.grant
    out().print(
        f"recorded {verdict.decision} on {g.partner}/{g.charter} v{g.version}/{g.model} "
        f"(log entry {verdict.index})"
    )
    out().print(_NEXT[verdict.decision].format(partner=g.partner, status=verdict.partner_status))


def _minute(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")
