"""What every command shares: reading inputs, writing outputs atomically, finding the workspace."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from modelpact.errors import InvalidInput, NotFound, StorageUnavailable

if TYPE_CHECKING:
    from modelpact.services import Workspace

__all__ = ["open_ws", "out", "read_text", "write_text_atomic"]

MAX_DOCUMENT = 1 << 20


def out() -> Console:
    """A console on the current stdout (looked up per call, so captured output works).

    Markup is off: names, paths and findings come from files others wrote, and a
    ``[`` in them must print as itself.  Piped output gets a wide page, so tables
    keep whole ids and digests for scripts.
    """
    return Console(
        markup=False,
        highlight=False,
        soft_wrap=True,
        width=None if sys.stdout.isatty() else 200,
    )


def read_text(path: Path, *, what: str = "file", limit: int = MAX_DOCUMENT) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"{what} {path} is a folder, not a file") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(f"{what} {path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{what} {path} is not UTF-8 text") from None


def write_text_atomic(path: Path, text: str) -> None:
    """Write all of ``text`` or nothing: temp file in the same folder, fsync, rename."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_ws(ctx: typer.Context) -> Workspace:
    """The workspace from --workspace, MODELPACT_WORKSPACE, or the current folder."""
    from modelpact.services import open_workspace
    from modelpact.services.workspace import CONFIG_NAME

    given: str | None = (ctx.find_root().obj or {}).get("workspace")
    if given:
        return open_workspace(Path(given))
    if Path(CONFIG_NAME).is_file():
        return open_workspace(Path.cwd())
    raise NotFound(
        "no workspace given",
        hint="pass --workspace DIR, set MODELPACT_WORKSPACE, or run inside a workspace",
    )
