from __future__ import annotations

from pathlib import Path

import pytest

from modelpact.errors import AlreadyExists, InsecureKeyFile, InvalidInput, NotFound
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
