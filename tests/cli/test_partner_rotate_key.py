"""``modelpact partner rotate-key``: the partner proves its key while registering the new
one; the profile's key file then holds the new key, and the old key opens nothing."""

# ruff: noqa: F811 - the gateway's fixtures are imported by name and requested as arguments

from __future__ import annotations

import json
import stat

import pytest

from modelpact.crypto import SigningKey
from modelpact.errors import ServerError
from modelpact.services import PartnerDirectory, Workspace
from tests.cli.conftest import Cli
from tests.cli.test_partner_gateway import Partner, partner  # noqa: F401
from tests.gateway.conftest import (  # noqa: F401 - fixtures are used by name
    KEYS,
    app,
    clock,
    gateway,
    onnx_model,
    ws,
)


def test_rotate_key_enrols_the_new_key_and_the_profile_goes_on(
    cli: Cli, partner: Partner, ws: Workspace
) -> None:
    assert cli(*partner.session_args()).code == 0
    rotated = cli("partner", "rotate-key", "--profile", partner.profile)
    assert rotated.code == 0, rotated.err
    new_key = rotated.out.strip().splitlines()[-1]
    assert PartnerDirectory(ws).get("acme").public_key == new_key
    assert SigningKey.load(partner.key).verify_key.encode() == new_key
    assert stat.S_IMODE(partner.key.stat().st_mode) == 0o600
    assert not partner.key.with_name(partner.key.name + ".next").exists()
    [record] = json.loads(partner.key.with_name(partner.key.name + ".rotations.json").read_text())
    assert record["old_key"] == KEYS["acme"].verify_key.encode()
    assert record["new_key"] == new_key
    # The profile (whose charter names the old key) keeps working with the new key...
    assert cli("partner", "dashboard", "--profile", partner.profile).code == 0
    # ...and a session with the old key is refused.
    old = partner.root / "old.key"
    KEYS["acme"].save(old)
    refused = cli(*partner.session_args(key=old, profile=partner.root / "old.toml"))
    assert refused.code != 0 and "proof of key" in refused.err


def test_an_interrupted_rotate_key_finishes_on_a_second_run(
    cli: Cli, partner: Partner, ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(*partner.session_args()).code == 0
    from modelpact.client import PartnerClient

    real = PartnerClient.rotate_key

    def lost_answer(self: PartnerClient, new: SigningKey) -> object:
        real(self, new)  # the gateway enrols the key, the answer never arrives
        raise ServerError("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(PartnerClient, "rotate_key", lost_answer)
        failed = cli("partner", "rotate-key", "--profile", partner.profile)
        assert failed.code != 0
    pending = partner.key.with_name(partner.key.name + ".next")
    assert pending.exists()  # the new key was kept although the answer was lost
    assert SigningKey.load(partner.key).verify_key == KEYS["acme"].verify_key  # not replaced yet
    resumed = cli("partner", "rotate-key", "--profile", partner.profile)
    assert resumed.code == 0, resumed.err
    new_key = SigningKey.load(partner.key).verify_key.encode()
    assert PartnerDirectory(ws).get("acme").public_key == new_key
    assert not pending.exists()
    assert "enrolled your new key;" in resumed.out  # known from a session, not an answer


def test_an_offline_rotation_statement_is_applied_by_the_owner_once(
    cli: Cli, partner: Partner, ws: Workspace
) -> None:
    assert cli(*partner.session_args()).code == 0
    statement = partner.root / "rotation.json"
    wrote = cli("partner", "rotate-key", "--profile", partner.profile, "--statement-out", statement)
    assert wrote.code == 0, wrote.err
    new_key = wrote.out.strip().splitlines()[-1]
    assert PartnerDirectory(ws).get("acme").public_key == KEYS["acme"].verify_key.encode()

    owner = ("--workspace", ws.root, "partner", "rotate-key")
    applied = cli(*owner, "acme", "--statement", statement)
    assert applied.code == 0, applied.err
    assert PartnerDirectory(ws).get("acme").public_key == new_key
    again = cli(*owner, "acme", "--statement", statement)  # a replay changes nothing
    assert again.code != 0 and "not from the key enrolled" in again.err
    other = cli(*owner, "globex", "--statement", statement)
    assert other.code != 0 and "not of globex" in other.err

    # The partner finishes: the gateway already holds the new key, the key file follows.
    finished = cli("partner", "rotate-key", "--profile", partner.profile)
    assert finished.code == 0, finished.err
    assert SigningKey.load(partner.key).verify_key.encode() == new_key
    assert cli("partner", "dashboard", "--profile", partner.profile).code == 0


def test_an_offline_statement_signed_by_the_new_key_only_is_refused(
    cli: Cli, partner: Partner, ws: Workspace
) -> None:
    assert cli(*partner.session_args()).code == 0
    statement = partner.root / "rotation.json"
    assert (
        cli("partner", "rotate-key", "--profile", partner.profile, "--statement-out", statement)
    ).code == 0
    document = json.loads(statement.read_text())
    document["old_signature"] = document["new_signature"]
    statement.write_text(json.dumps(document))
    refused = cli("--workspace", ws.root, "partner", "rotate-key", "acme", "--statement", statement)
    assert refused.code != 0 and "does not verify" in refused.err
    assert PartnerDirectory(ws).get("acme").public_key == KEYS["acme"].verify_key.encode()
