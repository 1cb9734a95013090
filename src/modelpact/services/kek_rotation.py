"""Rotating the workspace's key-encryption key, and what the keys' counters say.

:func:`rotate_kek` runs in three steps, each safe to interrupt at any point, all under an
exclusive ``flock`` on ``keys/kek-rotation.lock`` (a second run at the same time fails at
once: "another KEK rotation is running"):

1. *Begin.*  Unless ``keys/kek.next.key`` exists (a rotation interrupted before), a new
   KEK is written there, whole at once (a flushed 0600 temporary file hard-linked to the
   name, the folder flushed).  From then on every process wraps under it
   (:class:`~modelpact.services.kek.WorkspaceKek` looks at the files before each wrap)
   and unwraps with either key.
2. *Re-wrap.*  First the rotation waits for the writers: it takes the KEK lock
   (``keys/kek.lock``) exclusive for a moment (:meth:`WorkspaceKek.await_writers`).  Every
   writer holds that lock shared from before its wrap until what it wrapped is durable
   (:meth:`WorkspaceKek.wrapping`), so once the rotation has had it, every item wrapped
   under the old KEK is stored where the passes below find it, and every writer after
   wraps under the new KEK: no timing assumption is left.  Then every KEK-wrapped data
   key — model versions, partners' data keys (every generation), watermark keys, monitor
   states saved before partner keys — is unwrapped and wrapped again under the new KEK,
   each item one atomic compare-and-set (a database row update, an artifact blob
   replace); the sealed bytes are never touched.  An item that opens under the new KEK
   already is skipped, so a second run after a kill redoes nothing.  Passes repeat until
   one finds nothing left to do: that last pass is the check that every item opens under
   the new KEK.
3. *Finish.*  An audit entry (key ids and counts, never key bytes) is appended, then the
   new key file replaces ``keys/kek.key`` (``os.replace``, folder flushed): the old KEK is
   gone.  The entry comes first, so a crash between the two leaves a log that says more,
   never less; running again finishes the replace (and logs again).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from modelpact.crypto import KeyEncryptionKey
from modelpact.errors import AlreadyExists, StorageUnavailable
from modelpact.services.events import record_event
from modelpact.services.kek import (
    KEK_FILE,
    NEXT_KEK_FILE,
    RewrapTally,
    Tick,
    file_lock,
    kek_counter,
    uncounted_start,
)
from modelpact.services.key_budget import USAGE_PREFIX
from modelpact.services.monitoring import rewrap_legacy_states
from modelpact.services.partner_keys import PartnerDataKeys
from modelpact.services.registry import rewrap_model_keys
from modelpact.services.watermarking import rewrap_watermark_keys
from modelpact.services.workspace import Workspace

__all__ = [
    "PACE_VARIABLE",
    "ROTATION_LOCK_FILE",
    "KekStatus",
    "KeyUse",
    "RotationReport",
    "kek_status",
    "key_warnings",
    "rotate_kek",
]

#: Internal, for tests only: seconds to sleep after each item, so that a test can kill a
#: real ``modelpact keys rotate-kek`` process halfway.  Never set it in production.
PACE_VARIABLE = "MODELPACT_KEK_ROTATION_PACE"
_MAX_PASSES = 5
#: Held exclusive by a rotation from start to end: one rotation at a time.
ROTATION_LOCK_FILE = "keys/kek-rotation.lock"

_KINDS: tuple[tuple[str, Callable[[Workspace, Tick], RewrapTally]], ...] = (
    ("model_versions", rewrap_model_keys),
    ("partner_keys", lambda ws, tick: PartnerDataKeys(ws).rewrap_all(tick)),
    ("watermark_keys", rewrap_watermark_keys),
    ("monitor_states", rewrap_legacy_states),
)


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What :func:`rotate_kek` did, summed over its passes."""

    previous: str  # the old KEK's id ("none" if only the new one was left)
    current: str  # the new KEK's id
    resumed: bool  # an interrupted rotation was taken up again
    passes: int
    tallies: dict[str, RewrapTally] = field(default_factory=dict)

    @property
    def rewrapped(self) -> int:
        return sum(t.rewrapped for t in self.tallies.values())

    @property
    def already(self) -> int:
        """Items found under the new KEK on the first pass (done before an interruption, or
        wrapped there since the rotation began)."""
        return sum(t.already for t in self.tallies.values())


def rotate_kek(
    ws: Workspace,
    *,
    tick: Tick | None = None,
    actor: str = "owner",
    writers_timeout: float | None = None,
) -> RotationReport:
    """Begin (or resume) a KEK rotation and carry it to its end (see the module's text).

    ``writers_timeout``: how long to wait for writers inside
    :meth:`~modelpact.services.kek.WorkspaceKek.wrapping` (default
    :data:`~modelpact.services.kek.LOCK_TIMEOUT`).  Raises
    :class:`~modelpact.errors.StorageUnavailable` if another rotation is running, if the
    writers keep the KEK lock longer, or if wrapped keys keep changing.
    """
    with file_lock(ws.root / ROTATION_LOCK_FILE, exclusive=True, timeout=0, busy=_running):
        resumed = _begin(ws, actor)
        kek = ws.kek()
        kek.await_writers(writers_timeout)  # every wrap under the old KEK is stored now
        ring = kek.reload()
        newest = ring.newest
        older = ring.keys[1].key_id if len(ring.keys) > 1 else "none"
        previous = "none" if older == newest.key_id else older  # never the live key's id
        step = _pacer(tick)
        totals = {kind: RewrapTally() for kind, _ in _KINDS}
        first: dict[str, int] = {}
        for passes in range(1, _MAX_PASSES + 1):
            done = {kind: rewrap(ws, step) for kind, rewrap in _KINDS}
            for kind, tally in done.items():
                totals[kind].rewrapped += tally.rewrapped
                totals[kind].raced += tally.raced
                if passes == 1:
                    first[kind] = tally.already
            if all(t.rewrapped == 0 and t.raced == 0 for t in done.values()):
                break
        else:
            raise StorageUnavailable(
                "wrapped keys kept changing while the KEK was rotated",
                hint="run 'modelpact keys rotate-kek' again; it goes on where it stopped",
            )
        for kind, already in first.items():
            totals[kind].already = already
        report = RotationReport(previous, newest.key_id, resumed, passes, totals)
        _finish(ws, report, actor)
        return report


def _running() -> StorageUnavailable:
    return StorageUnavailable(
        "another KEK rotation is running",
        hint="let it finish, then check with 'modelpact keys status'",
    )


def _begin(ws: Workspace, actor: str) -> bool:
    """Write the new KEK unless a rotation is under way already: whether it was."""
    path = ws.next_kek_path
    if os.path.lexists(path):
        if os.lstat(path).st_size > 0:
            return True
        # Empty: left by a crash of a version that created the file before writing it.
        # Nothing was wrapped under it (no process reads it as a key): write it anew.
        path.unlink()
    new = KeyEncryptionKey.generate(created_at=ws.clock())
    try:
        new.save(path)  # whole at once, the folder flushed
    except AlreadyExists:
        return True  # another rotate-kek began meanwhile: carry on with its key
    with ws.store.unit_of_work() as uow:
        record_event(
            ws, uow, actor=actor, kind="keys.kek_rotation_begun", subject=ws.config.name,
            kek=new.key_id,
        )  # fmt: skip
    return False


def _finish(ws: Workspace, report: RotationReport, actor: str) -> None:
    detail: dict[str, str | int | bool | None] = {
        kind: tally.rewrapped for kind, tally in report.tallies.items()
    }
    with ws.store.unit_of_work() as uow:
        record_event(
            ws, uow, actor=actor, kind="keys.kek_rotated", subject=ws.config.name,
            previous=report.previous, kek=report.current, rewrapped=report.rewrapped,
            resumed=report.resumed, **detail,
        )  # fmt: skip
    with contextlib.suppress(FileNotFoundError):  # defensive: only a rotation moves it
        os.replace(ws.root / NEXT_KEK_FILE, ws.root / KEK_FILE)
    _fsync_dir(ws.root / "keys")
    ws.kek().reload()
    if report.previous not in ("none", report.current):
        ws.encryptions().forget(f"{USAGE_PREFIX}/kek/{report.previous}")


def _pacer(tick: Tick | None) -> Tick:
    raw = os.environ.get(PACE_VARIABLE, "")
    try:
        pause = float(raw) if raw else 0.0
    except ValueError:
        pause = 0.0

    def step() -> None:
        if tick is not None:
            tick()
        if pause > 0:
            time.sleep(pause)

    return step


def _fsync_dir(path: os.PathLike[str] | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class KeyUse:
    """One long-lived key's encryption count (reserved: an upper bound) and its limits."""

    key_id: str  # "kek/<id>" or "partner/<partner>/<charter>/<generation>"
    kind: str  # "kek" or "partner"
    reserved: int
    rotate_at: int
    limit: int

    @property
    def share(self) -> float:
        """How far the key is towards its hard limit, 0.0 to 1.0."""
        return min(1.0, self.reserved / self.limit)


@dataclass(frozen=True, slots=True)
class KekStatus:
    kek_id: str
    created_at: datetime | None
    age: timedelta | None
    rotating: bool
    next_id: str | None  # the new KEK's id during a rotation
    uses: list[KeyUse]


def kek_status(ws: Workspace) -> KekStatus:
    """The KEK (and the next one during a rotation) and every key's encryption count."""
    kek = ws.kek()
    ring = kek.reload()
    rotating = kek.rotating and len(ring.keys) > 1
    current = ring.keys[1] if rotating else ring.newest
    limits = ws.config.key_limits
    budget = ws.encryptions()
    counts = budget.reserved()
    counts.setdefault(kek_counter(current), uncounted_start(current, budget))
    uses = []
    for name, reserved in sorted(counts.items()):
        key_id = name.removeprefix(USAGE_PREFIX + "/")
        kind = key_id.split("/", 1)[0]
        uses.append(KeyUse(key_id, kind, reserved, limits.rotate_at, limits.limit))
    created = current.created_at
    if created is None:  # a key file from before KEKs were dated: its file's time
        created = datetime.fromtimestamp(os.stat(ws.root / KEK_FILE).st_mtime, tz=ws.clock().tzinfo)
    return KekStatus(
        kek_id=current.key_id,
        created_at=created,
        age=ws.clock() - created,
        rotating=rotating,
        next_id=ring.newest.key_id if rotating else None,
        uses=uses,
    )


def key_warnings(status: KekStatus) -> list[tuple[str, str]]:
    """``(problem, fix)`` for each thing the owner should act on."""
    found: list[tuple[str, str]] = []
    rotate = "run: modelpact keys rotate-kek"
    for use in status.uses:
        name = use.key_id.split("/", 1)[-1]
        if use.kind == "kek" and use.reserved >= use.limit:
            problem = f"the KEK {name} reached its limit of {use.limit} wraps: it wraps no more"
            found.append((problem, rotate))
        elif use.kind == "kek" and use.reserved > use.rotate_at:
            problem = f"the KEK {name} made {use.reserved} wraps, past {use.rotate_at}"
            found.append((problem + f": rotate it before {use.limit}", rotate))
        elif use.reserved >= use.limit:
            problem = f"partner key {name} reached its limit of {use.limit} seals"
            found.append((problem, "terminate the charter and agree a new one"))
    if status.rotating:
        found.append((f"a KEK rotation (to {status.next_id}) is unfinished", rotate))
    return found
