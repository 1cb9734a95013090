"""The main job end to end through the CLI: the same steps as `make demo`."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

from tests.cli.conftest import Cli, Setup, signed_charter


def test_init_creates_private_keys_and_never_prints_secrets(cli: Cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = cli("init", tmp_path / "ws")
    assert result.code == 0
    assert "owner key: ed25519:" in result.out
    keys = tmp_path / "ws" / "keys"
    for name in ("owner-ed25519.pem", "model-signing-p256.pem", "kek.key"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
        secret = (keys / name).read_text()
        assert secret.strip() not in result.out
    assert stat.S_IMODE((tmp_path / "ws").stat().st_mode) == 0o700


def decide(purpose: str) -> tuple[str, ...]:
    """``policy decide`` for acme on cancer-screen 1.0.0 under the demo charter."""
    return (
        "policy",
        "decide",
        "--partner",
        "acme",
        "--charter",
        "northwind-acme-screening",
        "--purpose",
        purpose,
        "--model",
        "cancer-screen",
        "--version",
        "1.0.0",
    )


def test_charter_lifecycle_and_decisions(cli: Cli, setup: Setup) -> None:
    envelope = signed_charter(cli, setup)
    applied = cli("charter", "apply", envelope)
    assert applied.code == 0, applied.err
    assert "applied northwind-acme-screening@v1" in applied.out

    allow = cli(*decide("diagnostic-research"))
    assert allow.code == 0
    assert allow.out.startswith("ALLOW")
    assert "grant 0 of northwind-acme-screening@v1" in allow.out

    deny = cli(*decide("marketing"))
    assert deny.out.startswith("DENY")
    assert "purpose is not one" in deny.out

    listed = cli("charter", "list")
    assert "northwind-acme-screening" in listed.out and "active" in listed.out
    shown = cli("charter", "show", "northwind-acme-screening")
    assert "diagnostic-research" in shown.out


def test_new_version_supersedes_and_diffs(cli: Cli, setup: Setup) -> None:
    assert cli("charter", "apply", signed_charter(cli, setup)).code == 0
    second = signed_charter(cli, setup, name="v2", version=2)
    applied = cli("charter", "apply", second)
    assert applied.code == 0, applied.err
    assert "supersedes v1" in applied.out
    diff = cli("charter", "diff", "northwind-acme-screening", "1", "2")
    assert diff.code == 0
    assert "version: 1 -> 2" in diff.out


def test_suspended_partner_is_denied_then_resumed(cli: Cli, setup: Setup) -> None:
    assert cli("charter", "apply", signed_charter(cli, setup)).code == 0
    ask = decide("diagnostic-research")
    assert cli("partner", "suspend", "acme").code == 0
    denied = cli(*ask)
    assert denied.out.startswith("DENY") and "suspended or revoked" in denied.out
    assert cli("partner", "resume", "acme").code == 0
    assert cli(*ask).out.startswith("ALLOW")
    assert cli("partner", "revoke", "acme").code == 0
    assert cli(*ask).out.startswith("DENY")


def test_model_versions_verify_and_roll_back(cli: Cli, setup: Setup, onnx_model) -> None:  # type: ignore[no-untyped-def]
    assert cli("model", "add", "cancer-screen", onnx_model, "--version", "1.1.0").code == 0
    shown = cli("model", "show", "cancer-screen")
    assert "1.0.0" in shown.out and "1.1.0" in shown.out
    verified = cli("model", "verify", "cancer-screen")
    assert verified.code == 0 and "cancer-screen 1.1.0: OK" in verified.out
    rolled = cli("model", "rollback", "cancer-screen", "--to", "1.0.0")
    assert rolled.code == 0 and "(was 1.1.0)" in rolled.out
    assert "1.0.0" in cli("model", "list").out


def test_exported_signature_checks_with_the_standard_tool(
    cli: Cli, setup: Setup, onnx_model: Path
) -> None:
    out = setup.root / "evidence"
    result = cli("model", "export-signature", "cancer-screen", "--version", "1.0.0", "--out", out)
    assert result.code == 0, result.err
    (out / "model" / "model.onnx").write_bytes(onnx_model.read_bytes())
    command = [
        sys.executable,
        "-m",
        "model_signing",
        "verify",
        "key",
        "--signature",
        str(out / "model.sig"),
        "--public_key",
        str(setup.workspace / "keys" / "model-signing-p256.pub"),
        str(out / "model"),
    ]
    ok = subprocess.run(command, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr + ok.stdout
    (out / "model" / "model.onnx").write_bytes(onnx_model.read_bytes() + b"\0")
    assert subprocess.run(command, capture_output=True, check=False).returncode != 0
