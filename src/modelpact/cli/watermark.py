"""``modelpact watermark verify`` (owner): which partner's answers trained a suspect model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out

app = typer.Typer(no_args_is_help=True, help="(Owner) Per-partner watermarks and attribution.")


@app.command("verify")
def verify(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Which of your models it may copy.")],
    suspect: Annotated[Path | None, typer.Option(help="The suspect model, an ONNX file.")] = None,
    suspect_url: Annotated[
        str | None,
        typer.Option(
            help="Or a suspect behind an Open Inference Protocol (V2) endpoint: "
            "https://host/v2/models/NAME (asked for labels, within --budget rows)."
        ),
    ] = None,
    budget: Annotated[
        int, typer.Option(min=1, help="--suspect-url: the most rows ever sent to it.")
    ] = 5000,
    header: Annotated[
        list[str] | None,
        typer.Option(help="--suspect-url: an HTTP header 'Name: value' (repeat)."),
    ] = None,
    suspect_ca: Annotated[
        Path | None, typer.Option(help="--suspect-url: CA certificate(s) it must chain to.")
    ] = None,
    probe: Annotated[
        Path | None,
        typer.Option(
            help="CSV of natural rows to measure chance agreement (and a tilt) on "
            "(default: 2,000 rows drawn from the model's training summary)."
        ),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Name a partner only below this p.")] = 1e-6,
) -> None:
    """Replay each partner's marked queries to a suspect model (an ONNX file, or an endpoint)
    and report, per partner, the match rate and a one-sided binomial p-value against chance;
    where the gateway serves a tilt and the suspect shows scores, also how far its deviation
    from your model points along the partner's tilt."""
    from modelpact.errors import InvalidInput, NotFound
    from modelpact.runtime import DEFAULT_LIMITS
    from modelpact.runtime.tables import read_rows_csv
    from modelpact.services.attribution import attribute
    from modelpact.services.suspects import RemoteSuspect

    if (suspect is None) == (suspect_url is None):
        raise InvalidInput("give one of --suspect FILE or --suspect-url URL")
    rows = None if probe is None else read_rows_csv(probe)
    if suspect_url is not None:
        headers = {}
        for line in header or []:
            name, sep, value = line.partition(":")
            if not sep or not name.strip():
                raise InvalidInput("--header must be 'Name: value'")
            headers[name.strip()] = value.strip()
        remote = RemoteSuspect(suspect_url, budget=budget, headers=headers, ca=suspect_ca)
        try:
            with open_ws(ctx) as ws:
                report = attribute(
                    ws, remote, model=model, probe=rows, threshold=threshold, query_budget=budget
                )
        finally:
            remote.close()
    else:
        assert suspect is not None
        try:
            data = suspect.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"{suspect} does not exist") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read {suspect}: {exc.strerror}") from None
        if len(data) > DEFAULT_LIMITS.max_bytes:
            raise InvalidInput(
                f"{suspect} is larger than the {DEFAULT_LIMITS.max_bytes}-byte limit"
            )
        with open_ws(ctx) as ws:
            report = attribute(ws, data, model=model, probe=rows, threshold=threshold)
    table = Table("partner", "test", "evidence", "chance", "p-value", "names it")
    named = report.named
    for e in report.evidence:
        table.add_row(
            e.partner,
            e.test,
            (
                f"{round(e.statistic * e.count)} of {e.count} swaps"
                if e.test == "flip"
                else f"cosine {e.statistic:.3f} ({e.count} dims)"
            ),
            f"{e.chance:.3g}" if e.test == "flip" else "-",
            f"{e.p_value:.3g}",
            "YES" if e in named else "no",
        )
    console = out()
    console.print(table)
    console.print(report.explain())


@app.command("verify-embeddings")
def verify_embeddings(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="The embedding model they may come from.")],
    inputs: Annotated[Path, typer.Option(help="CSV of the rows the leaked vectors embed.")],
    vectors: Annotated[Path, typer.Option(help="CSV of the leaked vectors, one per row.")],
    version: Annotated[
        str | None, typer.Option(help="The model version (default: the one served).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="Name a partner only below this p.")] = 1e-6,
) -> None:
    """Say whose keyed rotation leaked embedding vectors carry: each partner's rotation of
    your model's own vectors for the same inputs, against the leak."""
    from modelpact.runtime.tables import read_rows_csv
    from modelpact.services.attribution import attribute_embeddings

    rows, leaked = read_rows_csv(inputs), read_rows_csv(vectors)
    with open_ws(ctx) as ws:
        report = attribute_embeddings(
            ws, rows, leaked, model=model, version=version, threshold=threshold
        )
    table = Table("partner", "mean cosine", "dims", "p-value", "named")
    named = {e.partner for e in report.named}
    for e in report.evidence:
        table.add_row(
            e.partner,
            f"{e.statistic:.3f}",
            str(e.count),
            f"{e.p_value:.3g}",
            "YES" if e.partner in named else "no",
        )
    console = out()
    console.print(table)
    console.print(report.explain())


@app.command("expire")
def expire(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be destroyed.")
    ] = False,
) -> None:
    """Destroy the watermark keys and marked queries of partners whose charters ended more
    than their retention period ago (each destruction is an audit entry)."""
    from modelpact.services.watermarking import WatermarkDesk

    with open_ws(ctx) as ws:
        found = WatermarkDesk(ws).expire(dry_run=dry_run)
    table = Table("partner", "kept until", "now")
    for item in found:
        until = "while a charter has no end" if item.until is None else item.until.isoformat()
        if item.destroyed:
            state = f"destroyed ({item.marked_rows} marked rows)"
        elif item.due:
            state = "due: would be destroyed"
        else:
            state = "kept"
        table.add_row(item.partner, until, state)
    out().print(table if found else "No partner has a watermark key.")
