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


def fsync_folder(folder: Path) -> None:
    if os.name == "posix":  # make a rename or a new file's name durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def replace_durably(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (mode 0600, ``mkstemp``'s, unless ``mode`` says
    otherwise): a crash leaves old or new."""
    folder = path.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode != 0o600:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as exc:  # Ctrl-C included: leave no temporary file behind
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None
        raise
    fsync_folder(folder)


def write_text_atomic(path: Path, text: str) -> None:
    """Write all of ``text`` or nothing (see :func:`replace_durably`)."""
    replace_durably(path, text.encode("utf-8"))


def open_ws(ctx: typer.Context) -> Workspace:
    """The workspace from --workspace, MODELPACT_WORKSPACE, or the current folder."""
    from modelpact.services import open_workspace

    return open_workspace(ws_root(ctx))


def ws_root(ctx: typer.Context) -> Path:
    """The folder :func:`open_ws` opens, not opened yet."""
    from modelpact.services.workspace import CONFIG_NAME

    given: str | None = (ctx.find_root().obj or {}).get("workspace")
    if given:
        return Path(given)
    if Path(CONFIG_NAME).is_file():
        return Path.cwd()
    raise NotFound(
        "no workspace given",
        hint="pass --workspace DIR, set MODELPACT_WORKSPACE, or run inside a workspace",
    )
