"""Numeric CSV files: reference rows for a training summary, data for the red team."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from modelpact.errors import InvalidInput, NotFound

__all__ = ["MAX_TABLE_ROWS", "read_rows_csv"]

MAX_TABLE_ROWS = 1_000_000


def read_rows_csv(path: Path, *, drop: tuple[str, ...] = ("label",)) -> list[list[float]]:
    """The rows of a CSV of numbers; a first line that is not numbers is a header.

    Columns the header names in ``drop`` (a label column, by default) are left out.
    Raises :class:`InvalidInput` naming the first bad line (never a value).
    """
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise NotFound(f"{path} does not exist") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    rows: list[list[float]] = []
    keep: list[int] | None = None
    with handle:
        try:
            for number, line in enumerate(csv.reader(handle), start=1):
                if not line:
                    continue
                if number == 1 and not _numeric(line[0]):
                    keep = [i for i, name in enumerate(line) if name.strip() not in drop]
                    continue
                cells = line if keep is None else [line[i] for i in keep if i < len(line)]
                try:
                    row = [float(cell) for cell in cells]
                except ValueError:
                    raise InvalidInput(
                        f"{path} line {number} holds a value that is not a number"
                    ) from None
                if not all(math.isfinite(v) for v in row):
                    raise InvalidInput(f"{path} line {number} holds NaN or an infinite value")
                if rows and len(row) != len(rows[0]):
                    raise InvalidInput(
                        f"{path} line {number} has {len(row)} values; earlier lines have "
                        f"{len(rows[0])}"
                    )
                rows.append(row)
                if len(rows) > MAX_TABLE_ROWS:
                    raise InvalidInput(f"{path} has more than {MAX_TABLE_ROWS} rows")
        except (UnicodeDecodeError, csv.Error):
            raise InvalidInput(f"{path} is not a UTF-8 CSV file") from None
    if not rows or not rows[0]:
        raise InvalidInput(f"{path} holds no rows")
    return rows


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
