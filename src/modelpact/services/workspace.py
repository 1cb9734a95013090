"""The owner's workspace: keys, configuration, database and encrypted artifacts in one folder.

Layout (all private files 0600, folders 0700)::

    modelpact.toml                 configuration
    keys/owner-ed25519.pem         signs charters, checkpoints, attestations
    keys/owner-ed25519.pub         the same, public, as ed25519:<base64>
    keys/model-signing-p256.pem    signs models (OpenSSF model-signing, EC P-256)
    keys/model-signing-p256.pub    its PEM public key, for `model_signing verify key`
    keys/kek.key                   key-encryption key wrapping per-artifact data keys
    modelpact.db                   SQLite database (default)
    artifacts/                     encrypted model artifacts
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from modelpact.crypto import (
    KeyEncryptionKey,
    SigningKey,
    VerifyKey,
    check_private_file,
    generate_model_signing_key,
)
from modelpact.errors import AlreadyExists, InvalidInput, NotFound
from modelpact.services.clock import Clock, system_clock
from modelpact.store import ArtifactStore, LocalArtifactStore, Store, open_store

__all__ = ["CONFIG_NAME", "Workspace", "WorkspaceConfig", "init_workspace", "open_workspace"]

CONFIG_NAME = "modelpact.toml"
OWNER_KEY = "keys/owner-ed25519.pem"
OWNER_PUB = "keys/owner-ed25519.pub"
MODEL_KEY = "keys/model-signing-p256.pem"
MODEL_PUB = "keys/model-signing-p256.pub"
KEK = "keys/kek.key"
DEFAULT_DATABASE = "sqlite:///modelpact.db"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """What ``modelpact.toml`` says.  Unknown keys are errors."""

    name: str
    database_url: str = DEFAULT_DATABASE

    def to_toml(self) -> str:
        # json.dumps yields a valid TOML basic string for these ASCII values.
        return (
            "# modelpact workspace configuration\n"
            "[workspace]\n"
            f"name = {json.dumps(self.name)}\n\n"
            "[database]\n"
            "# sqlite:///FILE is relative to the workspace; postgresql+psycopg://... scales out\n"
            f"url = {json.dumps(self.database_url)}\n"
        )

    @classmethod
    def from_toml(cls, text: str, *, source: str) -> WorkspaceConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{source} is not valid TOML: {exc}") from None
        allowed = {"workspace": {"name"}, "database": {"url"}}
        for section, values in data.items():
            if section not in allowed or not isinstance(values, dict):
                raise InvalidInput(f"{source}: unknown section [{section}]")
            for key in values:
                if key not in allowed[section]:
                    raise InvalidInput(f"{source}: unknown key {section}.{key}")
        name = data.get("workspace", {}).get("name")
        url = data.get("database", {}).get("url", DEFAULT_DATABASE)
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"{source}: workspace.name is missing or not a plain name")
        if not isinstance(url, str) or not url:
            raise InvalidInput(f"{source}: database.url must be a string")
        return cls(name=name, database_url=url)


def _resolve_url(url: str, root: Path) -> str:
    """Make a relative SQLite path relative to the workspace, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str(root / url[len(prefix) :])
    return url


@dataclass(slots=True)
class Workspace:
    """An opened workspace.  Keys are loaded when first needed, never printed."""

    root: Path
    config: WorkspaceConfig
    store: Store
    artifacts: ArtifactStore
    clock: Clock = system_clock
    _owner_key: SigningKey | None = field(default=None, repr=False)
    _kek: KeyEncryptionKey | None = field(default=None, repr=False)

    @property
    def model_signing_key_path(self) -> Path:
        return self.root / MODEL_KEY

    @property
    def model_signing_public_path(self) -> Path:
        return self.root / MODEL_PUB

    def owner_key(self) -> SigningKey:
        if self._owner_key is None:
            self._owner_key = SigningKey.load(self.root / OWNER_KEY)
        return self._owner_key

    @property
    def owner_verify_key(self) -> VerifyKey:
        return VerifyKey.decode((self.root / OWNER_PUB).read_text().strip())

    def kek(self) -> KeyEncryptionKey:
        if self._kek is None:
            self._kek = KeyEncryptionKey.load(self.root / KEK)
        return self._kek

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_workspace(
    root: Path,
    *,
    name: str | None = None,
    database_url: str = DEFAULT_DATABASE,
    clock: Clock = system_clock,
) -> Workspace:
    """Create a workspace in ``root`` (new or empty).  On any failure nothing is left behind."""
    root = root.expanduser().absolute()
    if (root / CONFIG_NAME).exists():
        raise AlreadyExists(f"{root} is already a modelpact workspace")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InvalidInput(f"{root} exists and is not an empty folder")
    config = WorkspaceConfig(name=name or root.name or "modelpact", database_url=database_url)
    if not _NAME.match(config.name):
        raise InvalidInput(f"workspace name {config.name!r} is not a plain name", hint="use --name")
    created = not root.exists()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        (root / "keys").mkdir(mode=0o700)
        owner = SigningKey.generate()
        owner.save(root / OWNER_KEY)
        (root / OWNER_PUB).write_text(owner.verify_key.encode() + "\n")
        generate_model_signing_key(root / MODEL_KEY, root / MODEL_PUB)
        KeyEncryptionKey.generate().save(root / KEK)
        (root / CONFIG_NAME).write_text(config.to_toml())
        workspace = _open(root, config, clock)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return workspace


def open_workspace(root: Path, *, clock: Clock = system_clock) -> Workspace:
    """Open the workspace in ``root``, checking that its secrets are private."""
    root = root.expanduser().absolute()
    config_path = root / CONFIG_NAME
    if not config_path.is_file():
        raise NotFound(
            f"no modelpact workspace at {root}",
            hint="create one with 'modelpact init DIR', or pass --workspace / MODELPACT_WORKSPACE",
        )
    config = WorkspaceConfig.from_toml(config_path.read_text(), source=str(config_path))
    for secret in (OWNER_KEY, MODEL_KEY, KEK):
        check_private_file(root / secret)
    return _open(root, config, clock)


def _open(root: Path, config: WorkspaceConfig, clock: Clock) -> Workspace:
    store = open_store(_resolve_url(config.database_url, root))
    return Workspace(
        root=root,
        config=config,
        store=store,
        artifacts=LocalArtifactStore(root / "artifacts"),
        clock=clock,
    )
