"""Fixtures shared by the whole test suite.

Storage (imported lazily, so tests that need no server dependencies still run
on a partner-only install):

``store_url``
    The URL of a fresh, empty database, once per backend:

    - ``sqlite``: a new file in ``tmp_path``;
    - ``postgres`` (marked ``postgres``): a schema with a random name, created
      for the test in the database at ``MODELPACT_TEST_POSTGRES_URL`` (for
      example ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) and
      dropped afterwards.  The URL selects it with
      ``?options=-csearch_path%3D<schema>``, so ``open_store(store_url)`` needs
      nothing else.

    Without ``MODELPACT_TEST_POSTGRES_URL``, or when that server cannot be
    reached, the ``postgres`` case is skipped, except under ``CI=true`` where it
    fails: CI must test both backends.  Run SQLite only with ``-m "not postgres"``.

``store``
    An opened (migrated) :class:`modelpact.store.SqlStore` on ``store_url``,
    closed after the test.

``artifact_store``
    A :class:`modelpact.store.LocalArtifactStore` rooted in ``tmp_path``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelpact.store import LocalArtifactStore, SqlStore

POSTGRES_URL_VARIABLE = "MODELPACT_TEST_POSTGRES_URL"


def _postgres_unavailable(reason: str) -> None:
    """Skip the test, or fail it under CI, where both backends must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true requires PostgreSQL)", pytrace=False)
    pytest.skip(reason)


def _unreachable_reason(url: str) -> str | None:
    """Why the PostgreSQL server at ``url`` cannot be used, or ``None`` if it can."""
    from modelpact.errors import ModelpactError
    from modelpact.store.sql import create_store_engine, redacted_url

    try:
        engine = create_store_engine(url)
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        finally:
            engine.dispose()
    except ModelpactError as error:
        return f"{redacted_url(url)} is unusable: {error.diagnostics()}"
    except Exception as error:
        cause = " ".join(str(getattr(error, "orig", None) or error).split())
        return f"PostgreSQL at {redacted_url(url)} is unreachable: {cause}"
    return None


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The reachable PostgreSQL server URL from ``MODELPACT_TEST_POSTGRES_URL`` (or skip)."""
    url = os.environ.get(POSTGRES_URL_VARIABLE, "")
    if not url:
        _postgres_unavailable(f"{POSTGRES_URL_VARIABLE} is not set")
    reason = _unreachable_reason(url)
    if reason is not None:
        _postgres_unavailable(reason)
    return url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """``postgres_url`` narrowed to a fresh schema of its own, dropped after the test."""
    import sqlalchemy as sa

    from modelpact.store.sql import create_store_engine

    schema = f"mp_test_{secrets.token_hex(6)}"
    admin = create_store_engine(postgres_url)
    try:
        with admin.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = sa.make_url(postgres_url)
        existing = url.query.get("options", "")
        if not isinstance(existing, str):
            raise TypeError(f"give ?options= at most once in {POSTGRES_URL_VARIABLE}")
        options = f"{existing} -csearch_path={schema}".strip()
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        try:
            with admin.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            admin.dispose()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for a fresh, empty database; the test runs once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'modelpact.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """An opened, migrated store on ``store_url``; closed after the test."""
    from modelpact.store import open_store

    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def artifact_store(tmp_path: Path) -> LocalArtifactStore:
    """A local artifact store in a directory of the test's own."""
    from modelpact.store import LocalArtifactStore

    return LocalArtifactStore(tmp_path / "artifacts")
