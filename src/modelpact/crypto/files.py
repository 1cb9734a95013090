"""Private files: created 0600 and whole in one step, refused when others can read them."""

from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from modelpact.errors import AlreadyExists, InsecureKeyFile, NotFound, StorageUnavailable

__all__ = ["check_private_file", "read_private_file", "write_private_file"]

#: ``link`` fails so on filesystems that have no hard links (FAT, some network shares).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``data``; never overwrite.

    The bytes go to a temporary file beside it (created 0600 with ``O_EXCL``, so there
    is no window with looser permissions), flushed; then it is hard-linked to ``path``
    — a link fails if ``path`` exists, so nothing is ever overwritten — and the folder
    is flushed.  Another process, or the next one after a crash, finds no file or the
    whole file, never an empty or half-written one.  A crash can leave the temporary
    file (``.<name>.<random>.tmp~``, 0600) behind.  Where hard links do not exist the
    file is created in place with ``O_CREAT | O_EXCL``, as it was before.
    """
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp~"
    try:
        _create(temporary, data)
    except AlreadyExists:
        raise StorageUnavailable(f"cannot create {path}: a temporary name was taken") from None
    try:
        os.link(temporary, path, follow_symlinks=False)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise StorageUnavailable(f"cannot create {path}: {exc.strerror}") from None
        _create(path, data)
    finally:
        temporary.unlink(missing_ok=True)
    _fsync_dir(path)


def _create(path: Path, data: bytes) -> None:
    """Create ``path`` (0600, never over another file), write ``data`` and flush it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None
        raise


def _exists(path: Path) -> AlreadyExists:
    return AlreadyExists(
        f"{path} already exists", hint="move it away first; keys are never overwritten"
    )


def _fsync_dir(path: Path) -> None:
    """Flush the folder that holds ``path``, so that its new name survives a crash."""
    try:
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise StorageUnavailable(f"cannot flush {path.parent}: {exc.strerror}") from None
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageUnavailable(f"cannot flush {path.parent}: {exc.strerror}") from None
    finally:
        os.close(fd)


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
