"""``modelpact init``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from modelpact.cli.terminal import out

__all__ = ["init"]


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to create (must be new or empty).")],
    name: Annotated[str | None, typer.Option(help="Workspace name (default: folder name).")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="postgresql+psycopg://... (default: SQLite in the workspace)"),
    ] = None,
) -> None:
    """Create a workspace: owner keys, key-encryption key, database and configuration."""
    from modelpact.services import init_workspace

    with init_workspace(directory, name=name, database_url=database_url) as ws:
        console = out()
        console.print(f"workspace created at {ws.root}")
        console.print(f"owner key: {ws.owner_verify_key.encode()}")
        console.print(f"model-signing public key: {ws.model_signing_public_path}")
