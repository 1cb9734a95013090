"""SQLite specifics: the pragmas every connection runs, and databases that cannot be used."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from modelpact.errors import InvalidInput, StorageUnavailable
from modelpact.store import open_store
from modelpact.store.sql import create_store_engine


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def test_wal_mode_is_on_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "modelpact.db"
    open_store(url_of(path)).close()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_every_connection_runs_the_pragmas(tmp_path: Path) -> None:
    engine = create_store_engine(url_of(tmp_path / "modelpact.db"))
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
            assert pragma("PRAGMA busy_timeout").scalar() == 5000
    finally:
        engine.dispose()


def test_units_of_work_take_the_write_lock_at_begin(tmp_path: Path) -> None:
    path = tmp_path / "modelpact.db"
    store = open_store(url_of(path))
    try:
        with store.unit_of_work():
            raw = sqlite3.connect(path, timeout=0, isolation_level=None)
            try:
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    raw.execute("BEGIN IMMEDIATE")
            finally:
                raw.close()
    finally:
        store.close()


def assert_one_line_unavailable(url: str, *, mentions: str) -> None:
    with pytest.raises(StorageUnavailable) as raised:
        open_store(url)
    message = raised.value.diagnostics()
    assert "\n" not in message
    assert mentions in message
    assert str(raised.value).startswith("cannot use database sqlite")


def test_missing_directory_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "modelpact.db"
    assert_one_line_unavailable(url_of(path), mentions=str(path))
    assert not path.parent.exists()


def test_path_under_a_file_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert_one_line_unavailable(url_of(blocker / "modelpact.db"), mentions="a-file")


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "modelpact.db"
    path.write_bytes(b"this is not an SQLite database, not even close" * 100)
    assert_one_line_unavailable(url_of(path), mentions="not a database")


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_databases_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput, match="in-memory"):
        open_store(url)
