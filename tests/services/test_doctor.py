"""``modelpact doctor``'s checks: each problem caused for real, found, and given its fix."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from modelpact.runtime.measurement import Measurement, installed_mismatches
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.doctor import Finding, critical, diagnose
from tests.services.test_charters import PARTNER, envelope

CODE = "sha256:" + "c" * 64
DEPS = "sha256:" + "d" * 64
RUNNING = Measurement(CODE, DEPS, 1, 1, "3.11")


def check(ws: Workspace, **options: object) -> list[Finding]:
    arguments: dict[str, object] = {"measured": lambda: RUNNING, "mismatches": list}
    return diagnose(ws, **(arguments | options))  # type: ignore[arg-type]


def by(findings: list[Finding], name: str) -> list[Finding]:
    return [f for f in findings if f.check == name]


def test_a_fresh_workspace_has_nothing_critical(workspace: Workspace) -> None:
    findings = check(workspace)
    assert critical(findings) == []
    assert {f.check for f in findings} == {"installed files", "key files", "TLS", "charter pins"}
    assert by(findings, "TLS")[0].severity == "ok"  # init issued the certificate
    workspace.server_cert_path.unlink()
    missing = by(check(workspace), "TLS")[0]
    assert missing.severity == "warning" and "serve` issues one" in missing.fix
    workspace.ensure_tls(["127.0.0.1"])
    assert by(check(workspace), "TLS")[0].severity == "ok"
    assert by(check(workspace, hosts=("gateway.example",)), "TLS")[0].severity == "warning"
    plain = by(check(workspace, tls=False), "TLS")[0]
    assert plain.severity == "warning" and "plain HTTP" in plain.problem


def test_a_key_others_can_read_is_critical_with_its_fix(workspace: Workspace) -> None:
    key = workspace.root / "keys" / "kek.key"
    os.chmod(key, 0o644)
    (finding,) = critical(check(workspace))
    assert finding.check == "key files" and finding.fix == f"chmod 600 {key}"
    os.chmod(key, 0o600)
    os.chmod(workspace.root / "keys", 0o750)  # noqa: S103 - the fault under test
    folder = by(check(workspace), "key files")[0]
    assert folder.severity == "warning" and folder.fix.startswith("chmod 700")


def test_a_missing_key_is_critical(workspace: Workspace) -> None:
    (workspace.root / "keys" / "owner-ed25519.pem").unlink()
    (finding,) = critical(check(workspace))
    assert "owner-ed25519.pem is missing" in finding.problem


def test_pins_that_do_not_match_what_runs_are_critical(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    registry = ModelRegistry(workspace)
    registry.add("fraud-detector", onnx_bytes, version="1.0.0", source="m.onnx")
    digest = registry.get_version("fraud-detector", "1.0.0").digest
    PartnerDirectory(workspace).enrol("acme", PARTNER.verify_key.encode())
    pins = {"code": CODE, "dependencies": DEPS, "models": {"fraud-detector@1.0.0": digest}}
    CharterDesk(workspace).apply(envelope(workspace, attestation=pins), source="e.json")
    assert by(check(workspace), "charter pins")[0].severity == "ok"

    moved = Measurement("sha256:" + "e" * 64, DEPS, 1, 1, "3.11")
    (code,) = critical(check(workspace, measured=lambda: moved))
    assert "pins the serving code" in code.problem and "acme's SDK will refuse" in code.problem

    registry.add("fraud-detector", onnx_bytes, version="1.1.0", source="m.onnx")
    (model,) = critical(check(workspace))
    assert "serves 1.1.0" in model.problem and "is not pinned" in model.problem
    assert model.fix.startswith("roll fraud-detector back")


def test_changed_installed_files_are_found_against_their_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import hashlib

    package = tmp_path / "fakedep"
    package.mkdir()
    module = package / "__init__.py"
    module.write_text("VALUE = 1\n")
    digest = base64.urlsafe_b64encode(hashlib.sha256(module.read_bytes()).digest())
    info = tmp_path / "fakedep-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakedep\nVersion: 1.0\n")
    (info / "RECORD").write_text(
        f"fakedep/__init__.py,sha256={digest.rstrip(b'=').decode()},10\n"
        "fakedep-1.0.dist-info/RECORD,,\n"
    )
    root = tmp_path / "root-1.0.dist-info"
    root.mkdir()
    (root / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: root\nVersion: 1.0\nRequires-Dist: fakedep\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert installed_mismatches("root", frozenset()) == []
    module.write_text("VALUE = 2\n")
    assert installed_mismatches("root", frozenset()) == [
        "fakedep: fakedep/__init__.py differs from what was installed"
    ]
    module.unlink()
    assert installed_mismatches("root", frozenset()) == [
        "fakedep: fakedep/__init__.py is missing or unreadable"
    ]
    (info / "RECORD").unlink()
    assert installed_mismatches("root", frozenset()) == [
        "fakedep: no RECORD, its files cannot be checked"
    ]


def test_the_installed_dependency_set_matches_its_records() -> None:
    assert installed_mismatches() == []
