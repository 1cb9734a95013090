"""``modelpact redteam`` (owner): extraction attacks through a real gateway, against the monitor.

Runs in a scratch workspace (see :mod:`modelpact.drill.redteam`); writes
``report.md`` (the table), ``report.json`` (every point) and ``fidelity.png`` (the plot)
into ``--out``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out


def redteam(
    ctx: typer.Context,
    charter: Annotated[str, typer.Option(help="The charter whose partner view is attacked.")],
    model: Annotated[str, typer.Option(help="The model (its served version is attacked).")],
    data: Annotated[
        Path,
        typer.Option(
            help="CSV of natural rows the model was not trained on (header optional; a "
            "'label' column is left out): half for the attacker, half to measure fidelity."
        ),
    ],
    attack: Annotated[
        list[str] | None,
        typer.Option(help="equation-solving, adaptive or knockoff (repeat; default: all)."),
    ] = None,
    budget: Annotated[int, typer.Option(min=10, help="Queries per attack.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the split and the attacks.")] = 0,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Where the report goes (default ./redteam-MODEL).")
    ] = None,
) -> None:
    """(Owner) Attack a model as a charter's partner would, through a real gateway; report
    fidelity against queries and where the charter's monitor responds."""
    from modelpact.drill.redteam import ATTACKS, run_redteam
    from modelpact.runtime.tables import read_rows_csv

    rows = read_rows_csv(data)
    target = out_dir or Path(f"redteam-{model}")
    console = out()
    with open_ws(ctx) as ws:
        report = run_redteam(
            ws,
            charter=charter,
            model=model,
            data=rows,
            attacks=tuple(attack or ATTACKS),
            budget=budget,
            seed=seed,
            progress=lambda what: console.print(f"attacking: {what}"),
        )
    target.mkdir(parents=True, exist_ok=True)
    (target / "report.md").write_text(report.markdown(), encoding="utf-8")
    (target / "report.json").write_text(report.to_json(), encoding="utf-8")
    report.plot(target / "fidelity.png")
    table_rows = report.rows()
    table = Table(*table_rows[0].keys(), title=f"red team: {model} {report.version}")
    for row in table_rows:
        table.add_row(*row.values())
    console.print(table)
    console.print(
        f"wrote {target / 'report.md'}, {target / 'report.json'}, {target / 'fidelity.png'}"
    )
