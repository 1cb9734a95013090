"""The audit commands: checkpoint, prove, export, and an offline verify that names each problem."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from modelpact.audit.checkpoint import open_checkpoint
from modelpact.audit.tree import verify_inclusion
from modelpact.crypto import SigningKey, VerifyKey
from tests.cli.conftest import Cli, Result, Setup, assert_one_line_error
from tests.cli.test_partner_install import partner


def export(cli: Cli, setup: Setup) -> tuple[Path, dict[str, object]]:
    path = setup.root / "audit.json"
    assert cli("audit", "export", "--out", path).code == 0
    return path, json.loads(path.read_text())


def verify(cli: Cli, setup: Setup, path: Path) -> Result:
    return cli("audit", "verify", path, "--public-key", setup.owner_key)


def test_every_admin_change_is_in_the_log_and_proves(cli: Cli, setup: Setup) -> None:
    checkpoint = cli("audit", "checkpoint")
    assert checkpoint.code == 0
    origin = checkpoint.out.splitlines()[0]
    opened = open_checkpoint(checkpoint.out, VerifyKey.decode(setup.owner_key), name=origin)
    assert opened.size == 5  # workspace.init, model.add three times, partner.add
    for index in range(opened.size):
        proved = cli("audit", "prove", str(index))
        assert proved.code == 0, proved.err
        evidence = json.loads(proved.out)
        root = open_checkpoint(
            evidence["checkpoint"], VerifyKey.decode(setup.owner_key), name=origin
        ).root
        verify_inclusion(
            index,
            evidence["size"],
            base64.b64decode(evidence["leaf_hash"]),
            [base64.b64decode(p) for p in evidence["proof"]],
            root,
        )
    assert_one_line_error(cli("audit", "prove", "99"), "no entry 99")


def test_a_clean_export_verifies_offline_without_a_server(cli: Cli, setup: Setup) -> None:
    cli("partner", "suspend", "acme")
    cli("partner", "resume", "acme")
    path, document = export(cli, setup)
    assert len(document["entries"]) == 7  # type: ignore[arg-type]
    checked = partner("audit", "verify", path, "--public-key", setup.owner_key)
    assert checked.returncode == 0, checked.stderr
    assert "OK — 7 entries" in checked.stdout
    assert "LEAKED []" in checked.stdout


def tampered(setup: Setup, document: dict[str, object], edit: str) -> Path:
    entries = document["entries"]
    assert isinstance(entries, list)
    if edit == "byte":
        entries[1]["entry"]["subject"] = "cancer-screen@6.6.6"
    elif edit == "drop":
        del entries[1]
    elif edit == "reorder":
        entries[1], entries[2] = entries[2], entries[1]
    elif edit in ("forge-after", "no-checkpoints"):  # add an entry nobody signed
        from modelpact.audit.tree import leaf_hash
        from modelpact.crypto import canonical_json

        forged = dict(entries[-1]["entry"], subject="forged@1")
        digest = leaf_hash(canonical_json(forged))
        entries.append(
            {"index": len(entries), "leaf_hash": base64.b64encode(digest).decode(), "entry": forged}
        )
        if edit == "no-checkpoints":
            document["checkpoints"] = []
    elif edit == "no-proofs":
        document["consistency"] = []
    elif edit == "rehash":  # change an entry and its recorded leaf hash together
        entries[1]["entry"]["subject"] = "cancer-screen@6.6.6"
        from modelpact.audit.tree import leaf_hash
        from modelpact.crypto import canonical_json

        digest = leaf_hash(canonical_json(entries[1]["entry"]))
        entries[1]["leaf_hash"] = base64.b64encode(digest).decode()
    path = setup.root / f"audit-{edit}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("byte", "entry 1 was changed"),
        ("drop", "entry at position 1 has index 2: entries are missing or reordered"),
        ("reorder", "entry at position 1 has index 2"),
        ("rehash", "do not match the signed checkpoint of size 4"),
        ("forge-after", "entries 5 to 5 are not covered by any signed checkpoint"),
        ("no-checkpoints", "no valid signed checkpoint"),
    ],
)
def test_verify_names_what_was_changed(cli: Cli, setup: Setup, edit: str, message: str) -> None:
    _, document = export(cli, setup)
    result = verify(cli, setup, tampered(setup, document, edit))
    assert message in result.out
    assert_one_line_error(result, "cannot be trusted")


def test_verify_names_a_fork(cli: Cli, setup: Setup) -> None:
    from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
    from modelpact.crypto import SigningKey as Key

    _, document = export(cli, setup)
    notes = document["checkpoints"]
    assert isinstance(notes, list)
    origin = notes[-1].splitlines()[0]
    owner = Key.load(setup.workspace / "keys" / "owner-ed25519.pem")
    size = open_checkpoint(notes[-1], owner.verify_key, name=origin).size
    forged = sign_checkpoint(Checkpoint(origin, size, bytes(32)), owner, name=origin)
    notes.append(forged)
    path = setup.root / "fork.json"
    path.write_text(json.dumps(document))
    result = verify(cli, setup, path)
    assert result.code == 1
    assert f"two signed checkpoints of size {size} disagree" in result.out


def test_verify_requires_every_consistency_proof(cli: Cli, setup: Setup) -> None:
    cli("partner", "suspend", "acme")  # a second command: a second checkpoint
    _, document = export(cli, setup)
    assert document["consistency"]
    result = verify(cli, setup, tampered(setup, document, "no-proofs"))
    assert result.code == 1
    assert "consistency proof between checkpoints" in result.out


@pytest.mark.parametrize(
    "document",
    [
        '{"format": "modelpact-audit-export/v1", "origin": "o", "entries": 5}',
        '{"format": "modelpact-audit-export/v1", "origin": "o", "checkpoints": 5}',
        '{"format": "modelpact-audit-export/v1", "origin": "o", "consistency": {"a": 1}}',
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_malformed_exports_are_one_line_errors(cli: Cli, setup: Setup, document: str) -> None:
    path = setup.root / "bad.json"
    path.write_text(document)
    assert_one_line_error(cli("audit", "verify", path, "--public-key", setup.owner_key))


def test_verify_with_the_wrong_key_or_junk(cli: Cli, setup: Setup) -> None:
    path, _ = export(cli, setup)
    other = SigningKey.generate().verify_key.encode()
    result = cli("audit", "verify", path, "--public-key", other)
    assert result.code == 1
    assert "another public key" in result.out
    junk = setup.root / "junk.json"
    junk.write_text("{not json")
    assert_one_line_error(cli("audit", "verify", junk, "--public-key", setup.owner_key), "not JSON")
    assert_one_line_error(
        cli("audit", "verify", setup.root / "absent.json", "--public-key", setup.owner_key),
        "does not exist",
    )
