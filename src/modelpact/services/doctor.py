"""``modelpact doctor``: an installation checked, each problem said in plain words with its fix.

Checks, each giving findings of severity ``critical`` (``serve`` refuses to
start), ``warning`` or ``ok``:

- **installed files** — every file of the serving dependency set matches the
  hash its installer recorded (RECORD);
- **key files** — each private key is a plain file of this user, mode 0600 or
  less; the workspace, ``keys/`` and ``tls/`` folders 0700;
- **TLS** — the gateway's certificate is present, this CA's, for its key, and
  not about to expire (when serving TLS: plain HTTP is a warning);
- **encryption keys** (only when something needs doing) — a KEK rotation left
  unfinished, or a key past its encryption count's ``rotate_at`` or ``limit``
  (:func:`~modelpact.services.kek_rotation.key_warnings`);
- **charter pins** — every active charter's ``attestation`` pins match what runs:
  the serving measurement, and each pinned model version's registered digest and
  the served version of each pinned model.  A mismatch means that partner's SDK
  refuses every session.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from modelpact.charter import Charter
from modelpact.crypto import check_private_file, read_private_file, server_cert_renewal_reason
from modelpact.errors import InsecureKeyFile, ModelpactError, NotFound
from modelpact.runtime.measurement import Measurement, installed_mismatches, measure
from modelpact.services.charters import CharterDesk
from modelpact.services.kek_rotation import kek_status, key_warnings
from modelpact.services.registry import ModelRegistry
from modelpact.services.workspace import Workspace

__all__ = ["Finding", "Severity", "check_keys", "critical", "diagnose"]

Severity = Literal["critical", "warning", "ok"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's verdict: what is wrong (or that it holds) and what to do about it."""

    check: str
    severity: Severity
    problem: str
    fix: str = ""


def critical(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "critical"]


_PRIVATE = (
    "keys/owner-ed25519.pem",
    "keys/model-signing-p256.pem",
    "keys/kek.key",
    "tls/ca.key",
    "tls/server.key",
)
_FOLDERS = (".", "keys", "tls")


def diagnose(
    ws: Workspace,
    *,
    tls: bool = True,
    hosts: tuple[str, ...] = ("127.0.0.1",),
    measured: Callable[[], Measurement] = measure,
    mismatches: Callable[[], list[str]] = installed_mismatches,
) -> list[Finding]:
    """Every check on ``ws`` and this installation; ``tls``: whether the gateway serves TLS."""
    findings = _installed(mismatches)
    findings += check_keys(ws.root)
    findings += _tls(ws, tls, hosts)
    findings += _encryption_keys(ws)
    findings += _pins(ws, measured)
    return findings


def _installed(mismatches: Callable[[], list[str]]) -> list[Finding]:
    problems = mismatches()
    if not problems:
        return [Finding("installed files", "ok", "every dependency file matches its RECORD")]
    return [
        Finding(
            "installed files",
            "critical",
            problem,
            "reinstall it from a trusted index (pip install --force-reinstall NAME==VERSION)",
        )
        for problem in problems
    ]


def check_keys(root: Path) -> list[Finding]:
    """The key-file checks alone: they need no open workspace (which an insecure key stops)."""
    findings = []
    for relative in _PRIVATE:
        path = root / relative
        if not os.path.lexists(path):
            if relative.startswith("tls/"):
                continue  # issued by `modelpact serve` on first start
            findings.append(
                Finding("key files", "critical", f"{path} is missing", "restore it from a backup")
            )
            continue
        try:
            check_private_file(path)
        except InsecureKeyFile as exc:
            findings.append(Finding("key files", "critical", exc.summary, f"chmod 600 {path}"))
    for relative in _FOLDERS:
        folder = (root / relative).resolve()
        if folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) & 0o077:
            findings.append(
                Finding(
                    "key files",
                    "warning",
                    f"{folder} is open to other users "
                    f"(mode {stat.S_IMODE(folder.stat().st_mode):o})",
                    f"chmod 700 {folder}",
                )
            )
    next_kek = root / "keys/kek.next.key"  # only while a KEK rotation is under way
    if os.path.lexists(next_kek):
        try:
            check_private_file(next_kek)
        except InsecureKeyFile as exc:
            findings.append(Finding("key files", "critical", exc.summary, f"chmod 600 {next_kek}"))
    if not findings:
        findings.append(Finding("key files", "ok", "private keys 0600, folders 0700, all yours"))
    return findings


def _encryption_keys(ws: Workspace) -> list[Finding]:
    try:
        warnings = key_warnings(kek_status(ws))
    except ModelpactError as exc:
        return [Finding("encryption keys", "warning", exc.summary, exc.hint)]
    return [Finding("encryption keys", "warning", problem, fix) for problem, fix in warnings]


def _tls(ws: Workspace, tls: bool, hosts: tuple[str, ...]) -> list[Finding]:
    if not tls:
        return [
            Finding(
                "TLS",
                "warning",
                "the gateway serves plain HTTP: session tokens travel in clear",
                "drop --plain-http",
            )
        ]
    paths = (ws.server_cert_path, ws.server_key_path, ws.ca_cert_path)
    if not all(p.is_file() for p in paths):
        return [
            Finding(
                "TLS",
                "warning",
                "no server certificate yet",
                "`modelpact serve` issues one from the workspace CA at start",
            )
        ]
    try:
        reason = server_cert_renewal_reason(
            ws.server_cert_path.read_bytes(),
            read_private_file(ws.server_key_path),
            ws.ca_cert_path.read_bytes(),
            hosts=hosts,
            now=ws.clock(),
        )
    except (ModelpactError, OSError) as exc:
        reason = str(exc)
    if reason is not None:
        return [
            Finding(
                "TLS",
                "warning",
                f"the server certificate needs renewing: {reason}",
                "`modelpact serve` issues a new one at start",
            )
        ]
    return [Finding("TLS", "ok", f"server certificate for {', '.join(hosts)} holds")]


def _pins(ws: Workspace, measured: Callable[[], Measurement]) -> list[Finding]:
    desk = CharterDesk(ws)
    charters: list[Charter] = [
        desk.trusted(record) for record in desk.all() if record.status == "active"
    ]
    pinned = [c for c in charters if c.attestation is not None]
    if not pinned:
        return [Finding("charter pins", "ok", "no active charter pins an attestation")]
    running = measured()
    registry = ModelRegistry(ws)
    findings = []
    fix = (
        "deploy the pinned code, or agree a new charter version pinning what runs "
        "(its values are in a current attestation document)"
    )
    for charter in pinned:
        pins = charter.attestation
        assert pins is not None
        for name, expected, found in (
            ("serving code", pins.code, running.code),
            ("dependency set", pins.dependencies, running.dependencies),
        ):
            if expected is not None and expected != found:
                findings.append(
                    Finding(
                        "charter pins",
                        "critical",
                        f"{charter.ref} pins the {name} at {expected}, but {found} runs: "
                        f"{charter.partner.id}'s SDK will refuse every session",
                        fix,
                    )
                )
        for model in sorted({ref.partition("@")[0] for ref in pins.models}):
            try:
                served = registry.served(model)
                digest = registry.get_version(model, served).digest
            except NotFound:
                continue  # not served: nothing to attest
            expected = pins.models.get(f"{model}@{served}")
            if expected != digest:
                shown = "is not pinned" if expected is None else f"is pinned at {expected}"
                findings.append(
                    Finding(
                        "charter pins",
                        "critical",
                        f"{model} serves {served} ({digest}), which {charter.ref} {shown}: "
                        f"{charter.partner.id}'s SDK will refuse every session",
                        f"roll {model} back to a pinned version, or agree a new charter version",
                    )
                )
    if not findings:
        findings.append(Finding("charter pins", "ok", "every active charter's pins hold"))
    return findings
