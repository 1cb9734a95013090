"""LocalArtifactStore: write-once, atomic, private, and strict about keys."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelpact.errors import AlreadyExists, InvalidInput, NotFound, StorageUnavailable
from modelpact.store import LocalArtifactStore, check_artifact_key

KEY = "models/fraud-detector/1.0.0/model.onnx.sealed"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(root: Path) -> list[Path]:
    """Temporary files left behind (a folder's ``.lock~`` is not one: it stays by design)."""
    return [p for p in root.rglob("*") if p.name.endswith("~") and p.name != ".lock~"]


@pytest.fixture
def loose_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_round_trip(artifact_store: LocalArtifactStore) -> None:
    data = bytes(range(256)) * 4096
    assert not artifact_store.exists(KEY)
    artifact_store.put(KEY, data)
    assert artifact_store.exists(KEY)
    assert artifact_store.get(KEY) == data
    assert leftovers(artifact_store.root) == []


def test_empty_blob(artifact_store: LocalArtifactStore) -> None:
    artifact_store.put("empty", b"")
    assert artifact_store.get("empty") == b""


def test_put_refuses_to_overwrite(artifact_store: LocalArtifactStore) -> None:
    artifact_store.put(KEY, b"first")
    with pytest.raises(AlreadyExists, match="already exists"):
        artifact_store.put(KEY, b"second")
    assert artifact_store.get(KEY) == b"first"
    assert leftovers(artifact_store.root) == []


def test_concurrent_puts_of_one_key_leave_exactly_one_winner(
    artifact_store: LocalArtifactStore,
) -> None:
    winners: list[bytes] = []
    losers: list[BaseException] = []
    start = threading.Barrier(8)

    def put(data: bytes) -> None:
        start.wait()
        try:
            artifact_store.put(KEY, data)
            winners.append(data)
        except AlreadyExists as error:
            losers.append(error)

    threads = [threading.Thread(target=put, args=(bytes([n]) * 100_000,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert len(losers) == 7
    assert artifact_store.get(KEY) == winners[0]


def test_get_missing_is_not_found(artifact_store: LocalArtifactStore) -> None:
    with pytest.raises(NotFound):
        artifact_store.get(KEY)
    artifact_store.put("models/a", b"x")
    with pytest.raises(NotFound):
        artifact_store.get("models/b")
    with pytest.raises(NotFound):
        artifact_store.get("models")  # a directory is not a blob
    with pytest.raises(NotFound):
        artifact_store.get("models/a/deeper")  # under a blob


def test_delete(artifact_store: LocalArtifactStore) -> None:
    artifact_store.put(KEY, b"secret bytes")
    artifact_store.delete(KEY)
    assert not artifact_store.exists(KEY)
    with pytest.raises(NotFound):
        artifact_store.get(KEY)
    with pytest.raises(NotFound):
        artifact_store.delete(KEY)
    with pytest.raises(NotFound):
        artifact_store.delete("models")  # a directory is not a blob
    artifact_store.put(KEY, b"a new blob may take the freed key")
    assert artifact_store.get(KEY) == b"a new blob may take the freed key"


def test_exists_is_false_for_directories_and_missing_keys(
    artifact_store: LocalArtifactStore,
) -> None:
    assert not artifact_store.exists("models")
    artifact_store.put(KEY, b"x")
    assert not artifact_store.exists("models")
    assert not artifact_store.exists("models/fraud-detector")
    assert not artifact_store.exists(KEY + "/below")


def test_a_key_cannot_be_both_blob_and_directory(artifact_store: LocalArtifactStore) -> None:
    artifact_store.put("a/b", b"x")
    with pytest.raises(AlreadyExists):
        artifact_store.put("a", b"y")
    with pytest.raises(AlreadyExists):
        artifact_store.put("a/b/c", b"z")
    assert artifact_store.get("a/b") == b"x"


def test_modes_are_private_even_with_a_loose_umask(tmp_path: Path, loose_umask: None) -> None:
    root = tmp_path / "workspace" / "artifacts"
    store = LocalArtifactStore(root)
    store.put(KEY, b"x")
    assert mode(root) == 0o700
    assert mode(root.parent) == 0o700
    for directory in ["models", "models/fraud-detector", "models/fraud-detector/1.0.0"]:
        assert mode(root / directory) == 0o700, directory
    assert mode(root / KEY) == 0o600


def test_existing_directories_are_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    LocalArtifactStore(root).put("x/y", b"1")
    assert mode(root) == 0o755
    assert mode(root / "x") == 0o700


def test_put_syncs_the_file_and_its_directory(
    artifact_store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    artifact_store.put("blob", b"x")
    assert synced[0] == "dir"  # the new root made durable in its parent
    assert synced[-2:] == ["file", "dir"]


def test_failed_write_leaves_nothing(
    artifact_store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact_store.put("models/other", b"keep me")
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(StorageUnavailable, match="No space left") as raised:
        artifact_store.put("models/new", b"half written")
    assert "\n" not in raised.value.diagnostics()
    monkeypatch.undo()
    assert not artifact_store.exists("models/new")
    assert leftovers(artifact_store.root) == []
    assert artifact_store.get("models/other") == b"keep me"


def test_without_hard_links_put_still_refuses_overwrite(
    artifact_store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    artifact_store.put(KEY, b"first")
    with pytest.raises(AlreadyExists):
        artifact_store.put(KEY, b"second")
    assert artifact_store.get(KEY) == b"first"
    assert leftovers(artifact_store.root) == []


def test_without_hard_links_the_check_and_the_rename_hold_the_folder_lock(
    artifact_store: LocalArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else two puts of one key could both find it free and the second rename the first away."""

    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    real_rename = os.rename
    held: list[bool] = []

    def rename(source: Path, target: Path) -> None:
        fd = os.open(Path(target).parent / ".lock~", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held.append(True)
        else:
            held.append(False)
        finally:
            os.close(fd)
        real_rename(source, target)

    monkeypatch.setattr(os, "link", no_links)
    monkeypatch.setattr(os, "rename", rename)
    artifact_store.put(KEY, b"first")
    assert held == [True]
    assert artifact_store.get(KEY) == b"first"
    assert mode(artifact_store.root.joinpath(*KEY.split("/")).parent / ".lock~") == 0o600


def test_symbolic_links_are_not_followed(
    artifact_store: LocalArtifactStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"not an artifact")
    artifact_store.put("placeholder", b"x")
    (artifact_store.root / "planted").symlink_to(outside)
    assert not artifact_store.exists("planted")
    with pytest.raises(StorageUnavailable, match="symbolic link"):
        artifact_store.get("planted")
    with pytest.raises(NotFound):
        artifact_store.delete("planted")
    assert outside.read_bytes() == b"not an artifact"


BAD_KEYS = [
    "",
    "/",
    "/absolute",
    "trailing/",
    "double//slash",
    ".",
    "..",
    "./a",
    "a/.",
    "a/../b",
    "../escape",
    "with space",
    "back\\slash",
    "tab\tkey",
    "nul\x00byte",
    "ünïcode",
    "temp~",
    "colon:key",
    "x" * 256,
    "/".join(["abc"] * 300),
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_invalid_input(artifact_store: LocalArtifactStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        check_artifact_key(key)
    with pytest.raises(InvalidInput):
        artifact_store.put(key, b"x")
    with pytest.raises(InvalidInput):
        artifact_store.get(key)
    with pytest.raises(InvalidInput):
        artifact_store.delete(key)
    with pytest.raises(InvalidInput):
        artifact_store.exists(key)
    assert not artifact_store.root.exists()


@pytest.mark.parametrize(
    "key",
    ["a", "A-Z_0.9", "..a", "a..", ".hidden", "-dash", "x" * 255, KEY],
)
def test_good_keys(artifact_store: LocalArtifactStore, key: str) -> None:
    assert check_artifact_key(key) == tuple(key.split("/"))
    artifact_store.put(key, key.encode())
    assert artifact_store.get(key) == key.encode()


def test_non_string_key_is_invalid_input(artifact_store: LocalArtifactStore) -> None:
    with pytest.raises(InvalidInput):
        artifact_store.get(b"bytes-key")  # type: ignore[arg-type]
