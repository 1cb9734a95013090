"""Which URLs open_store accepts, and what it says when it cannot connect."""

from __future__ import annotations

import pytest

from modelpact.errors import InvalidInput, StorageUnavailable
from modelpact.store import open_store, redacted_url
from modelpact.store.sql import create_store_engine


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "",
        "mysql://user@localhost/db",
        "postgresql+psycopg2://user@localhost/db",
        "postgresql+asyncpg://user@localhost/db",
        "sqlite+aiosqlite:///x.db",
    ],
)
def test_unsupported_urls_are_invalid_input(url: str) -> None:
    with pytest.raises(InvalidInput):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@h/db",
        "postgres://u@h/db",
        "postgresql+psycopg://u@h/db",
    ],
)
def test_postgres_urls_use_psycopg_3(url: str) -> None:
    engine = create_store_engine(url)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_unreachable_postgres_is_unavailable_without_the_password() -> None:
    url = "postgresql+psycopg://owner:s3cret-pw@127.0.0.1:1/modelpact?connect_timeout=2"
    with pytest.raises(StorageUnavailable) as raised:
        open_store(url)
    message = raised.value.diagnostics()
    assert "s3cret-pw" not in message
    assert "owner:***@127.0.0.1:1/modelpact" in message
    assert "\n" not in message


def test_redacted_url_hides_the_password() -> None:
    assert redacted_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    assert redacted_url("::") == "<unparseable database URL>"
