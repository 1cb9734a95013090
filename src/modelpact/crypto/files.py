"""Private files: created 0600 in one step, refused when others can read them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from modelpact.errors import AlreadyExists, InsecureKeyFile, NotFound, StorageUnavailable

__all__ = ["check_private_file", "read_private_file", "write_private_file"]


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 and write ``data``; never overwrite.

    The mode is set at creation (``O_CREAT | O_EXCL``), so there is no window in
    which the file exists with looser permissions.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyExists(
            f"{path} already exists", hint="move it away first; keys are never overwritten"
        ) from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None


def check_private_file(path: Path) -> None:
    """Raise :class:`InsecureKeyFile` if group or others may read or write ``path``."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    if not stat.S_ISREG(mode):
        raise InsecureKeyFile(f"{path} is not a regular file")
    loose = stat.S_IMODE(mode) & 0o077
    if loose:
        raise InsecureKeyFile(
            f"{path} is readable or writable by group or others (mode {stat.S_IMODE(mode):04o})",
            hint=f"restrict it with: chmod 600 {path}",
        )


def read_private_file(path: Path) -> bytes:
    """Read a secret file after checking that only its owner can read it."""
    check_private_file(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None
