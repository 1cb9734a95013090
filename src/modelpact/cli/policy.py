"""``modelpact policy decide``: ask the policy engine, see the answer and its reasons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from modelpact.cli.terminal import open_ws, out
from modelpact.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(help="Policy decisions over the active charters.", no_args_is_help=True)


@app.command("decide")
def decide(
    ctx: typer.Context,
    partner: Annotated[str, typer.Option(help="Partner id.")],
    charter: Annotated[str, typer.Option(help="Charter id the request is bound to.")],
    purpose: Annotated[str, typer.Option(help="Declared purpose.")],
    model: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    action: Annotated[str, typer.Option(help="predict, predict_encrypted, ...")] = "predict",
    at: Annotated[
        str | None, typer.Option(help="Instant to decide at, ISO 8601 with zone (default: now).")
    ] = None,
) -> None:
    """Print ALLOW or DENY with the reasons (exit 0 either way)."""
    from modelpact.charter import Action
    from modelpact.policy import AccessRequest
    from modelpact.services import Decider

    try:
        verb = Action(action)
    except ValueError:
        choices = ", ".join(a.value for a in Action)
        raise InvalidInput(f"unknown action {action!r}", hint=f"one of {choices}") from None
    with open_ws(ctx) as ws:
        instant = ws.clock() if at is None else _instant(at)
        request = AccessRequest(
            partner=partner,
            charter=charter,
            purpose=purpose,
            action=verb,
            model=model,
            version=version,
            at=instant,
        )
        decision = Decider(ws).decide(request)
    console = out()
    console.print(
        f"{'ALLOW' if decision.allowed else 'DENY'} {partner} {verb.value} {model}@{version} "
        f"for {purpose} under {charter}"
    )
    for reason in decision.reasons:
        console.print(f"  because {reason}")


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--at {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise InvalidInput("--at needs an explicit zone, e.g. 2026-03-01T12:00:00Z")
    return value
