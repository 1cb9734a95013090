"""``charter terminate`` (owner) and ``charter verify-exit`` (partner, no server installed)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter
from tests.cli.test_partner_install import partner

CHARTER = "northwind-acme-screening"


@pytest.fixture
def envelope(cli: Cli, setup: Setup) -> Path:
    path = signed_charter(cli, setup)
    assert cli("charter", "apply", path).code == 0
    return path


def test_terminate_writes_a_report_the_partner_verifies_offline(
    cli: Cli, setup: Setup, envelope: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli("charter", "terminate", CHARTER, "--reason", "pilot over")
    assert done.code == 0, done.err
    report = tmp_path / f"{CHARTER}.exit.json"
    assert stat.S_IMODE(report.stat().st_mode) == 0o644
    assert f"{CHARTER} terminated at" in done.out
    assert f"destroyed: data key of acme under {CHARTER}" in done.out
    assert "kept until" in done.out
    assert f"verify-exit {report.name} --owner-key {setup.owner_key}" in done.out
    listed = cli("charter", "list")
    assert "terminated" in listed.out

    checked = partner("charter", "verify-exit", report, "--owner-key", setup.owner_key)
    assert checked.returncode == 0, checked.stderr
    assert f"OK — exit report for {CHARTER} (partner acme)" in checked.stdout
    assert "LEAKED []" in checked.stdout
    by_charter = partner("charter", "verify-exit", report, "--charter-file", envelope)
    assert by_charter.returncode == 0, by_charter.stderr
    assert "LEAKED []" in by_charter.stdout

    again = cli("charter", "terminate", CHARTER, "--reason", "twice", "--out", tmp_path / "b.json")
    assert again.code == 0 and f"{CHARTER} was terminated at" in again.out
    assert cli("charter", "verify-exit", tmp_path / "b.json", "--charter-file", envelope).code == 0


def test_a_tampered_report_fails_in_one_line(
    cli: Cli, setup: Setup, envelope: Path, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    assert cli("charter", "terminate", CHARTER, "--reason", "done", "--out", report).code == 0
    text = report.read_text()
    document = json.loads(text)
    assert document["report"]["retention"]["days"] == 30

    changed = tmp_path / "changed.json"
    changed.write_text(text.replace('"days": 30', '"days": 3'))
    assert changed.read_text() != text
    result = cli("charter", "verify-exit", changed, "--owner-key", setup.owner_key)
    assert_one_line_error(result, "signature does not verify")

    removed = tmp_path / "removed.json"
    lines = text.splitlines()
    cut = next(i for i, line in enumerate(lines) if '"reason": "done"' in line)
    removed.write_text("\n".join(lines[:cut] + lines[cut + 1 :]))
    assert_one_line_error(cli("charter", "verify-exit", removed, "--charter-file", envelope))

    offline = partner("charter", "verify-exit", changed, "--owner-key", setup.owner_key)
    assert offline.returncode != 0
    assert len(offline.stderr.strip().splitlines()) == 1 and "Traceback" not in offline.stderr

    other = cli("charter", "verify-exit", report, "--owner-key", setup.owner_key, "--charter", "x")
    assert_one_line_error(other, "not x")
    assert_one_line_error(cli("charter", "verify-exit", report), "--owner-key")


def test_terminate_needs_a_reason_and_a_known_charter(cli: Cli, setup: Setup) -> None:
    assert_one_line_error(cli("charter", "terminate", "nope", "--reason", "x"), "no charter nope")
    assert_one_line_error(cli("charter", "terminate", "nope", "--reason", " "), "--reason")
