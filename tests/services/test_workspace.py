from __future__ import annotations

import shutil
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from modelpact.audit.entries import AdminEntry, decode_entry
from modelpact.crypto import (
    SigningKey,
    cert_fingerprint,
    cert_hosts,
    cert_not_after,
    cert_subject_cn,
    read_private_file,
    server_cert_renewal_reason,
    write_private_file,
)
from modelpact.errors import AlreadyExists, InsecureKeyFile, InvalidInput, NotFound, Tampered
from modelpact.services import Workspace, WorkspaceConfig, init_workspace, open_workspace
from modelpact.services.workspace import DEFAULT_TLS_HOSTS
from tests.services.conftest import FixedClock


def test_reopened_workspace_has_the_same_keys(workspace: Workspace) -> None:
    owner = workspace.owner_verify_key
    with open_workspace(workspace.root) as again:
        assert again.owner_verify_key == owner
        assert again.owner_key().verify_key == owner
        assert again.config == workspace.config


def test_init_refuses_an_existing_workspace(workspace: Workspace) -> None:
    with pytest.raises(AlreadyExists):
        init_workspace(workspace.root)


def test_failed_init_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "ws"
    with pytest.raises(InvalidInput):
        init_workspace(target, database_url="mysql://nowhere/db")
    assert not target.exists()


def test_open_refuses_missing_and_loose_workspaces(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        open_workspace(tmp_path / "absent")
    (workspace.root / "keys" / "owner-ed25519.pem").chmod(0o604)
    with pytest.raises(InsecureKeyFile):
        open_workspace(workspace.root)


@pytest.mark.parametrize(
    "text",
    [
        "[workspace]\nname = 'x'\nsurprise = 1\n",
        "[other]\nname = 'x'\n",
        "[workspace]\nname = '../etc'\n",
        "not toml = = =",
    ],
)
def test_config_rejects_unknown_or_bad_values(text: str) -> None:
    with pytest.raises(InvalidInput):
        WorkspaceConfig.from_toml(text, source="modelpact.toml")


def test_config_round_trips() -> None:
    config = WorkspaceConfig(name="northwind", database_url="postgresql+psycopg://h/db")
    assert WorkspaceConfig.from_toml(config.to_toml(), source="t") == config


def test_a_database_holding_another_workspace_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    # Nothing but the first workspace's own log entry (workspace.init) is in the database.
    url = workspace.database_url
    with pytest.raises(InvalidInput, match="already holds"):
        init_workspace(tmp_path / "second", database_url=url)
    assert not (tmp_path / "second").exists()


def test_a_replaced_public_key_file_is_caught(workspace: Workspace) -> None:
    from modelpact.crypto import SigningKey

    pub = workspace.root / "keys" / "owner-ed25519.pub"
    pub.write_text(SigningKey.generate().verify_key.encode() + "\n")
    with pytest.raises(Tampered, match="does not match"):
        open_workspace(workspace.root)


def test_an_open_workspace_folder_is_refused(workspace: Workspace) -> None:
    workspace.root.chmod(0o755)
    with pytest.raises(InsecureKeyFile, match="open to group or others") as caught:
        open_workspace(workspace.root)
    assert f"chmod 700 {workspace.root}" in caught.value.diagnostics()


def test_config_is_private(workspace: Workspace) -> None:
    assert (workspace.root / "modelpact.toml").stat().st_mode & 0o077 == 0


# ---------------------------------------------------------------------------- TLS

TLS_KEYS = ("tls/ca.key", "tls/server.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _tls_log(workspace: Workspace) -> list[AdminEntry]:
    with workspace.store.unit_of_work() as uow:
        records = uow.audit.entries(0, uow.audit.size())
    entries = [decode_entry(r.entry) for r in records]
    return [e for e in entries if isinstance(e, AdminEntry) and e.action.startswith("tls.")]


def test_init_creates_a_ca_and_a_loopback_server_certificate(workspace: Workspace) -> None:
    assert _mode(workspace.tls_dir) == 0o700
    for key in TLS_KEYS:
        assert _mode(workspace.root / key) == 0o600
    ca = workspace.ca_cert_path.read_bytes()
    server = workspace.server_cert_path.read_bytes()
    assert workspace.server_key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert cert_subject_cn(ca) == "modelpact ws local CA"
    assert cert_hosts(server) == DEFAULT_TLS_HOSTS
    assert cert_not_after(server) == workspace.clock() + timedelta(days=825)
    assert (
        server_cert_renewal_reason(
            server,
            read_private_file(workspace.server_key_path),
            ca,
            hosts=DEFAULT_TLS_HOSTS,
            now=workspace.clock(),
        )
        is None
    )
    # The signed log pins the CA a partner is handed.
    with workspace.store.unit_of_work() as uow:
        init = decode_entry(uow.audit.entries(0, 1)[0].entry)
    assert isinstance(init, AdminEntry) and init.action == "workspace.init"
    assert init.detail["tls_ca"] == cert_fingerprint(ca)
    assert init.detail["tls_server"] == cert_fingerprint(server)


def test_ensure_tls_changes_nothing_on_a_fresh_workspace(workspace: Workspace) -> None:
    before = {p: p.read_bytes() for p in workspace.tls_dir.iterdir()}
    workspace.ensure_tls()
    workspace.ensure_tls(["LOCALHOST", "127.0.0.1"])
    assert {p: p.read_bytes() for p in workspace.tls_dir.iterdir()} == before
    assert _tls_log(workspace) == []


def test_ensure_tls_equips_a_workspace_made_before_tls(
    workspace: Workspace, clock: FixedClock
) -> None:
    shutil.rmtree(workspace.tls_dir)
    with open_workspace(workspace.root, clock=clock) as old:
        assert not old.tls_dir.exists()
        old.ensure_tls()
        assert _mode(old.tls_dir) == 0o700
        for key in TLS_KEYS:
            assert _mode(old.root / key) == 0o600
        assert cert_hosts(old.server_cert_path.read_bytes()) == DEFAULT_TLS_HOSTS
        logged = _tls_log(old)
    assert [e.action for e in logged] == ["tls.ca", "tls.server_cert"]
    assert logged[0].detail["fingerprint"] == cert_fingerprint(workspace.ca_cert_path.read_bytes())
    assert logged[1].detail["reason"] == "new server key"
    open_workspace(workspace.root).close()


def test_a_new_host_reissues_the_server_certificate_for_the_same_key(
    workspace: Workspace,
) -> None:
    ca, key = workspace.ca_cert_path.read_bytes(), workspace.server_key_path.read_bytes()
    workspace.ensure_tls(["gw.northwind.example", "10.0.0.7"])
    server = workspace.server_cert_path.read_bytes()
    assert cert_hosts(server) == ("gw.northwind.example", "10.0.0.7", *DEFAULT_TLS_HOSTS)
    assert workspace.server_key_path.read_bytes() == key
    assert workspace.ca_cert_path.read_bytes() == ca
    [logged] = _tls_log(workspace)
    assert logged.action == "tls.server_cert"
    assert logged.detail["reason"] == "it does not name gw.northwind.example, 10.0.0.7"
    assert logged.detail["fingerprint"] == cert_fingerprint(server)
    assert not list(workspace.tls_dir.glob(".*"))  # no temporary file left


def test_a_server_certificate_near_its_end_is_renewed(
    workspace: Workspace, clock: FixedClock
) -> None:
    old = workspace.server_cert_path.read_bytes()
    clock.advance(days=800)
    workspace.ensure_tls()
    new = workspace.server_cert_path.read_bytes()
    assert new != old
    assert cert_not_after(new) == clock.now + timedelta(days=825)
    assert _tls_log(workspace)[0].detail["reason"].startswith("it ends on")  # type: ignore[union-attr]


def test_a_ca_is_never_replaced(workspace: Workspace) -> None:
    ca = workspace.ca_cert_path.read_bytes()
    (workspace.tls_dir / "ca.key").unlink()
    with pytest.raises(InvalidInput, match="exists without") as caught:
        workspace.ensure_tls()
    assert "\n" not in caught.value.diagnostics()
    assert workspace.ca_cert_path.read_bytes() == ca
    assert not (workspace.tls_dir / "ca.key").exists()


def test_a_ca_key_swapped_for_another_is_tampered(workspace: Workspace, clock: FixedClock) -> None:
    from modelpact.crypto import create_ca

    _, stranger = create_ca("other", now=clock.now)
    (workspace.tls_dir / "ca.key").unlink()
    write_private_file(workspace.tls_dir / "ca.key", stranger)
    workspace.server_cert_path.unlink()
    with pytest.raises(Tampered, match="CA key"):
        workspace.ensure_tls()


@pytest.mark.parametrize("key", TLS_KEYS)
def test_a_loose_tls_key_is_refused(workspace: Workspace, key: str) -> None:
    (workspace.root / key).chmod(0o640)
    with pytest.raises(InsecureKeyFile) as caught:
        open_workspace(workspace.root)
    assert f"chmod 600 {workspace.root / key}" in caught.value.diagnostics()
    with pytest.raises(InsecureKeyFile):
        workspace.ensure_tls()


def test_an_open_tls_folder_is_refused(workspace: Workspace) -> None:
    workspace.tls_dir.chmod(0o755)
    with pytest.raises(InsecureKeyFile, match="open to group or others") as caught:
        open_workspace(workspace.root)
    assert f"chmod 700 {workspace.tls_dir}" in caught.value.diagnostics()


def test_client_certificates_go_to_active_partners_only(workspace: Workspace) -> None:
    from modelpact.services import PartnerDirectory

    directory = PartnerDirectory(workspace)
    directory.enrol("acme", SigningKey.generate().verify_key.encode())
    cert, key = workspace.issue_partner_client_cert("acme")
    assert cert_subject_cn(cert) == "acme"
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    [logged] = _tls_log(workspace)
    assert (logged.action, logged.subject) == ("tls.client_cert", "acme")
    assert logged.detail["fingerprint"] == cert_fingerprint(cert)
    with pytest.raises(NotFound):
        workspace.issue_partner_client_cert("globex")
    directory.change_status("acme", "suspend")
    with pytest.raises(InvalidInput, match="suspended"):
        workspace.issue_partner_client_cert("acme")
    assert len(_tls_log(workspace)) == 1


def test_failed_init_in_an_existing_folder_leaves_it_empty(tmp_path: Path) -> None:
    target = tmp_path / "ws"
    target.mkdir()
    with pytest.raises(InvalidInput):
        init_workspace(target, database_url="mysql://nowhere/db")
    assert list(target.iterdir()) == []
