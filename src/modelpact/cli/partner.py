"""``modelpact partner ...``: keygen (run by the partner) and the owner's partner list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out

__all__ = ["app"]

app = typer.Typer(help="Partner keys and enrolment.", no_args_is_help=True)


@app.command("keygen")
def keygen(
    out_path: Annotated[
        Path, typer.Option("--out", help="Where to write the private key (created 0600).")
    ] = Path("partner.key"),
) -> None:
    """(Partner) Create your Ed25519 key pair; give the printed public key to the owner."""
    from modelpact.crypto import SigningKey

    key = SigningKey.generate()
    key.save(out_path)
    out().print(key.verify_key.encode())


@app.command("add")
def add(
    ctx: typer.Context,
    partner_id: Annotated[str, typer.Argument(metavar="ID", help="Partner id (lower-case slug).")],
    public_key: Annotated[str, typer.Option(help="The partner's key, ed25519:<base64>.")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Enrol a partner by its public key."""
    from modelpact.services import PartnerDirectory

    with open_ws(ctx) as ws:
        record = PartnerDirectory(ws).enrol(partner_id, public_key, name=name)
    out().print(f"enrolled partner {record.id} ({record.public_key})")


@app.command("list")
def list_partners(ctx: typer.Context) -> None:
    """List partners, their keys and status."""
    from modelpact.services import PartnerDirectory

    with open_ws(ctx) as ws:
        partners = PartnerDirectory(ws).all()
    table = Table("id", "name", "status", "public key")
    for record in partners:
        table.add_row(record.id, record.name, record.status, record.public_key)
    out().print(table if partners else "no partners enrolled")


def _status_command(verb: str, help_text: str) -> None:
    def command(
        ctx: typer.Context,
        partner_id: Annotated[str, typer.Argument(metavar="ID")],
    ) -> None:
        from modelpact.services import PartnerDirectory

        with open_ws(ctx) as ws:
            record = PartnerDirectory(ws).change_status(partner_id, verb)
        out().print(f"partner {record.id} is now {record.status}")

    command.__doc__ = help_text
    app.command(verb)(command)


_status_command("suspend", "Suspend a partner: every request is denied until resumed.")
_status_command("resume", "Resume a suspended partner.")
_status_command("revoke", "Revoke a partner for good.")
