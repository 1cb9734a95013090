"""Numeric CSV files: headers, label columns, and one clear line for each fault."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelpact.errors import InvalidInput, NotFound
from modelpact.runtime.tables import read_rows_csv


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_header_is_skipped_and_the_label_column_left_out(tmp_path: Path) -> None:
    path = write(tmp_path, "a,label,b\n1,0,2.5\n3,1,-4e2\n\n")
    assert read_rows_csv(path) == [[1.0, 2.5], [3.0, -400.0]]
    assert read_rows_csv(write(tmp_path, "1,2\n3,4\n")) == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1,2\n3,x\n", "line 2 holds a value that is not a number"),
        ("1,2\n3,nan\n", "line 2 holds NaN"),
        ("1,2\n3\n", "line 2 has 1 values"),
        ("a,b\n", "holds no rows"),
        ("", "holds no rows"),
    ],
)
def test_faults_are_one_line_without_values(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        read_rows_csv(write(tmp_path, text))


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        read_rows_csv(tmp_path / "nope.csv")
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(InvalidInput, match="UTF-8"):
        read_rows_csv(binary)
