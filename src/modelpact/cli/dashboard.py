"""``modelpact dashboard``: the owner's one-time sign-in link to the gateway's dashboard.

A partner gets its own with ``modelpact partner dashboard`` (proof of its key).
"""

from __future__ import annotations

from typing import Annotated

import typer

from modelpact.cli.terminal import open_ws, out

app = typer.Typer(no_args_is_help=True, help="The dashboard served by the gateway.")


@app.command("link")
def link(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option(help="The gateway's address, as the browser reaches it.")
    ] = "https://127.0.0.1:8443",
    minutes: Annotated[int, typer.Option(min=1, max=60, help="How long the link lasts.")] = 10,
) -> None:
    """(Owner) Print a one-time sign-in link to the dashboard, signed by the owner's key."""
    from modelpact.dashboard.access import Viewer, make_link

    with open_ws(ctx) as ws:
        token = make_link(ws.owner_key(), Viewer("owner"), minutes=minutes)
    out().print(f"{url.rstrip('/')}/dashboard/signin?link={token}", soft_wrap=True)
    out().print(f"(one use, {minutes} minutes; the browser must trust {ws.ca_cert_path})",
                soft_wrap=True)  # fmt: skip
