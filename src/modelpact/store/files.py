"""Write-once blobs in a local directory: :class:`LocalArtifactStore`.

A blob is written to a temporary file in the target directory, flushed with
``fsync``, then published under its key with a hard link, which fails if the
key is already taken (unlike ``rename``, which would silently replace a blob a
concurrent writer just published); the temporary name is then removed and the
directory is flushed too.  On a filesystem without hard links the blob is
renamed into place after checking the key is free, both under the directory's lock
(below).  Temporary names end in
``~``, a character no key may contain, so they are never mistaken for blobs.

Directories are created ``0700`` and files ``0600``; the store never follows a
symbolic link to a blob.

:meth:`LocalArtifactStore.replace` is the one way to change a blob: a compare-and-set
under an exclusive ``flock`` on the directory's ``.lock~`` file, which
:meth:`LocalArtifactStore.delete` takes too, so a blob deleted (and a tombstone put in
its place) while it was being replaced is never brought back.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from modelpact.errors import AlreadyExists, InvalidInput, NotFound, StorageUnavailable

__all__ = ["MAX_KEY_LENGTH", "LocalArtifactStore", "check_artifact_key"]

MAX_KEY_LENGTH = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,255}")
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def check_artifact_key(key: str) -> tuple[str, ...]:
    """Return the segments of a valid key; raise :class:`InvalidInput` otherwise.

    A key is one or more segments of ``[A-Za-z0-9._-]`` (1 to 255 characters
    each) joined by ``/``; ``.`` and ``..`` are refused, and so is an empty
    segment (a leading, trailing or doubled ``/``).
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(
            f"an artifact key is a non-empty string of at most {MAX_KEY_LENGTH} characters"
        )
    parts = tuple(key.split("/"))
    for part in parts:
        if part in (".", "..") or _SEGMENT.fullmatch(part) is None:
            raise InvalidInput(
                f"invalid artifact key {key!r}",
                hint="use segments of letters, digits, '.', '_' or '-' joined by '/'",
            )
    return parts


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``directory`` (its ``.lock~`` file, made 0600 if new)."""
    fd = os.open(directory / ".lock~", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


class LocalArtifactStore:
    """An :class:`~modelpact.store.interfaces.ArtifactStore` under a directory ``root``.

    ``root`` and the directories below it are created (mode ``0700``) on the
    first :meth:`put`; existing directories are left as they are.
    """

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self._root)!r})"

    def put(self, key: str, data: bytes) -> None:
        parts = check_artifact_key(key)
        final = self._root.joinpath(*parts)
        try:
            self._make_dirs(final.parent, key)
            temporary = final.parent / f".{secrets.token_hex(8)}.tmp~"
            self._write_temporary(temporary, data)
            try:
                self._publish(temporary, final, key)
            finally:
                temporary.unlink(missing_ok=True)
            _fsync_dir(final.parent)
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot store artifact {key!r} under {self._root}: {exc.strerror}"
            ) from None

    def get(self, key: str) -> bytes:
        path = self._root.joinpath(*check_artifact_key(key))
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no artifact {key!r} in {self._root}") from None
        except OSError as exc:
            raise self._unreadable(key, exc) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise NotFound(f"no artifact {key!r} in {self._root}")
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read()
        except OSError as exc:
            raise self._unreadable(key, exc) from None
        finally:
            os.close(fd)

    def delete(self, key: str) -> None:
        path = self._root.joinpath(*check_artifact_key(key))
        try:
            with _locked(path.parent):
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    raise NotFound(f"no artifact {key!r} in {self._root}")
                path.unlink()
                _fsync_dir(path.parent)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"no artifact {key!r} in {self._root}") from None
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot delete artifact {key!r} under {self._root}: {exc.strerror}"
            ) from None

    def exists(self, key: str) -> bool:
        path = self._root.joinpath(*check_artifact_key(key))
        try:
            return stat.S_ISREG(os.lstat(path).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError as exc:
            raise self._unreadable(key, exc) from None

    def replace(self, key: str, data: bytes, *, expected: bytes) -> bool:
        parts = check_artifact_key(key)
        final = self._root.joinpath(*parts)
        try:
            with _locked(final.parent):
                try:
                    current = self.get(key)
                except NotFound:
                    return False
                if current != expected:
                    return False
                temporary = final.parent / f".{secrets.token_hex(8)}.tmp~"
                self._write_temporary(temporary, data)
                try:
                    os.replace(temporary, final)
                finally:
                    temporary.unlink(missing_ok=True)
                _fsync_dir(final.parent)
                return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StorageUnavailable(
                f"cannot replace artifact {key!r} under {self._root}: {exc.strerror}"
            ) from None

    def keys(self, prefix: str) -> builtins.list[str]:
        folder = self._root.joinpath(*check_artifact_key(prefix))
        found: builtins.list[str] = []
        try:
            for directory, subdirs, files in os.walk(folder):
                subdirs[:] = [d for d in subdirs if not d.endswith("~")]
                relative = Path(directory).relative_to(self._root).parts
                for name in files:
                    if not name.endswith("~"):
                        found.append("/".join((*relative, name)))
        except OSError as exc:
            raise StorageUnavailable(f"cannot list {prefix!r} under {self._root}: {exc}") from None
        return sorted(found)

    def _unreadable(self, key: str, exc: OSError) -> StorageUnavailable:
        if exc.errno == errno.ELOOP:
            return StorageUnavailable(
                f"artifact {key!r} under {self._root} is a symbolic link; refusing to follow it"
            )
        return StorageUnavailable(
            f"cannot read artifact {key!r} under {self._root}: {exc.strerror}"
        )

    def _make_dirs(self, directory: Path, key: str) -> None:
        """Create ``directory`` and its missing ancestors, each 0700 and made durable."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir():
            if current.exists() or current.is_symlink():
                raise AlreadyExists(
                    f"cannot store artifact {key!r}: {current} exists and is not a directory"
                )
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        for path in reversed(missing):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if not path.is_dir():
                    raise AlreadyExists(
                        f"cannot store artifact {key!r}: {path} exists and is not a directory"
                    ) from None
                continue
            os.chmod(path, 0o700)
            _fsync_dir(path.parent)

    @staticmethod
    def _write_temporary(path: Path, data: bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)

    def _publish(self, temporary: Path, final: Path, key: str) -> None:
        try:
            os.link(temporary, final, follow_symlinks=False)
            return
        except FileExistsError:
            raise AlreadyExists(
                f"artifact {key!r} already exists in {self._root}",
                hint="artifacts are write-once; store the new bytes under a new key",
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
        # No hard links here: check, then rename, both under the folder's lock (which
        # replace and delete take too), so no two puts of one key both find it free.
        with _locked(final.parent):
            if os.path.lexists(final):
                raise AlreadyExists(f"artifact {key!r} already exists in {self._root}")
            os.rename(temporary, final)
