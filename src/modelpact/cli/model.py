"""``modelpact model ...``: the owner's model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out, read_text, write_text_atomic
from modelpact.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(help="Register, inspect, verify and roll back models.", no_args_is_help=True)


@app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name (lower-case slug).")],
    file: Annotated[Path, typer.Argument(help="The ONNX file.")],
    version: Annotated[str, typer.Option(help="Version, e.g. 1.0.0 (immutable).")],
    card: Annotated[Path | None, typer.Option(help="Model card, YAML.")] = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="CSV of training rows (header optional; a 'label' column is left out): "
            "the extraction monitor measures partners' queries against their summary."
        ),
    ] = None,
) -> None:
    """Check, sign, encrypt and register one model version; it becomes the served one."""
    from modelpact.errors import quote_untrusted
    from modelpact.runtime import load_card
    from modelpact.services import ModelRegistry

    model_card = load_card(read_text(card, what="model card"), source=str(card)) if card else None
    with open_ws(ctx) as ws:
        done = ModelRegistry(ws).add_file(
            name, file, version=version, card=model_card, reference=reference
        )
    console = out()
    console.print(f"registered {done.model} {done.version} ({done.size} bytes, {done.digest})")
    inputs = ", ".join(
        f"{quote_untrusted(t.name)}{list(t.shape or ())}" for t in done.summary.inputs
    )
    console.print(f"inputs: {inputs}; operators: {', '.join(done.summary.op_types)}")
    console.print("signed (OpenSSF model-signing) and encrypted at rest (AES-256-GCM)")
    if reference is None:
        console.print(
            "no --reference rows: the extraction monitor watches only the volume of this "
            "version's use (its other detectors measure against training rows)"
        )


@app.command("list")
def list_models(ctx: typer.Context) -> None:
    """List models and the version each serves."""
    from modelpact.services import ModelRegistry

    with open_ws(ctx) as ws:
        models = ModelRegistry(ws).all()
    table = Table("model", "served version", "created")
    for record in models:
        table.add_row(
            record.name,
            record.served_version or "-",
            record.created_at.isoformat(timespec="seconds"),
        )
    out().print(table if models else "no models registered")


@app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Show a model's versions, digests and which one is served."""
    from modelpact.services import ModelRegistry

    with open_ws(ctx) as ws:
        record, versions = ModelRegistry(ws).show(name)
    table = Table("version", "served", "digest", "bytes", "created")
    for version in versions:
        served = "*" if version.version == record.served_version else ""
        table.add_row(
            version.version,
            served,
            version.digest,
            str(version.size),
            version.created_at.isoformat(timespec="seconds"),
        )
    out().print(f"model {record.name}")
    out().print(table)


@app.command("verify")
def verify(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    version: Annotated[str | None, typer.Option(help="Version (default: the served one).")] = None,
) -> None:
    """Decrypt and check a version: wrapped key, ciphertext, digest and signature."""
    from modelpact.services import ModelRegistry

    with open_ws(ctx) as ws:
        result = ModelRegistry(ws).verify(name, version)
    console = out()
    console.print(f"{result.model} {result.version}: OK")
    for check in result.checks:
        console.print(f"  ok  {check}")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    to: Annotated[str, typer.Option("--to", help="The version to serve again.")],
) -> None:
    """Serve an earlier version again (versions themselves never change)."""
    from modelpact.services import ModelRegistry

    with open_ws(ctx) as ws:
        previous = ModelRegistry(ws).rollback(name, to_version=to)
    out().print(f"{name} now serves {to} (was {previous or 'none'})")


@app.command("export-signature")
def export_signature(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    version: Annotated[str, typer.Option()],
    out_dir: Annotated[Path, typer.Option("--out", help="New folder for bundle and card.")],
) -> None:
    """Write a version's model-signing bundle and signed card, for `model_signing verify key`."""
    from modelpact.crypto import CARD_NAME
    from modelpact.services import ModelRegistry

    with open_ws(ctx) as ws:
        record = ModelRegistry(ws).get_version(name, version)
        public = ws.model_signing_public_path
    try:
        (out_dir / "model").mkdir(parents=True)
    except OSError as exc:
        raise InvalidInput(f"cannot create {out_dir}/model: {exc.strerror}") from None
    write_text_atomic(out_dir / "model.sig", record.signature_bundle.decode("utf-8"))
    write_text_atomic(out_dir / "model" / CARD_NAME, record.card)
    console = out()
    console.print(f"wrote {out_dir}/model.sig and {out_dir}/model/{CARD_NAME}")
    console.print(f"put the copy to check at {out_dir}/model/model.onnx, then run:")
    console.print(
        f"  model_signing verify key --signature {out_dir}/model.sig --public_key {public} "
        f"{out_dir}/model"
    )
