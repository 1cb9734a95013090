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


def _check_mode(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise InsecureKeyFile(f"{path} is not a regular file")
    if st.st_uid != os.geteuid():
        raise InsecureKeyFile(
            f"{path} belongs to another user (uid {st.st_uid})",
            hint=f"it must belong to the user running modelpact: chown {os.geteuid()} {path}",
        )
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose:
        raise InsecureKeyFile(
            f"{path} is readable or writable by group or others "
            f"(mode {stat.S_IMODE(st.st_mode):04o})",
            hint=f"restrict it with: chmod 600 {path}",
        )


def _open_private(path: Path) -> int:
    try:
        # O_NOFOLLOW: a symlink planted in place of a key is refused, not followed.
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except OSError as exc:
        if os.path.islink(path):
            raise InsecureKeyFile(f"{path} is a symbolic link; keys must be plain files") from None
        raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None


def check_private_file(path: Path) -> None:
    """Raise :class:`InsecureKeyFile` unless ``path`` is a plain file, ours, mode 0600 or less."""
    fd = _open_private(path)
    try:
        _check_mode(path, os.fstat(fd))
    finally:
        os.close(fd)


def read_private_file(path: Path) -> bytes:
    """Read a secret file; the checks and the read are on the same open file (no race)."""
    fd = _open_private(path)
    with os.fdopen(fd, "rb") as handle:
        _check_mode(path, os.fstat(handle.fileno()))
        try:
            return handle.read()
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None
