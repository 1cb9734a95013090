"""docs/charter.md stays true: its example is a clean charter and every field is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from modelpact.charter import RULES, Charter, check_charter

DOC = Path(__file__).resolve().parents[2] / "docs" / "charter.md"


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_full_example_is_clean() -> None:
    example = re.search(r"```yaml\n(.*?)```", _text(), re.DOTALL)
    assert example is not None
    report = check_charter(example.group(1), source="docs/charter.md")
    assert report.charter is not None
    assert [str(f) for f in report.findings] == []


def _fields(model: type[BaseModel]) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
        for arg in (*getattr(field.annotation, "__args__", ()), field.annotation):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _fields(arg)
            for inner in getattr(arg, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    names |= _fields(inner)
    return names


def test_every_field_and_rule_is_documented() -> None:
    text = _text()
    for name in sorted(_fields(Charter)):
        assert re.search(rf"`([a-z_]+\.)?{name}`", text), name
    for rule in RULES:
        assert f"`{rule.__name__}`" in text, rule.__name__
