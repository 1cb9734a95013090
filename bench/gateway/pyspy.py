"""Where a server spends its time under load: py-spy samples of its process, summarised.

``py-spy record --format raw`` writes one line per distinct stack, ``frame;frame;... count``,
root first, each frame ``function (file:line)``.  :func:`summarise` sets aside samples of
threads that were only waiting (an idle worker thread, the event loop in ``select``: py-spy
does not always tell them from busy ones without pausing the process) and ranks the rest by
*self* samples (the frame was on top of the stack), by *total* samples (anywhere in the
stack, once per sample), and by *step*: the first two modelpact frames of the stack, which
name the stage of the gateway's pipeline a sample belongs to.  Lines are merged into
functions.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Summary", "record", "summarise"]

_LINE = re.compile(r":\d+\)$")
_WAITING = frozenset(
    {
        "Condition.wait (threading.py)",
        "Event.wait (threading.py)",
        "EpollSelector.select (selectors.py)",
        "Queue.get (queue.py)",
    }
)


def executable() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.is_file() else shutil.which("py-spy")


def record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` for ``seconds`` (non-blocking: the server is never paused)."""
    spy = executable()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            "200",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _function(frame: str) -> str:
    """``name (path/to/file.py:123)`` → ``name (to/file.py)``."""
    name, _, where = frame.partition(" (")
    where = _LINE.sub(")", "(" + where) if where else ""
    short = "/".join(where.strip("()").split("/")[-2:])
    return f"{name} ({short})" if short else name


@dataclass(frozen=True, slots=True)
class Summary:
    samples: int
    waiting: int
    by_self: list[tuple[str, int]]
    by_total: list[tuple[str, int]]
    by_step: list[tuple[str, int]]


def summarise(raw: Path, n: int = 10) -> Summary:
    """The top ``n`` functions by self and total samples and the top ``n`` pipeline steps."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    step: Counter[str] = Counter()
    samples = waiting = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f.strip()]
        if not frames:
            continue
        samples += count
        functions = [_function(f) for f in frames]
        if functions[-1] in _WAITING:
            waiting += count
            continue
        own[functions[-1]] += count
        for function in set(functions):
            total[function] += count
        ours = [f.split(" (")[0] for f in frames if "modelpact/" in f]
        step[" > ".join(ours[:2]) if ours else f"(outside modelpact) {functions[-1]}"] += count
    return Summary(samples, waiting, own.most_common(n), total.most_common(n), step.most_common(n))
