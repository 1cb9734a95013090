"""A software measurement of the serving code: what attestation documents report.

Two digests, each ``sha256:<hex>`` of a sorted manifest:

- ``code``: every file of the installed ``modelpact`` package (bytecode caches
  aside), one line ``<sha256 hex>  <path relative to the package>`` each;
- ``dependencies``: every distribution ``modelpact`` needs to serve, found by
  walking its requirements (the ``server`` extra included) through
  ``importlib.metadata``, one line ``<name>==<version>  <sha256 of its RECORD>``
  each.  A RECORD lists every file the installer wrote with its hash, so a
  changed dependency set changes this digest; whether the files on disk still
  match their RECORD is what ``modelpact doctor`` checks.

This is a measurement made by the software it measures: it tells a partner
*which* code the owner's host says it runs, and catches an accidental or
careless change; it proves nothing against an owner who would lie about it.
Hardware attestation (SEV-SNP, TDX, Nitro) would sign such a measurement from
below the operating system; see ``docs/attestation.md``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from modelpact.crypto import sha256_hex

__all__ = [
    "Measurement",
    "installed_mismatches",
    "measure",
    "measure_code",
    "measure_dependencies",
]

_PACKAGE = Path(__file__).resolve().parent.parent  # the installed modelpact package
_SKIPPED_PARTS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})
_EXTRA = re.compile(r"""extra\s*==\s*["']([^"']+)["']""")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True, slots=True)
class Measurement:
    """What runs: the digests of the package's files and of its dependency set."""

    code: str
    dependencies: str
    files: int
    distributions: int
    python: str


def _digest(lines: list[str]) -> str:
    return "sha256:" + sha256_hex(("\n".join(sorted(lines)) + "\n").encode("utf-8"))


def measure_code(root: Path = _PACKAGE) -> tuple[str, int]:
    """``(digest, file count)`` of every file under ``root`` (bytecode caches aside)."""
    lines = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if (
            not path.is_file()
            or _SKIPPED_PARTS.intersection(relative.parts)
            or path.suffix in _SKIPPED_SUFFIXES
        ):
            continue
        lines.append(f"{sha256_hex(path.read_bytes())}  {relative.as_posix()}")
    return _digest(lines), len(lines)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(root: str, extras: frozenset[str]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``root`` (with ``extras``) needs, ``root`` included."""
    found: dict[str, metadata.Distribution] = {}
    pending: list[tuple[str, frozenset[str]]] = [(root, extras)]
    while pending:
        name, wanted = pending.pop()
        key = _normal(name)
        if key in found:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement not installed here: not part of what runs
        found[key] = distribution
        for requirement in distribution.requires or ():
            spec, _, marker = requirement.partition(";")
            extra = _EXTRA.search(marker)
            if extra is not None and extra.group(1) not in wanted:
                continue
            match = _NAME.match(spec)
            if match is not None:
                pending.append((match.group(1), frozenset()))
    return found


def measure_dependencies(
    root: str = "modelpact", extras: frozenset[str] = frozenset({"server"})
) -> tuple[str, int]:
    """``(digest, distribution count)`` of the installed dependency set of ``root``."""
    lines = []
    for key, distribution in sorted(_closure(root, extras).items()):
        if key == _normal(root):
            continue  # its own files are the code digest
        record = distribution.read_text("RECORD") or ""
        lines.append(f"{key}=={distribution.version}  {sha256_hex(record.encode('utf-8'))}")
    return _digest(lines), len(lines)


def measure(package: Path = _PACKAGE) -> Measurement:
    """The measurement of the code this process serves with (reads every package file)."""
    code, files = measure_code(package)
    dependencies, distributions = measure_dependencies()
    return Measurement(
        code=code,
        dependencies=dependencies,
        files=files,
        distributions=distributions,
        python=".".join(str(part) for part in sys.version_info[:3]),
    )


def installed_mismatches(
    root: str = "modelpact", extras: frozenset[str] = frozenset({"server"}), *, limit: int = 20
) -> list[str]:
    """Files of the dependency set that no longer match their distribution's RECORD.

    Each distribution's RECORD is the installer's list of the files it wrote with
    their hashes: a file changed or removed since is named (at most ``limit``),
    and so is a distribution without a RECORD (it cannot be checked).
    """
    problems: list[str] = []
    for key, distribution in sorted(_closure(root, extras).items()):
        if key == _normal(root):
            continue
        record = distribution.read_text("RECORD")
        if record is None:
            problems.append(f"{key}: no RECORD, its files cannot be checked")
            continue
        for row in csv.reader(io.StringIO(record)):
            if len(problems) >= limit:
                return problems
            if len(row) < 2 or "=" not in row[1]:
                continue  # RECORD itself, and files the installer did not hash
            algorithm, _, expected = row[1].partition("=")
            path = Path(str(distribution.locate_file(row[0])))
            try:
                digest = hashlib.new(algorithm, path.read_bytes()).digest()
            except (OSError, ValueError):
                problems.append(f"{key}: {row[0]} is missing or unreadable")
                continue
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii") != expected:
                problems.append(f"{key}: {row[0]} differs from what was installed")
    return problems
