"""What ``charter check`` reports: findings that point at a line of the charter.

Schema errors and lint rules both speak in *field paths* (``("grants", 0,
"output")``); a :class:`LineMap` built from the YAML turns a path into the line a
human edits, falling back to the nearest ancestor when the field itself is not
written (a missing field points at its parent).  Everything here is plain data,
so the CLI, the API and tests print findings the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from modelpact.charter.model import Charter

__all__ = [
    "CharterReport",
    "FieldPath",
    "Finding",
    "LineMap",
    "Severity",
    "format_path",
]

Severity = Literal["error", "warning"]

#: A field's place in the charter document: mapping keys (by alias) and list indices.
FieldPath = tuple[str | int, ...]


def format_path(path: FieldPath) -> str:
    """``("grants", 0, "output")`` -> ``grants[0].output``; the root is ``""``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (``error``) or risk (``warning``) found in a charter.

    ``str(finding)`` is the compiler-style line ``source:LINE: error: path: message``;
    the line is left out when the problem concerns the document as a whole.
    """

    severity: Severity
    line: int | None
    path: str
    message: str
    source: str = "<charter>"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        what = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {self.severity}: {what}"


class LineMap:
    """1-based line of each field path written in a charter's YAML."""

    __slots__ = ("_lines",)

    def __init__(self, lines: Mapping[FieldPath, int] | None = None) -> None:
        self._lines = dict(lines or {})

    def line_of(self, path: FieldPath) -> int | None:
        """The line of ``path``, or of its nearest written ancestor; ``None`` at the root."""
        for end in range(len(path), 0, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None

    def __len__(self) -> int:
        return len(self._lines)


@dataclass(frozen=True, slots=True)
class CharterReport:
    """The outcome of checking a charter: the charter if its schema holds, and every finding."""

    charter: Charter | None
    findings: tuple[Finding, ...]
    source: str = "<charter>"

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        """True when the charter parsed and no finding is an error (warnings allowed)."""
        return self.charter is not None and not self.has_errors

    def with_error(self, message: str, *, path: str = "", line: int | None = None) -> CharterReport:
        """This report plus one error found by a later stage (e.g. policy compilation)."""
        extra = Finding("error", line, path, message, self.source)
        return CharterReport(self.charter, (*self.findings, extra), self.source)
