"""Showing names that come from an artifact or an upload without trusting them.

Node names, tensor names, file names and external-data paths are chosen by
whoever wrote the file.  Before they reach an error message or a log they are
cut short and stripped of control characters, so a crafted name cannot forge
log lines, smuggle terminal escapes or flood a message.
"""

from __future__ import annotations

__all__ = ["quote_untrusted"]

_LIMIT = 80


def quote_untrusted(text: str, *, limit: int = _LIMIT) -> str:
    """``text`` in single quotes, non-printable characters escaped, cut at ``limit``."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[: limit + 1])
    if len(text) > limit:
        shown = shown[: limit - 1] + "…"
    return "'" + shown.replace("'", "\\'") + "'"
