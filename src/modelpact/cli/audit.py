"""``modelpact audit ...``: checkpoints, proofs, exports (owner); offline verification (anyone)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from modelpact.cli.terminal import open_ws, out, read_text, write_text_atomic

__all__ = ["app"]

app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)

#: An export can be large; verification reads it whole.
MAX_EXPORT = 1 << 30


@app.command("checkpoint")
def checkpoint(ctx: typer.Context) -> None:
    """(Owner) Print a signed checkpoint covering every entry so far."""
    from modelpact.services.audit import AuditDesk

    with open_ws(ctx) as ws:
        record = AuditDesk(ws).checkpoint()
    out().print(record.note, end="")


@app.command("prove")
def prove(
    ctx: typer.Context,
    index: Annotated[int, typer.Argument(min=0, max=2**62, help="Entry index.")],
) -> None:
    """(Owner) Print an inclusion proof for one entry, with the checkpoint it is against."""
    from modelpact.services.audit import AuditDesk

    with open_ws(ctx) as ws:
        evidence = AuditDesk(ws).prove(index)
    out().print(json.dumps(evidence.to_document(), indent=1))


@app.command("export")
def export(
    ctx: typer.Context,
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the export (JSON).")],
) -> None:
    """(Owner) Export entries, signed checkpoints and consistency proofs for an auditor."""
    from modelpact.services.audit import AuditDesk

    with open_ws(ctx) as ws:
        text = AuditDesk(ws).export()
        key = ws.owner_verify_key.encode()
    write_text_atomic(out_path, text)
    out().print(f"wrote {out_path}; verify it offline with:")
    out().print(f"  modelpact audit verify {out_path} --public-key {key}")


@app.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(help="An export made by 'modelpact audit export'.")],
    public_key: Annotated[
        str,
        typer.Option(
            help="The owner's key you trust, ed25519:<base64>; a key it handed over to is "
            "followed (docs/handover.md)."
        ),
    ],
) -> None:
    """(Anyone, offline) Check every entry hash, the tree, every signature and consistency.

    Owner-key handovers recorded in the log are followed from the key given: each must be
    signed by the key in force and by its successor, and each checkpoint by the key in
    force for its size.
    """
    from modelpact.audit.handover_export import verify_export_following
    from modelpact.crypto import VerifyKey
    from modelpact.errors import Tampered

    report = verify_export_following(
        read_text(file, what="audit export", limit=MAX_EXPORT), VerifyKey.decode(public_key)
    )
    console = out()
    for problem in report.problems:
        console.print(f"{file}: {problem}")
    if not report.ok:
        raise Tampered(
            f"{file}: {len(report.problems)} problem(s) found; the log cannot be trusted"
        )
    pruned = (
        f" ({report.pruned} pruned at the end of their retention: payload gone, leaf hash "
        "checked, each explained by a log.prune entry)"
        if report.pruned
        else ""
    )
    console.print(
        f"{file}: OK — {report.entries} entries{pruned}, {report.checkpoints} signed "
        "checkpoints, every hash, signature and consistency proof checks"
    )
