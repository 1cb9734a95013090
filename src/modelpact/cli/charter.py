"""``modelpact charter ...``: check, sign, countersign (partner), apply, list, show, diff."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out, read_text, write_text_atomic
from modelpact.errors import CharterInvalid, InvalidInput

__all__ = ["app"]

#: Charter versions are positive and fit the canonical JSON number range (2^53 - 1).
VERSION: dict[str, int] = {"min": 1, "max": 2**53 - 1}

app = typer.Typer(
    help="Charters: the agreement as code, signed by both parties.", no_args_is_help=True
)


@app.command("check")
def check(file: Annotated[Path, typer.Argument(help="Charter YAML.")]) -> None:
    """Lint a charter: errors and warnings with line numbers; non-zero exit on errors."""
    from modelpact.charter import check_charter

    text = read_text(file, what="charter")
    try:
        from modelpact.services import check_with_policy
    except ImportError:  # partner install: no policy engine; schema and lint still run
        report = check_charter(text, source=str(file))
        note = "policy compilation skipped (the server extra is not installed)"
    else:
        report = check_with_policy(text, source=str(file))
        note = "compiles to Cedar policies and passes schema validation"
    console = out()
    for finding in report.findings:
        console.print(str(finding))
    errors = sum(1 for f in report.findings if f.severity == "error")
    warnings = len(report.findings) - errors
    if errors:
        raise CharterInvalid(f"{file}: {errors} error(s), {warnings} warning(s)")
    console.print(f"{file}: no errors, {warnings} warning(s); {note}")


@app.command("sign")
def sign(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Charter YAML.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Signed envelope (default FILE.signed.json).")
    ] = None,
) -> None:
    """(Owner) Sign a charter with the workspace key, for the partner to countersign."""
    from modelpact.services import CharterDesk

    text = read_text(file, what="charter")
    with open_ws(ctx) as ws:
        signed = CharterDesk(ws).sign(text, source=str(file))
    target = out_path or file.with_suffix(".signed.json")
    write_text_atomic(target, signed.to_json())
    out().print(f"signed {signed.charter.ref} ({signed.digest}) -> {target}")


@app.command("countersign")
def countersign(
    file: Annotated[Path, typer.Argument(help="Envelope signed by the owner.")],
    key: Annotated[Path, typer.Option(help="Your partner private key.")],
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Where to write (default: FILE, in place).")
    ] = None,
) -> None:
    """(Partner, offline) Check the owner's signature and countersign with your key."""
    from modelpact.charter import SignedCharter
    from modelpact.crypto import SigningKey

    signed = SignedCharter.from_json(read_text(file, what="signed charter"), source=str(file))
    both = signed.countersign(SigningKey.load(key))
    write_text_atomic(out_path or file, both.to_json())
    out().print(f"countersigned {both.charter.ref} ({both.digest}) -> {out_path or file}")


@app.command("apply")
def apply(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Envelope signed by owner and partner.")],
) -> None:
    """(Owner) Activate a countersigned charter: signatures, window, partner, models, policy."""
    from modelpact.services import CharterDesk

    text = read_text(file, what="signed charter")
    with open_ws(ctx) as ws:
        applied = CharterDesk(ws).apply(text, source=str(file))
    note = f"; supersedes v{applied.superseded}" if applied.superseded else ""
    out().print(f"applied {applied.charter.ref} for partner {applied.record.partner_id}{note}")


@app.command("list")
def list_charters(ctx: typer.Context) -> None:
    """List every applied charter version and its status."""
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        records = CharterDesk(ws).all()
    table = Table("charter", "version", "partner", "status", "applied", "digest")
    for r in records:
        table.add_row(
            r.charter_id,
            str(r.version),
            r.partner_id,
            r.status,
            r.applied_at.isoformat(timespec="seconds"),
            r.digest,
        )
    out().print(table if records else "no charters applied")


@app.command("show")
def show(
    ctx: typer.Context,
    charter_id: Annotated[
        str | None, typer.Argument(metavar="[CHARTER]", help="An applied charter (owner).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Version (default: latest).", **VERSION)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="A signed envelope to review (partner, no workspace)."),
    ] = None,
) -> None:
    """Print a charter as YAML: an applied one, or the one inside a signed envelope."""
    from modelpact.charter import SignedCharter, to_yaml

    console = out()
    if file is not None:
        if charter_id is not None:
            raise InvalidInput("give either CHARTER or --file, not both")
        signed = SignedCharter.from_json(read_text(file, what="signed charter"), source=str(file))
        signed.verify_owner()
        state = "countersigned" if signed.is_countersigned else "signed by the owner only"
        console.print(f"# {signed.charter.ref} — {state}; owner signature valid; {signed.digest}")
        console.print(to_yaml(signed.charter))
        return
    if charter_id is None:
        raise InvalidInput("give CHARTER (an applied charter) or --file SIGNED.json")
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        record, charter = CharterDesk(ws).get(charter_id, version)
    applied = record.applied_at.isoformat(timespec="seconds")
    console.print(f"# {charter.ref} — {record.status}, applied {applied}")
    console.print(to_yaml(charter))


@app.command("diff")
def diff(
    ctx: typer.Context,
    charter_id: Annotated[str, typer.Argument(metavar="CHARTER")],
    old: Annotated[int, typer.Argument(help="Older version.", **VERSION)],
    new: Annotated[int, typer.Argument(help="Newer version.", **VERSION)],
) -> None:
    """Show what changed between two applied versions."""
    from modelpact.services import CharterDesk

    with open_ws(ctx) as ws:
        lines = CharterDesk(ws).diff(charter_id, old, new)
    console = out()
    for line in lines or ("no differences",):
        console.print(line)
