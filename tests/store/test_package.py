"""The package's public surface, its records, and what it may not import."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest

import modelpact.store
from modelpact.errors import InvalidInput
from modelpact.store import (
    ArtifactStore,
    AuditEntryRecord,
    ChallengeRecord,
    CharterRecord,
    CheckpointRecord,
    LocalArtifactStore,
    ModelVersionRecord,
    PartnerRecord,
    SessionRecord,
    SqlStore,
    Store,
    UnitOfWork,
    UsageRecord,
    UsageTotal,
)
from modelpact.store.sql import SqlUnitOfWork

MODULES = [
    "modelpact.store",
    "modelpact.store._schema",
    "modelpact.store._sql_appender",
    "modelpact.store._sql_audit",
    "modelpact.store._sql_errors",
    "modelpact.store._sql_monitor",
    "modelpact.store._sql_privacy",
    "modelpact.store._sql_repositories",
    "modelpact.store._sql_session",
    "modelpact.store._sql_sessions",
    "modelpact.store._sql_state",
    "modelpact.store._sql_usage",
    "modelpact.store._sql_watermarks",
    "modelpact.store.files",
    "modelpact.store.interfaces",
    "modelpact.store.records",
    "modelpact.store.sql",
]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_public_api() -> None:
    assert modelpact.store.__all__ == [
        "CHARTER_STATUSES",
        "PARTNER_STATUSES",
        "ArtifactStore",
        "AuditAppender",
        "AuditEntryRecord",
        "AuditNodeReader",
        "AuditRepository",
        "ChallengeRecord",
        "CharterRecord",
        "CharterRepository",
        "CheckpointRecord",
        "LocalArtifactStore",
        "MarkRecord",
        "ModelRecord",
        "ModelRepository",
        "ModelVersionRecord",
        "MonitorRepository",
        "MonitorStateRecord",
        "PartnerRecord",
        "PartnerRepository",
        "PrivacyRepository",
        "ProtectionRecord",
        "SessionRecord",
        "SessionRepository",
        "SqlStore",
        "StateRepository",
        "Store",
        "UnitOfWork",
        "UsageRecord",
        "UsageRepository",
        "UsageTotal",
        "WatermarkRepository",
        "check_artifact_key",
        "open_store",
        "redacted_url",
    ]
    for name in modelpact.store.__all__:
        assert hasattr(modelpact.store, name), name


@pytest.mark.parametrize("name", MODULES)
def test_every_module_has_a_docstring_and_all(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.{exported}"


def test_the_store_knows_nothing_of_the_domain() -> None:
    forbidden = ["charter", "policy", "runtime", "services", "cli", "api"]
    code = (
        "import sys, modelpact.store, modelpact.store.sql, modelpact.store.files\n"
        f"bad = [m for m in sys.modules if m.split('.')[:2] in "
        f"[['modelpact', f] for f in {forbidden!r}]]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_records_refuse_unknown_statuses() -> None:
    with pytest.raises(InvalidInput, match="partner status"):
        PartnerRecord("acme", "ACME", "ed25519:k", "deleted", NOW, NOW)
    with pytest.raises(InvalidInput, match="charter status"):
        CharterRecord("c", 1, "acme", "{}", "sha256:x", "draft", NOW)


def test_records_refuse_negative_sizes() -> None:
    with pytest.raises(InvalidInput):
        ModelVersionRecord("m", "1", "d", -1, "k", b"", b"", "{}", NOW)


HASH = b"\x01" * 32


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: AuditEntryRecord(-1, HASH, b"{}", NOW), "non-negative"),
        (lambda: AuditEntryRecord(True, HASH, b"{}", NOW), "non-negative"),
        (lambda: AuditEntryRecord(0, HASH[:31], b"{}", NOW), "32 bytes"),
        (lambda: AuditEntryRecord(0, bytearray(HASH), b"{}", NOW), "32 bytes"),  # type: ignore[arg-type]
        (lambda: AuditEntryRecord(0, HASH, "{}", NOW), "must be bytes"),  # type: ignore[arg-type]
        (lambda: AuditEntryRecord(0, HASH, b"{}", datetime(2026, 1, 1)), "timezone-aware"),
        (lambda: CheckpointRecord(-1, HASH, "note", NOW), "non-negative"),
        (lambda: CheckpointRecord(0, HASH + b"\x00", "note", NOW), "32 bytes"),
        (lambda: CheckpointRecord(0, HASH, "note", datetime(2026, 1, 1)), "timezone-aware"),
    ],
)
def test_audit_records_refuse_malformed_values(make: Callable[[], object], match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        make()


DAY = date(2026, 1, 1)
LATER = NOW + timedelta(minutes=15)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ChallengeRecord("", "acme", NOW, LATER), "nonce"),
        (lambda: ChallengeRecord("n", "", NOW, LATER), "partner_id"),
        (lambda: ChallengeRecord("n", "acme", NOW, NOW), "expire after"),
        (lambda: ChallengeRecord("n", "acme", datetime(2026, 1, 1), LATER), "timezone-aware"),
        (lambda: ChallengeRecord("n", "acme", NOW, LATER, datetime(2026, 1, 1)), "used_at"),
        (lambda: SessionRecord(HASH[:31], "acme", "c", 1, "p", NOW, LATER), "32 bytes"),
        (lambda: SessionRecord(HASH, "acme", "c", 0, "p", NOW, LATER), "at least 1"),
        (lambda: SessionRecord(HASH, "acme", "c", True, "p", NOW, LATER), "at least 1"),
        (lambda: SessionRecord(HASH, "acme", "c", 1, "", NOW, LATER), "purpose"),
        (lambda: SessionRecord(HASH, "acme", "c", 1, "p", LATER, NOW), "expire after"),
        (lambda: SessionRecord(HASH, "acme", "c", 1, "p", NOW, LATER, DAY), "revoked_at"),  # type: ignore[arg-type]
        (lambda: UsageRecord("acme", "c", NOW, 0, 0), "must be a date"),
        (lambda: UsageRecord("acme", "c", DAY, -1, 0), "rows"),
        (lambda: UsageRecord("acme", "c", DAY, 0, -1), "requests"),
        (lambda: UsageTotal("acme", "c", 0, 0, DAY, NOW), "last_day"),
    ],
)
def test_session_and_usage_records_refuse_malformed_values(
    make: Callable[[], object], match: str
) -> None:
    with pytest.raises(InvalidInput, match=match):
        make()


def test_records_are_frozen() -> None:
    record = PartnerRecord("acme", "ACME", "ed25519:k", "active", NOW, NOW)
    with pytest.raises(AttributeError):
        record.status = "revoked"  # type: ignore[misc]


def test_implementations_satisfy_the_protocols() -> None:
    # Checked by mypy --strict on the tests: assigning a class to the protocol type.
    store_type: type[Store] = SqlStore
    artifact_type: type[ArtifactStore] = LocalArtifactStore
    work_type: type[UnitOfWork] = SqlUnitOfWork
    assert work_type is SqlUnitOfWork
    assert store_type is SqlStore
    assert artifact_type is LocalArtifactStore
