from __future__ import annotations

from pathlib import Path

import pytest

from modelpact.errors import AlreadyExists, InsecureKeyFile, InvalidInput, NotFound, Tampered
from modelpact.services import Workspace, WorkspaceConfig, init_workspace, open_workspace


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
