"""``modelpact monitor ...`` (owner): the extraction monitor's responses in force.

- ``list`` shows, per partner, charter and model, the response in force (throttle,
  harden, suspend, revoke), since when, and the evidence of the alarm behind it;
- ``clear`` lifts one, with a reason, on the record, and restarts its detectors.
  A suspended partner stays suspended until ``modelpact partner resume``.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out

app = typer.Typer(no_args_is_help=True, help="(Owner) The extraction monitor's responses.")


@app.command("list")
def list_protections(ctx: typer.Context) -> None:
    """List the responses in force and the evidence behind each."""
    from modelpact.services.monitoring import ProtectionDesk

    with open_ws(ctx) as ws:
        records = ProtectionDesk(ws).all()
    if not records:
        out().print("no responses in force")
        return
    table = Table("partner", "charter", "model", "response", "step", "since", "evidence")
    for record in records:
        alarms = json.loads(record.evidence)
        evidence = "; ".join(
            f"{a['detector']} {a['statistic']:.4g} vs {a['threshold']} over {a['window']}"
            for a in alarms
        )
        table.add_row(
            record.partner_id,
            record.charter_id,
            record.model,
            record.response,
            str(record.step),
            record.since.isoformat(timespec="seconds"),
            evidence,
        )
    out().print(table)


@app.command("clear")
def clear(
    ctx: typer.Context,
    partner: Annotated[str, typer.Option(help="Partner id.")],
    charter: Annotated[str, typer.Option(help="Charter id.")],
    model: Annotated[str, typer.Option(help="Model name.")],
    reason: Annotated[str, typer.Option(help="Why the response is lifted (goes in the log).")],
) -> None:
    """Lift a response in force and restart that partner's detectors (audited)."""
    from modelpact.services.monitoring import ProtectionDesk

    with open_ws(ctx) as ws:
        lifted = ProtectionDesk(ws).clear(partner, charter, model, reason=reason)
    out().print(
        f"lifted {lifted.response} (step {lifted.step}) for {partner} under {charter} on {model}"
    )
