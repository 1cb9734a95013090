"""``modelpact keys rotate-owner`` end to end: the handover is logged, ``audit verify``
follows it from the old key, charters signed before stay valid, an interruption resumes."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from modelpact.errors import StorageUnavailable
from modelpact.services import owner_keys
from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter


def pub(setup: Setup) -> str:
    return (setup.workspace / "keys" / "owner-ed25519.pub").read_text().strip()


def test_rotate_owner_then_audit_verify_follows_from_the_old_key(
    cli: Cli, setup: Setup, tmp_path: Path
) -> None:
    envelope = signed_charter(cli, setup)
    assert cli("charter", "apply", envelope).code == 0
    old = setup.owner_key
    rotated = cli("keys", "rotate-owner")
    assert rotated.code == 0, rotated.err
    new = pub(setup)
    assert new != old
    assert f"new owner key: {new}" in rotated.out
    assert "restart the gateway" in rotated.out
    chain = cli("keys", "owner-chain")
    assert chain.out.splitlines()[0].startswith(old) and new in chain.out.splitlines()[1]

    # A charter the old key signed is still in force (show re-checks it from the store).
    shown = cli("charter", "show", "northwind-acme-screening")
    assert shown.code == 0, shown.err

    export = tmp_path / "log.json"
    assert cli("audit", "export", "--out", export).code == 0
    for key in (old, new):
        verified = cli("audit", "verify", export, "--public-key", key)
        assert verified.code == 0, verified.out + verified.err
        assert "OK" in verified.out
    stranger = cli("partner", "keygen", "--out", tmp_path / "x.key").out.strip()
    refused = cli("audit", "verify", export, "--public-key", stranger)
    assert_one_line_error(refused, "the log cannot be trusted")
    assert "do not include the trusted key" in refused.out


def test_a_handover_signed_by_one_key_only_fails_audit_verify(
    cli: Cli, setup: Setup, tmp_path: Path
) -> None:
    old = setup.owner_key
    assert cli("keys", "rotate-owner").code == 0
    export = tmp_path / "log.json"
    assert cli("audit", "export", "--out", export).code == 0
    document = json.loads(export.read_text())
    for item in document["entries"]:
        detail = item["entry"].get("detail", {})
        if item["entry"].get("action") == "owner.key_handover":
            detail["old_signature"] = detail["new_signature"]  # only the new key signed
    export.write_text(json.dumps(document))
    refused = cli("audit", "verify", export, "--public-key", old)
    assert_one_line_error(refused, "the log cannot be trusted")
    assert "not signed by its old key" in refused.out


@pytest.mark.parametrize("step", ["_append_once", "_swap_keys"])
def test_an_interrupted_rotate_owner_resumes(
    cli: Cli, setup: Setup, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, step: str
) -> None:
    old = setup.owner_key

    def crash(*args: object) -> None:
        raise StorageUnavailable("simulated power cut")

    with monkeypatch.context() as patch:  # cut after the .pub names the new key
        patch.setattr(owner_keys, step, crash)
        assert_one_line_error(cli("keys", "rotate-owner"), "simulated power cut")
    # The workspace does not open half swapped...
    assert_one_line_error(cli("partner", "list"), "does not match")
    # ...until rotate-owner is run again, which finishes the same handover.
    resumed = cli("keys", "rotate-owner")
    assert resumed.code == 0, resumed.err
    assert "finished an interrupted owner-key rotation" in resumed.out
    assert f"old owner key: {old}" in resumed.out
    assert cli("partner", "list").code == 0
    export = tmp_path / "log.json"
    assert cli("audit", "export", "--out", export).code == 0
    verified = cli("audit", "verify", export, "--public-key", old)
    assert verified.code == 0, verified.out
    actions = [e["entry"].get("action") for e in json.loads(export.read_text())["entries"]]
    assert actions.count("owner.key_handover") == 1


def test_rotate_owner_while_another_runs_fails_at_once(cli: Cli, setup: Setup) -> None:
    old = pub(setup)
    lock = setup.workspace / owner_keys.ROTATION_LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running 'keys rotate-owner' holds
        refused = cli("keys", "rotate-owner")
    finally:
        os.close(fd)
    assert_one_line_error(refused, "another owner-key rotation is running")
    assert pub(setup) == old
    assert not (setup.workspace / owner_keys.NEXT_KEY).exists()
    assert cli("keys", "rotate-owner").code == 0  # once it is released
    assert pub(setup) != old
