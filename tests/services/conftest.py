"""Workspaces on both storage backends, with a clock the test controls."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelpact.services import Workspace, init_workspace

START = datetime(2026, 3, 1, 12, tzinfo=UTC)


@dataclass
class FixedClock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def workspace(tmp_path: Path, store_url: str, clock: FixedClock) -> Iterator[Workspace]:
    """A fresh workspace whose database is SQLite or PostgreSQL (see tests/conftest.py)."""
    with init_workspace(tmp_path / "ws", database_url=store_url, clock=clock) as ws:
        yield ws


@pytest.fixture(scope="session")
def onnx_bytes() -> bytes:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from modelpact.runtime import export_sklearn

    features, labels = load_breast_cancer(return_X_y=True)
    return export_sklearn(LogisticRegression(max_iter=5000).fit(features, labels))


def admin_actions(workspace: Workspace, subject: str) -> list[str]:
    """The administrative actions the audit log recorded for ``subject``, oldest first."""
    from modelpact.audit.entries import AdminEntry, decode_entry

    with workspace.store.unit_of_work() as uow:
        records = uow.audit.entries(0, uow.audit.size())
    entries = [decode_entry(r.entry) for r in records]
    return [e.action for e in entries if isinstance(e, AdminEntry) and e.subject == subject]
