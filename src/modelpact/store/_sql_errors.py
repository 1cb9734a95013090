"""How database failures become modelpact errors.

A unique violation is :class:`~modelpact.errors.AlreadyExists`, a missing
referenced row :class:`~modelpact.errors.NotFound`, a refused value
:class:`~modelpact.errors.InvalidInput`; anything else that stops the database
from being used is :class:`~modelpact.errors.StorageUnavailable`, whose one-line
message names the database with its password hidden.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import URL

from modelpact.errors import (
    AlreadyExists,
    InvalidInput,
    ModelpactError,
    NotFound,
    StorageUnavailable,
)

__all__ = ["DatabaseErrors", "one_line", "violation"]

_SQLITE_VIOLATIONS = {
    "SQLITE_CONSTRAINT_UNIQUE": "unique",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "unique",
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
    "SQLITE_CONSTRAINT_CHECK": "check",
    "SQLITE_CONSTRAINT_NOTNULL": "not_null",
}
_POSTGRES_VIOLATIONS = {
    "23505": "unique",
    "23503": "foreign_key",
    "23514": "check",
    "23502": "not_null",
}


def one_line(error: object) -> str:
    """The error's text on one line (drivers like to add newlines and tabs)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__


def violation(error: sa.exc.IntegrityError) -> str:
    """Which constraint an IntegrityError broke: unique, foreign_key, check, not_null, other."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    if isinstance(sqlstate, str):
        return _POSTGRES_VIOLATIONS.get(sqlstate, "other")
    name = getattr(error.orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return _SQLITE_VIOLATIONS.get(name, "other")
    return "other"


class DatabaseErrors:
    """Turns driver failures into modelpact errors that name this database."""

    def __init__(self, url: URL) -> None:
        self.shown = url.render_as_string(hide_password=True)
        self.backend = url.get_backend_name()

    def unavailable(self, error: BaseException) -> StorageUnavailable:
        cause = getattr(error, "orig", None) or error
        if self.backend == "sqlite":
            hint = "check that the directory exists and is writable and the disk has space"
        else:
            hint = (
                "check that the server is up and reachable, and that the URL's user, "
                "database and schema (search_path) exist"
            )
        return StorageUnavailable(f"cannot use database {self.shown}: {one_line(cause)}", hint=hint)

    def translate(self, error: BaseException) -> ModelpactError:
        if isinstance(error, ModelpactError):
            return error
        if isinstance(error, sa.exc.IntegrityError):
            kind = violation(error)
            if kind == "unique":
                return AlreadyExists("a record with the same key already exists")
            if kind == "foreign_key":
                return NotFound("a record this one refers to does not exist")
            return InvalidInput(f"the database refused a value: {one_line(error.orig)}")
        if isinstance(error, sa.exc.DataError):
            return InvalidInput(f"the database refused a value: {one_line(error.orig)}")
        return self.unavailable(error)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Re-raise any database failure inside the block as a modelpact error."""
        try:
            yield
        except (sa.exc.SQLAlchemyError, OSError) as error:
            raise self.translate(error) from None
