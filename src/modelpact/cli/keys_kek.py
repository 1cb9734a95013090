"""``modelpact keys rotate-kek`` and ``keys status``: the key-encryption key and the counters.

``rotate-kek`` wraps every data key again under a new KEK and then removes the old one
(:mod:`modelpact.services.kek_rotation`); killed at any point, running it again finishes
the same rotation.  A running gateway follows it without a restart.  ``status`` says
whether a rotation is under way, the KEK's id and age, and how many encryptions each
long-lived key has made against its limits.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from modelpact.cli.terminal import open_ws, out

__all__ = ["register"]


def rotate_kek(ctx: typer.Context) -> None:
    """(Owner) Re-wrap every data key under a new key-encryption key, then drop the old one.

    Safe to interrupt: run it again and it goes on where it stopped.  Old ciphertexts
    stay readable throughout; a running gateway follows the rotation on its own.  One
    rotation runs at a time: a second one started meanwhile stops at once.
    """
    from modelpact.services.kek_rotation import rotate_kek as rotate

    console = out()
    with open_ws(ctx) as ws:
        report = rotate(ws)
    if report.resumed:
        console.print("resumed an interrupted KEK rotation")
    for kind, tally in report.tallies.items():
        console.print(
            f"{kind.replace('_', ' ')}: {tally.rewrapped} re-wrapped, "
            f"{tally.already} already under the new key"
        )
    console.print(
        f"key-encryption key {report.previous} replaced by {report.current} "
        f"({report.rewrapped} re-wrapped in {report.passes} passes; recorded in the audit log)"
    )


def status(
    ctx: typer.Context,
    all_keys: Annotated[
        bool, typer.Option("--all", help="List every partner key, not only the busiest.")
    ] = False,
) -> None:
    """(Owner) Whether a KEK rotation is under way, the KEK's age, and encryption counts."""
    from modelpact.services.kek_rotation import kek_status, key_warnings

    with open_ws(ctx) as ws:
        found = kek_status(ws)
    console = out()
    age = "unknown" if found.age is None else f"{found.age.days} days"
    console.print(f"key-encryption key: {found.kek_id} (age {age})")
    if found.rotating:
        console.print(
            f"rotation under way to {found.next_id}: finish it with 'modelpact keys rotate-kek'"
        )
    else:
        console.print("no rotation under way")
    uses = sorted(found.uses, key=lambda u: (u.kind != "kek", -u.reserved, u.key_id))
    if not all_keys:
        uses = [u for u in uses if u.kind == "kek"] + [u for u in uses if u.kind != "kek"][:10]
    table = Table("key", "encryptions (at most)", "rotate at", "limit", "of limit")
    for use in uses:
        table.add_row(
            use.key_id,
            str(use.reserved),
            str(use.rotate_at),
            str(use.limit),
            f"{use.share:.2%}",
        )
    console.print(table)
    for problem, fix in key_warnings(found):
        console.print(f"warning: {problem} — {fix}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``modelpact keys``."""
    app.command("rotate-kek")(rotate_kek)
    app.command("status")(status)
