"""The owner's workspace: keys, configuration, database and encrypted artifacts in one folder.

Layout (the folder, ``keys/`` and ``tls/`` are 0700; keys and configuration 0600)::

    modelpact.toml                 configuration
    keys/owner-ed25519.pem         signs charters, checkpoints, attestations
    keys/owner-ed25519.pub         the same, public, as ed25519:<base64>
    keys/model-signing-p256.pem    signs models (OpenSSF model-signing, EC P-256)
    keys/model-signing-p256.pub    its PEM public key, for `model_signing verify key`
    keys/kek.key                   key-encryption key wrapping per-artifact data keys
    keys/kek.next.key              the next one, only while a rotation is under way
    keys/kek.lock                  held by writers that wrap, and for an instant by rotate-kek
    keys/kek-rotation.lock         held by a running rotate-kek
    keys/owner-ed25519.next.pem    the owner's next key, only while a handover is under way
    keys/owner-handover.pending.json  that handover, signed by both keys, until it is logged
    keys/owner-handovers.json      public index of the owner-key handovers in the log
    keys/owner-rotation.lock       held by a running rotate-owner
    tls/ca.pem, tls/ca.key         the workspace's local CA (partners trust ca.pem)
    tls/server.pem, tls/server.key the gateway's certificate and key, issued by that CA
    modelpact.db                   SQLite database (default)
    artifacts/                     encrypted model artifacts
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import stat
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from modelpact.audit.entries import AdminEntry
from modelpact.audit.log import append_within, issue_checkpoint
from modelpact.crypto import (
    GCM_SEAL_LIMIT,
    KeyEncryptionKey,
    SigningKey,
    VerifyKey,
    cert_fingerprint,
    cert_hosts,
    cert_not_after,
    check_private_file,
    constant_time_equal,
    create_ca,
    generate_model_signing_key,
    issue_client_cert,
    issue_server_cert,
    model_signing_public_pem,
    read_private_file,
    server_cert_renewal_reason,
    write_private_file,
)
from modelpact.errors import (
    AlreadyExists,
    InsecureKeyFile,
    InvalidInput,
    ModelpactError,
    NotFound,
    StorageUnavailable,
    Tampered,
)
from modelpact.services.clock import Clock, system_clock
from modelpact.services.kek import KEK_FILE, NEXT_KEK_FILE, WorkspaceKek
from modelpact.services.key_budget import DEFAULT_ROTATE_AT, EncryptionBudget, KeyLimits
from modelpact.store import (
    ArtifactStore,
    CheckpointRecord,
    LocalArtifactStore,
    Store,
    UnitOfWork,
    open_store,
)

__all__ = [
    "CONFIG_NAME",
    "DEFAULT_TLS_HOSTS",
    "Workspace",
    "WorkspaceConfig",
    "init_workspace",
    "open_workspace",
]

CONFIG_NAME = "modelpact.toml"
OWNER_KEY = "keys/owner-ed25519.pem"
OWNER_PUB = "keys/owner-ed25519.pub"
MODEL_KEY = "keys/model-signing-p256.pem"
MODEL_PUB = "keys/model-signing-p256.pub"
KEK = KEK_FILE
TLS_DIR = "tls"
CA_CERT = "tls/ca.pem"
CA_KEY = "tls/ca.key"
SERVER_CERT = "tls/server.pem"
SERVER_KEY = "tls/server.key"
#: What the gateway's certificate names unless told otherwise: loopback only.
DEFAULT_TLS_HOSTS = ("localhost", "127.0.0.1", "::1")
_RENEW_WITHIN = timedelta(days=30)
DEFAULT_DATABASE = "sqlite:///modelpact.db"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")


@dataclass(frozen=True, slots=True)
class WorkspaceConfig:
    """What ``modelpact.toml`` says.  Unknown keys are errors."""

    name: str
    database_url: str = DEFAULT_DATABASE
    key_limits: KeyLimits = field(default_factory=KeyLimits)

    def to_toml(self) -> str:
        # json.dumps yields a valid TOML basic string for these ASCII values.
        text = (
            "# modelpact workspace configuration\n"
            "[workspace]\n"
            f"name = {json.dumps(self.name)}\n\n"
            "[database]\n"
            "# sqlite:///FILE is relative to the workspace; postgresql+psycopg://... scales out\n"
            f"url = {json.dumps(self.database_url)}\n"
        )
        if self.key_limits != KeyLimits():
            text += (
                "\n[keys]\n"
                "# AES-GCM encryptions per key: rotate at rotate_at, refuse past limit\n"
                f"rotate_at = {self.key_limits.rotate_at}\n"
                f"limit = {self.key_limits.limit}\n"
            )
        return text

    @classmethod
    def from_toml(cls, text: str, *, source: str) -> WorkspaceConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInput(f"{source} is not valid TOML: {exc}") from None
        allowed = {"workspace": {"name"}, "database": {"url"}, "keys": {"rotate_at", "limit"}}
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
        keys = data.get("keys", {})
        rotate_at = keys.get("rotate_at", DEFAULT_ROTATE_AT)
        limit = keys.get("limit", GCM_SEAL_LIMIT)
        for key, value in (("rotate_at", rotate_at), ("limit", limit)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidInput(f"{source}: keys.{key} must be an integer")
        try:
            limits = KeyLimits(rotate_at=rotate_at, limit=limit)
        except InvalidInput as exc:
            raise InvalidInput(f"{source}: {exc.summary}") from None
        return cls(name=name, database_url=url, key_limits=limits)


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
    _kek: WorkspaceKek | None = field(default=None, repr=False)
    _encryptions: EncryptionBudget | None = field(default=None, repr=False)

    @property
    def database_url(self) -> str:
        """The database URL as opened: a relative SQLite path resolved inside the workspace."""
        return _resolve_url(self.config.database_url, self.root)

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

    def use_owner_key(self, key: SigningKey) -> None:
        """Sign with ``key`` from now on (an owner-key handover put it in force)."""
        self._owner_key = key

    def signing_key(self) -> SigningKey:
        """The owner key to sign a checkpoint with *now*, for a long-running process.

        ``keys/owner-ed25519.pub`` is read each time (checkpoints are seconds apart): when
        another process finished a handover (``modelpact keys rotate-owner``), the new key
        is loaded; while one is under way (the ``.pub`` already names the new key, the
        private key file is still the old one), :class:`StorageUnavailable` — a checkpoint
        waits rather than being signed by a key that is handing over.  Called after the
        tree's size is read, so a handover appended before that read is always seen.
        """
        key = self.owner_key()
        try:
            public = (self.root / OWNER_PUB).read_text(encoding="ascii").strip()
        except OSError:
            raise StorageUnavailable(f"{self.root / OWNER_PUB} cannot be read") from None
        if public == key.verify_key.encode():
            return key
        fresh = SigningKey.load(self.root / OWNER_KEY)
        if fresh.verify_key.encode() != public:
            raise StorageUnavailable(
                "the owner key is being handed over; checkpoints wait until it is done",
                hint="finish it with 'modelpact keys rotate-owner'",
            )
        self._owner_key = fresh
        return fresh

    @property
    def owner_verify_key(self) -> VerifyKey:
        """Derived from the private key: the ``.pub`` file is for people, not for trust."""
        return self.owner_key().verify_key

    def kek(self) -> WorkspaceKek:
        """The KEK ring (two keys during a rotation); each wrap is counted."""
        if self._kek is None:
            self._kek = WorkspaceKek(self.root, self.encryptions())
        return self._kek

    def encryptions(self) -> EncryptionBudget:
        """The encryption counters of the workspace's long-lived keys."""
        if self._encryptions is None:
            self._encryptions = EncryptionBudget(self.artifacts, self.config.key_limits)
        return self._encryptions

    @property
    def next_kek_path(self) -> Path:
        """Where a rotation keeps the new KEK until every wrapped key is under it."""
        return self.root / NEXT_KEK_FILE

    @property
    def log_origin(self) -> str:
        """The audit log's name in its signed checkpoints (C2SP origin line)."""
        return f"modelpact/{self.config.name}/log"

    def checkpoint(self) -> CheckpointRecord:
        """Sign a checkpoint for the audit log's current size (or return the existing one),
        with the key in force once the size is read (:meth:`signing_key`): a process opened
        before an owner-key handover never signs a tree holding it with the old key."""
        return issue_checkpoint(
            self.store, key=self.signing_key, origin=self.log_origin, now=self.clock()
        )

    @property
    def tls_dir(self) -> Path:
        return self.root / TLS_DIR

    @property
    def ca_cert_path(self) -> Path:
        """The workspace CA: what partners add to their trust store."""
        return self.root / CA_CERT

    @property
    def server_cert_path(self) -> Path:
        return self.root / SERVER_CERT

    @property
    def server_key_path(self) -> Path:
        return self.root / SERVER_KEY

    def ensure_tls(self, hosts: Sequence[str] | None = None) -> None:
        """Make sure the CA and a server certificate for ``hosts`` exist; call it before serving.

        A workspace made before TLS existed gets its CA and server key here.  The
        server certificate is issued again, for the same key, when it does not
        name every host asked for (the new one names the old hosts too), ends
        within 30 days, or no longer matches the key or the CA.  A CA is never
        replaced: half of one (a certificate without its key, or the reverse) is
        an error.  Each CA or certificate made is recorded in the audit log.
        """
        wanted = list(DEFAULT_TLS_HOSTS if hosts is None else hosts)
        now = self.clock()
        ca_pem, ca_key = self._ensure_ca(now)
        key_path, cert_path = self.server_key_path, self.server_cert_path
        key = read_private_file(key_path) if os.path.lexists(key_path) else None
        previous = _read_public(cert_path) if os.path.lexists(cert_path) else None
        if key is None:
            reason: str | None = "new server key"
        elif previous is None:
            reason = "there was none"
        else:
            reason = server_cert_renewal_reason(
                previous, key, ca_pem, hosts=wanted, now=now, renew_within=_RENEW_WITHIN
            )
        if reason is None:
            return
        named: tuple[str, ...] = ()
        if previous is not None:
            with contextlib.suppress(InvalidInput):
                named = cert_hosts(previous)
        cert, new_key = issue_server_cert(
            ca_pem, ca_key, hosts=[*wanted, *named], now=now, server_key_pem=key
        )
        if key is None:
            write_private_file(key_path, new_key)
        _write_public(cert_path, cert, replace=True)
        named = cert_hosts(cert)
        with self.store.unit_of_work() as uow:
            _record_cert(
                uow,
                now,
                "tls.server_cert",
                self.config.name,
                cert,
                hosts=",".join(named),
                reason=reason[:200],
            )

    def issue_partner_client_cert(self, partner: str) -> tuple[bytes, bytes]:
        """A mutual-TLS client certificate (CN = ``partner``) for an active partner.

        Returns ``(certificate PEM, private key PEM)``.  Nothing is kept in the
        workspace but an audit log entry with the certificate's fingerprint: the
        caller hands both to the partner and writes the key only with
        :func:`~modelpact.crypto.write_private_file`.
        """
        now = self.clock()
        ca_pem, ca_key = self._ensure_ca(now)
        with self.store.unit_of_work() as uow:
            record = uow.partners.get(partner)
            if record.status != "active":
                raise InvalidInput(
                    f"partner {partner} is {record.status}; no certificate issued",
                    hint="only an active partner gets a client certificate",
                )
            cert, key = issue_client_cert(ca_pem, ca_key, partner=partner, now=now)
            _record_cert(uow, now, "tls.client_cert", partner, cert)
        return cert, key

    def _ensure_ca(self, now: datetime) -> tuple[bytes, bytes]:
        """The CA certificate and key PEM, creating both (and ``tls/``) if neither exists."""
        _make_tls_dir(self.tls_dir)
        cert_path, key_path = self.ca_cert_path, self.root / CA_KEY
        has_cert, has_key = os.path.lexists(cert_path), os.path.lexists(key_path)
        if has_cert and has_key:
            return _read_public(cert_path), read_private_file(key_path)
        if has_cert or has_key:
            present, absent = (cert_path, key_path) if has_cert else (key_path, cert_path)
            raise InvalidInput(
                f"{present} exists without {absent}",
                hint="restore it from a backup; a CA partners trust is never replaced by itself",
            )
        cert = _write_ca(self.root, self.config.name, now)
        with self.store.unit_of_work() as uow:
            _record_cert(uow, now, "tls.ca", self.config.name, cert)
        return cert, read_private_file(key_path)

    def close(self) -> None:
        """Cover whatever this process appended with a signed checkpoint, then close."""
        try:
            # A failure here loses nothing: entries are durable, the next checkpoint covers them.
            with contextlib.suppress(ModelpactError):
                with self.store.unit_of_work() as uow:
                    latest = uow.audit.latest_checkpoint()
                    grown = uow.audit.size() > (latest.size if latest else 0)
                if grown:
                    self.checkpoint()
        finally:
            self.store.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_workspace(
    root: Path,
    *,
    name: str | None = None,
    database_url: str | None = None,
    clock: Clock = system_clock,
) -> Workspace:
    """Create a workspace in ``root`` (new or empty).  On any failure nothing is left behind.

    ``database_url`` defaults to an SQLite file inside the workspace.
    """
    root = root.expanduser().absolute()
    if (root / CONFIG_NAME).exists():
        raise AlreadyExists(f"{root} is already a modelpact workspace")
    config = WorkspaceConfig(
        name=name or root.name or "modelpact", database_url=database_url or DEFAULT_DATABASE
    )
    if not _NAME.match(config.name):
        raise InvalidInput(f"workspace name {config.name!r} is not a plain name", hint="use --name")
    try:
        root.mkdir(mode=0o700, parents=True)
        created_root = True
    except FileExistsError:
        if not root.is_dir() or any(root.iterdir()):
            raise InvalidInput(f"{root} exists and is not an empty folder") from None
        created_root = False
    except OSError as exc:
        raise InvalidInput(f"cannot create {root}: {exc.strerror}") from None
    created: list[Path] = []
    workspace: Workspace | None = None
    try:
        if not created_root:
            os.chmod(root, 0o700)
        created.append(root / "keys")
        created[-1].mkdir(mode=0o700)
        owner = SigningKey.generate()
        owner.save(root / OWNER_KEY)
        (root / OWNER_PUB).write_text(owner.verify_key.encode() + "\n")
        generate_model_signing_key(root / MODEL_KEY, root / MODEL_PUB)
        KeyEncryptionKey.generate(created_at=clock()).save(root / KEK)
        created.append(root / TLS_DIR)
        created[-1].mkdir(mode=0o700)
        tls_now = clock()
        ca_pem = _write_ca(root, config.name, tls_now)
        server_pem, server_key = issue_server_cert(
            ca_pem, read_private_file(root / CA_KEY), hosts=DEFAULT_TLS_HOSTS, now=tls_now
        )
        write_private_file(root / SERVER_KEY, server_key)
        _write_public(root / SERVER_CERT, server_pem, replace=False)
        created.append(root / CONFIG_NAME)
        write_private_file(root / CONFIG_NAME, config.to_toml().encode())
        workspace = _open(root, config, clock)
        created.append(root / "artifacts")
        _require_empty(workspace)
        now = clock()
        with workspace.store.unit_of_work() as uow:
            entry = AdminEntry(
                time=now,
                actor="owner",
                subject=config.name,
                action="workspace.init",
                detail={
                    "owner_key": owner.verify_key.encode(),
                    "tls_ca": cert_fingerprint(ca_pem),
                    "tls_server": cert_fingerprint(server_pem),
                },
            )
            append_within(uow, [entry], now=now)
    except BaseException:
        if workspace is not None:
            workspace.store.close()  # not close(): no checkpoint for a workspace being undone
        if created_root:
            shutil.rmtree(root, ignore_errors=True)
        else:  # remove only what this call made; leave the folder itself
            for path in [*reversed(created), *root.glob("modelpact.db*")]:
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
        raise
    return workspace


def _require_empty(workspace: Workspace) -> None:
    """A new workspace must not adopt a database that already holds another one's records."""
    with workspace.store.unit_of_work() as uow:
        used = (
            uow.audit.size() > 0
            or uow.partners.list()
            or uow.models.list_models()
            or uow.charters.list()
        )
    if used:  # the caller closes the store; never sign a checkpoint over another's log
        raise InvalidInput(
            "that database already holds a modelpact workspace",
            hint="give each workspace its own database (or PostgreSQL schema)",
        )


def open_workspace(root: Path, *, clock: Clock = system_clock) -> Workspace:
    """Open the workspace in ``root``, checking that its secrets are private."""
    return _open_checked(root, clock, owner_pub=True)


def open_during_handover(root: Path, *, clock: Clock = system_clock) -> Workspace:
    """:func:`open_workspace` for the owner-key handover alone: every check but that
    ``keys/owner-ed25519.pub`` matches the private key, which it does not while a handover
    is under way (:mod:`modelpact.services.owner_keys`).  Sign nothing with it."""
    return _open_checked(root, clock, owner_pub=False)


def _open_checked(root: Path, clock: Clock, *, owner_pub: bool) -> Workspace:
    root = root.expanduser().absolute()
    config_path = root / CONFIG_NAME
    if not config_path.is_file():
        raise NotFound(
            f"no modelpact workspace at {root}",
            hint="create one with 'modelpact init DIR', or pass --workspace / MODELPACT_WORKSPACE",
        )
    mode = stat.S_IMODE(root.stat().st_mode)
    if mode & 0o077:
        raise InsecureKeyFile(
            f"workspace folder {root} is open to group or others (mode {mode:04o})",
            hint=f"restrict it with: chmod 700 {root}",
        )
    for secret in (CONFIG_NAME, OWNER_KEY, MODEL_KEY, KEK):
        check_private_file(root / secret)
    if os.path.lexists(root / NEXT_KEK_FILE):  # a rotation is under way
        check_private_file(root / NEXT_KEK_FILE)
    _check_tls_files(root)
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {config_path}: {exc}") from None
    config = WorkspaceConfig.from_toml(text, source=str(config_path))
    _check_public_keys(root, owner=owner_pub)
    return _open(root, config, clock)


def _record_cert(
    uow: UnitOfWork, now: datetime, action: str, subject: str, cert: bytes, **detail: str
) -> None:
    """Log a certificate the workspace made: its fingerprint lets partners check what they got."""
    detail |= {"fingerprint": cert_fingerprint(cert), "not_after": cert_not_after(cert).isoformat()}
    entry = AdminEntry(time=now, actor="owner", subject=subject, action=action, detail=detail)
    append_within(uow, [entry], now=now)


def _check_tls_files(root: Path) -> None:
    """TLS keys, when there are any (a workspace may predate TLS), must be private too."""
    tls = root / TLS_DIR
    if not os.path.lexists(tls):
        return
    _check_tls_dir(tls)
    for secret in (CA_KEY, SERVER_KEY):
        if os.path.lexists(root / secret):
            check_private_file(root / secret)


def _check_tls_dir(tls: Path) -> None:
    st = tls.lstat()
    if not stat.S_ISDIR(st.st_mode):
        raise InsecureKeyFile(f"{tls} is not a plain folder")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise InsecureKeyFile(
            f"TLS folder {tls} is open to group or others (mode {mode:04o})",
            hint=f"restrict it with: chmod 700 {tls}",
        )


def _make_tls_dir(tls: Path) -> None:
    try:
        tls.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StorageUnavailable(f"cannot create {tls}: {exc.strerror}") from None
    _check_tls_dir(tls)


def _ca_common_name(workspace_name: str) -> str:
    # A common name holds at most 64 characters; a workspace name up to 128.
    return f"modelpact {workspace_name[:45]} local CA"


def _write_ca(root: Path, workspace_name: str, now: datetime) -> bytes:
    """Create the CA key (0600) and certificate; neither may exist.  Returns the certificate."""
    cert, key = create_ca(_ca_common_name(workspace_name), now=now)
    write_private_file(root / CA_KEY, key)
    try:
        _write_public(root / CA_CERT, cert, replace=False)
    except BaseException:
        (root / CA_KEY).unlink(missing_ok=True)  # no half a CA left behind
        raise
    return cert


def _write_public(path: Path, data: bytes, *, replace: bool) -> None:
    """Write a certificate, mode 0644.

    ``replace=False`` refuses an existing file, as for keys.  ``replace=True``
    writes a temporary file and renames it over ``path``: a reader sees the old
    certificate or the new one, never half of one.
    """
    target = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp") if replace else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise AlreadyExists(f"{path} already exists", hint="move it away first") from None
    except OSError as exc:
        raise StorageUnavailable(f"cannot create {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(target, path)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise StorageUnavailable(f"cannot write {path}: {exc.strerror}") from None


def _read_public(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise StorageUnavailable(f"cannot read {path}: {exc.strerror}") from None


def _check_public_keys(root: Path, *, owner: bool = True) -> None:
    """The ``.pub`` files people copy from must match the private keys that sign."""
    try:
        owner_pub = (root / OWNER_PUB).read_text(encoding="ascii").strip()
        model_pub = (root / MODEL_PUB).read_bytes()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the workspace public keys: {exc}") from None
    try:
        declared = VerifyKey.decode(owner_pub)
    except InvalidInput:
        raise Tampered(f"{root / OWNER_PUB} does not hold an Ed25519 public key") from None
    if owner and declared != SigningKey.load(root / OWNER_KEY).verify_key:
        raise Tampered(f"{root / OWNER_PUB} does not match the owner's private key")
    if not constant_time_equal(model_pub, model_signing_public_pem(root / MODEL_KEY)):
        raise Tampered(f"{root / MODEL_PUB} does not match the model-signing private key")


def _open(root: Path, config: WorkspaceConfig, clock: Clock) -> Workspace:
    store = open_store(_resolve_url(config.database_url, root))
    return Workspace(
        root=root,
        config=config,
        store=store,
        artifacts=LocalArtifactStore(root / "artifacts"),
        clock=clock,
    )
