"""The SQL store: :func:`open_store` and :class:`SqlStore`, over SQLite or PostgreSQL.

Supported URLs:

- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` — the
  embedded default.  Every connection runs ``PRAGMA busy_timeout=5000``,
  ``journal_mode=WAL``, ``foreign_keys=ON`` and ``synchronous=FULL``, and every
  unit of work starts with ``BEGIN IMMEDIATE``: one writer at a time, so a
  read-then-write never fails half-way with "database is locked".  In-memory
  databases are refused (each connection would see a different one).
- ``postgresql+psycopg://user:password@host:5432/dbname`` (``postgresql://``
  and ``postgres://`` mean the same) — psycopg 3.  To keep the tables in a
  schema of your own, pass libpq options in the URL:
  ``...?options=-csearch_path%3Dmyschema`` (the schema must exist).  Keeping
  the whole configuration in one URL means a workspace, a CLI flag or a test
  fixture can carry it as a single string.  ``connect_timeout`` defaults to 10
  seconds unless the URL sets it.

:func:`open_store` migrates the schema to the newest revision, holding a lock
so that replicas starting together do not migrate twice.

Database failures become :mod:`modelpact.errors` types: a unique violation
:class:`~modelpact.errors.AlreadyExists`, a missing referenced row
:class:`~modelpact.errors.NotFound`, anything that stops the database from
being used (cannot connect, locked, disk full, schema missing)
:class:`~modelpact.errors.StorageUnavailable`, whose one-line message names the
database with its password hidden.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError
from sqlalchemy.engine import URL, Connection, Engine

from modelpact.errors import InvalidInput, StorageUnavailable
from modelpact.store._sql_appender import SqlAuditAppender
from modelpact.store._sql_errors import DatabaseErrors, one_line
from modelpact.store._sql_repositories import SqlUnitOfWork
from modelpact.store._sql_session import Session

__all__ = [
    "SqlStore",
    "SqlUnitOfWork",
    "create_store_engine",
    "migration_lock",
    "open_store",
    "redacted_url",
]

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
POSTGRES_CONNECT_TIMEOUT_S = 10

# --- URLs and engines -------------------------------------------------------------------


def _parse_url(url: str | URL) -> URL:
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise InvalidInput(
            "the database setting is not a URL",
            hint="write sqlite:///path/to/modelpact.db or postgresql+psycopg://user@host/db",
        ) from None
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        if parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory":
            raise InvalidInput(
                "an in-memory SQLite database cannot hold a modelpact store",
                hint="give a file path: sqlite:///path/to/modelpact.db",
            )
        return parsed
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return parsed.set(drivername="postgresql+psycopg")
    raise InvalidInput(
        f"unsupported database {parsed.drivername!r}",
        hint="use sqlite:///path or postgresql+psycopg://user@host/db",
    )


def redacted_url(url: str | URL) -> str:
    """The URL as it may be shown to a human: password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparseable database URL>"


SQLITE_POOL_SIZE = 40
"""Pooled SQLite connections kept open (anyio's default worker-thread limit)."""


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module; _sqlite_on_begin emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A read-only unit of work reads a WAL snapshot and never waits for the writer.
    # query_only makes a write in it fail, as READ ONLY does on PostgreSQL.
    read_only = connection.info.get(_READ_ONLY, False)
    connection.exec_driver_sql(f"PRAGMA query_only = {int(read_only)}")
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_READ_ONLY = "modelpact.read_only"
_COUNTER = "SELECT counter FROM state_changes WHERE id = 1"


def create_store_engine(url: str | URL) -> Engine:
    """An Engine configured as the store needs it (see the module docstring); no I/O yet.

    Raises :class:`InvalidInput` for a URL that is not a supported database.
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Connections to a file cost nothing to keep; the gateway's worker threads (40 by
        # default in anyio) should find one ready rather than open and close overflow
        # connections, each re-running the pragmas above.
        engine = sa.create_engine(parsed, pool_size=SQLITE_POOL_SIZE, max_overflow=8)
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return sa.create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def migration_lock(connection: Connection) -> None:
    """Hold the migration lock until ``connection``'s transaction ends.

    PostgreSQL: a transaction-level advisory lock keyed by the current schema.
    SQLite: the transaction's ``BEGIN IMMEDIATE`` already excludes other writers.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(hashtext('modelpact.store:' || current_schema()))"
            )
        )


class SqlStore:
    """:class:`~modelpact.store.interfaces.Store` over one SQLAlchemy Engine.

    Thread-safe: each unit of work takes its own connection from the pool.
    Build it with :func:`open_store`, which also migrates the schema.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._database = DatabaseErrors(engine.url)
        self._closed = False
        self._counter_lock = threading.Lock()
        self._counter_connection: Any = None  # a DBAPI connection kept for state_counter()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._database.backend

    def __repr__(self) -> str:
        return f"SqlStore({self._database.shown!r})"

    def migrate(self) -> None:
        """Bring the schema to the newest revision; a no-op when it is there already."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
        try:
            with self._database.errors(), self._engine.begin() as connection:
                migration_lock(connection)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as error:
            raise StorageUnavailable(
                f"cannot migrate database {self._database.shown}: {one_line(error)}",
                hint="the database may have been migrated by a newer modelpact; upgrade this one",
            ) from None

    @contextlib.contextmanager
    def unit_of_work(self, *, read_only: bool = False) -> Iterator[SqlUnitOfWork]:
        """One transaction: commit when the block ends normally, roll back if it raises.

        ``read_only``: a snapshot for reads that must not queue behind writers (the
        gateway's per-request checks).  SQLite begins a deferred transaction instead
        of taking the write lock, under ``PRAGMA query_only``; PostgreSQL runs ``SET
        TRANSACTION READ ONLY``.  Either way a write in it fails (StorageUnavailable).
        """
        if self._closed:
            raise StorageUnavailable(f"the store {self._database.shown} has been closed")
        with self._database.errors():
            connection = self._engine.connect()
        try:
            connection.info[_READ_ONLY] = read_only
            with self._database.errors():
                transaction = connection.begin()
                if read_only and self._engine.dialect.name != "sqlite":
                    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            session = Session(connection, self._database)
            work = SqlUnitOfWork(session)
            try:
                yield work
            except BaseException:
                session.end()
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    transaction.rollback()
                raise
            session.end()
            with self._database.errors():
                transaction.commit()
        finally:
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                connection.close()

    @property
    def embedded(self) -> bool:
        """True for SQLite: a read is a local call that never waits on a network."""
        return self.backend == "sqlite"

    def state_counter(self) -> int:
        """The change counter (:meth:`StateRepository.counter`), read outside any unit of work.

        One statement on a connection kept for it, in the database's autocommit
        mode: it sees every write committed before it started.  On SQLite it never
        waits for a lock (a busy database raises :class:`StorageUnavailable` at once),
        so a caller on an event loop may make it inline and fall back to a unit of
        work in a thread when it fails.
        """
        if self._closed:
            raise StorageUnavailable(f"the store {self._database.shown} has been closed")
        dbapi = self._engine.dialect.loaded_dbapi
        with self._counter_lock:
            try:
                connection = self._counter_connection
                if connection is None:
                    connection = self._engine.raw_connection()
                    if self.embedded:
                        # Pooled SQLite connections run no transaction between units of
                        # work (isolation_level None), so this SELECT is its own snapshot.
                        setup = connection.cursor()
                        setup.execute("PRAGMA busy_timeout = 0")
                        setup.close()
                    self._counter_connection = connection
                cursor = connection.cursor()
                try:
                    cursor.execute(_COUNTER)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
                if not self.embedded:
                    connection.rollback()  # end the transaction the driver began
            except (dbapi.Error, sa.exc.SQLAlchemyError, OSError) as error:
                self._drop_counter_connection()
                raise self._database.unavailable(error) from None
        if row is None:
            raise StorageUnavailable(
                "the database has no state_changes row",
                hint="the database was changed outside modelpact; restore it from a backup",
            )
        value: int = row[0]
        return value

    def _drop_counter_connection(self) -> None:
        connection, self._counter_connection = self._counter_connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.invalidate()

    def audit_appender(self) -> SqlAuditAppender:
        """A dedicated connection for the audit log's group-commit writer (see its module)."""
        if self._closed:
            raise StorageUnavailable(f"the store {self._database.shown} has been closed")
        return SqlAuditAppender(self._engine, self._database.shown)

    def close(self) -> None:
        """Release every pooled connection; further units of work are refused."""
        self._closed = True
        with self._counter_lock:
            self._drop_counter_connection()
        self._engine.dispose()


def open_store(url: str) -> SqlStore:
    """Open the store at ``url`` (see the module docstring) and migrate it to the newest schema.

    Raises :class:`InvalidInput` for an unsupported URL and
    :class:`StorageUnavailable` when the database cannot be reached or migrated.
    """
    store = SqlStore(create_store_engine(url))
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store
