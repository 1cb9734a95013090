"""``modelpact keys rotate-kek`` and ``keys status``."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from modelpact.crypto import KeyEncryptionKey
from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter


def _kek_id(workspace: Path) -> str:
    return KeyEncryptionKey.load(workspace / "keys" / "kek.key").key_id


def test_rotate_kek_rewraps_every_model_and_the_models_still_verify(cli: Cli, setup: Setup) -> None:
    assert cli("charter", "apply", signed_charter(cli, setup)).code == 0
    before = _kek_id(setup.workspace)
    status = cli("keys", "status")
    assert status.code == 0, status
    assert f"key-encryption key: {before} (age 0 days)" in status.out
    assert "no rotation under way" in status.out and "warning" not in status.out

    rotated = cli("keys", "rotate-kek")
    assert rotated.code == 0, rotated
    after = _kek_id(setup.workspace)
    assert after != before
    assert "model versions: 3 re-wrapped, 0 already under the new key" in rotated.out
    assert f"key-encryption key {before} replaced by {after}" in rotated.out
    assert not (setup.workspace / "keys" / "kek.next.key").exists()
    for model in ("cancer-screen", "cancer-screen-mlp", "digits"):
        assert cli("model", "verify", model).code == 0
    status = cli("keys", "status")
    assert f"key-encryption key: {after}" in status.out and "no rotation under way" in status.out


def test_status_and_doctor_name_an_unfinished_rotation(cli: Cli, tmp_path: Path) -> None:
    workspace = tmp_path / "owner"
    assert cli("init", workspace).code == 0
    new = KeyEncryptionKey.generate()
    new.save(workspace / "keys" / "kek.next.key")  # a rotation killed after its first step
    status = cli("--workspace", workspace, "keys", "status")
    assert f"rotation under way to {new.key_id}" in status.out
    assert "unfinished — run: modelpact keys rotate-kek" in status.out
    doctor = cli("--workspace", workspace, "doctor")
    assert doctor.code == 0 and "warning encryption keys:" in doctor.out
    finished = cli("--workspace", workspace, "keys", "rotate-kek")
    assert finished.code == 0 and "resumed an interrupted KEK rotation" in finished.out
    assert _kek_id(workspace) == new.key_id


def test_a_next_key_others_can_read_is_refused_in_one_line(cli: Cli, tmp_path: Path) -> None:
    workspace = tmp_path / "owner"
    assert cli("init", workspace).code == 0
    path = workspace / "keys" / "kek.next.key"
    KeyEncryptionKey.generate().save(path)
    os.chmod(path, 0o644)
    assert_one_line_error(cli("--workspace", workspace, "keys", "rotate-kek"), "kek.next.key")
    os.chmod(path, 0o600)
    path.write_text("not a key\n")
    assert_one_line_error(cli("--workspace", workspace, "keys", "status"), "kek.next.key")


def test_a_second_rotate_kek_at_the_same_time_fails_in_one_line(cli: Cli, tmp_path: Path) -> None:
    workspace = tmp_path / "owner"
    assert cli("init", workspace).code == 0
    before = _kek_id(workspace)
    fd = os.open(workspace / "keys" / "kek-rotation.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a rotation running in another process
        refused = cli("--workspace", workspace, "keys", "rotate-kek")
    finally:
        os.close(fd)
    assert_one_line_error(refused, "another KEK rotation is running")
    assert _kek_id(workspace) == before
    assert not (workspace / "keys" / "kek.next.key").exists()
    assert cli("--workspace", workspace, "keys", "rotate-kek").code == 0
