"""Alembic environment for the modelpact store.

modelpact runs migrations itself (:func:`modelpact.store.open_store`): it opens
a transaction, takes the migration lock and passes the connection in
``config.attributes["connection"]``; no ``alembic.ini`` is needed.

To write a new revision, point a throw-away Alembic config at a scratch
database with this directory as ``script_location`` and ``sqlalchemy.url`` set,
then run ``alembic revision --autogenerate -m "..."``: the engine is then made
by :func:`modelpact.store.sql.create_store_engine`, so it is configured exactly
as at run time.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from modelpact.store._schema import metadata

__all__: list[str] = []


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "the modelpact migrations need config.attributes['connection'] "
            "or the sqlalchemy.url option"
        )
    from modelpact.store.sql import create_store_engine, migration_lock

    engine = create_store_engine(url)
    try:
        with engine.begin() as own:
            migration_lock(own)
            _run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the modelpact migrations run online only")
_main()
