"""``modelpact doctor`` and the same checks at ``serve``'s start."""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter


def test_doctor_reports_each_check_and_fails_on_a_critical_problem(
    cli: Cli, tmp_path: Path
) -> None:
    workspace = tmp_path / "owner"
    assert cli("init", workspace).code == 0
    fine = cli("--workspace", workspace, "doctor")
    assert fine.code == 0, fine
    for check in ("installed files", "key files", "TLS", "charter pins"):
        assert f"ok {check}:" in fine.out
    plain = cli("--workspace", workspace, "doctor", "--plain-http")
    assert plain.code == 0 and "warning TLS: the gateway serves plain HTTP" in plain.out

    key = workspace / "keys" / "owner-ed25519.pem"
    os.chmod(key, 0o640)
    bad = cli("--workspace", workspace, "doctor")
    assert bad.code == 1
    assert "CRITICAL key files:" in bad.out and f"fix: chmod 600 {key}" in bad.out
    assert "1 critical problem(s)" in bad.out


def test_serve_refuses_to_start_when_a_charter_pins_other_code(cli: Cli, setup: Setup) -> None:
    pinned = "attestation:\n  code: sha256:" + "0" * 64 + "\n"
    envelope = signed_charter(cli, setup, extra=pinned)
    assert cli("charter", "apply", envelope).code == 0
    doctor = cli("doctor")
    assert doctor.code == 1 and "CRITICAL charter pins:" in doctor.out
    refused = cli("serve", "--port", "9")
    # The doctor's finding on stderr, then the one-line refusal; uvicorn never starts.
    lines = refused.err.strip().splitlines()
    assert refused.code != 0 and "Traceback" not in refused.err
    assert lines[0].startswith("modelpact: critical: northwind-acme-screening@v1 pins")
    assert_one_line_error(
        type(refused)(refused.code, refused.out, lines[-1]),
        "refusing to serve: charter pins:",
        "acme's SDK will refuse every session",
    )
