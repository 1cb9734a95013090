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
    suspect: Annotated[Path, typer.Option(help="The suspect model, an ONNX file.")],
    model: Annotated[str, typer.Option(help="Which of your models it may copy.")],
    probe: Annotated[
        Path | None,
        typer.Option(
            help="CSV of natural rows to measure chance agreement on (default: the "
            "marked queries themselves, with the model's own labels)."
        ),
    ] = None,
    threshold: Annotated[float, typer.Option(help="Name a partner only below this p.")] = 1e-6,
) -> None:
    """Replay each partner's marked queries to a suspect model and report, per partner, the
    match rate and a one-sided binomial p-value against chance."""
    from modelpact.errors import InvalidInput, NotFound
    from modelpact.runtime import DEFAULT_LIMITS
    from modelpact.runtime.tables import read_rows_csv
    from modelpact.services.attribution import attribute

    try:
        data = suspect.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{suspect} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {suspect}: {exc.strerror}") from None
    if len(data) > DEFAULT_LIMITS.max_bytes:
        raise InvalidInput(f"{suspect} is larger than the {DEFAULT_LIMITS.max_bytes}-byte limit")
    rows = None if probe is None else read_rows_csv(probe)
    with open_ws(ctx) as ws:
        report = attribute(ws, data, model=model, probe=rows, threshold=threshold)
    table = Table("partner", "marks", "matches", "chance", "p-value", "named")
    named = {e.partner for e in report.named}
    for e in report.evidence:
        table.add_row(
            e.partner,
            str(e.count),
            str(round(e.statistic * e.count)),
            f"{e.chance:.3g}",
            f"{e.p_value:.3g}",
            "YES" if e.partner in named else "no",
        )
    console = out()
    console.print(table)
    console.print(report.explain())
