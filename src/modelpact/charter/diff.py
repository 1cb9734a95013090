"""A readable diff between two charter versions, for the humans who re-sign them.

Every change is a new charter version signed again by both parties, so each
party must see what changed before signing.  The diff walks the two charter
documents (the signed form, so it shows exactly what the signatures cover) and
prints one line per change::

    ~ limits.daily_quota: 50000 -> 60000
    + grants[1]: {model: x, versions: 1.*, ...}
    - purposes[1]: research

Lists are aligned by content (``difflib``), so removing the first purpose shows
one ``-`` line rather than every later entry changing.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from modelpact.charter.findings import FieldPath, format_path
from modelpact.charter.model import Charter

__all__ = ["diff_charters", "diff_documents"]


def diff_charters(old: Charter, new: Charter) -> tuple[str, ...]:
    """Lines ``~ path: old -> new``, ``+ path: value``, ``- path: value``; ``()`` when equal."""
    return diff_documents(old.to_document(), new.to_document())


def diff_documents(old: Any, new: Any) -> tuple[str, ...]:
    """The same diff over two JSON documents (e.g. charters as stored)."""
    lines: list[str] = []
    _diff(old, new, (), lines)
    return tuple(lines)


def _diff(old: Any, new: Any, path: FieldPath, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in old:
            if key not in new:
                out.append(f"- {_where(path, key)}: {_render(old[key])}")
            else:
                _diff(old[key], new[key], (*path, key), out)
        for key in new:
            if key not in old:
                out.append(f"+ {_where(path, key)}: {_render(new[key])}")
    elif isinstance(old, list) and isinstance(new, list):
        _diff_lists(old, new, path, out)
    elif type(old) is not type(new) or old != new:
        out.append(f"~ {format_path(path)}: {_render(old)} -> {_render(new)}")


def _diff_lists(old: list[Any], new: list[Any], path: FieldPath, out: list[str]) -> None:
    keys_old = [_key(v) for v in old]
    keys_new = [_key(v) for v in new]
    matcher = difflib.SequenceMatcher(a=keys_old, b=keys_new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for offset in range(paired):
            # Same place, changed content: show what changed inside it.
            _diff(old[i1 + offset], new[j1 + offset], (*path, j1 + offset), out)
        for index in range(i1 + paired, i2):
            out.append(f"- {format_path((*path, index))}: {_render(old[index])}")
        for index in range(j1 + paired, j2):
            out.append(f"+ {format_path((*path, index))}: {_render(new[index])}")


def _render(value: Any) -> str:
    """A compact, YAML-like one-line form: ``{model: x, actions: [predict]}``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, str):
        return value if _plain(value) else json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def _plain(text: str) -> bool:
    """A string that reads unambiguously without quotes (not ``true``, ``3``, ``a, b``...)."""
    if not text or text != text.strip() or any(c in text for c in ",{}[]\n\"'"):
        return False
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


def _where(path: FieldPath, key: str) -> str:
    return format_path((*path, key))


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)
