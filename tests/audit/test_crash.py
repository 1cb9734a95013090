"""SIGKILL at random points never loses an acknowledged entry nor breaks a checkpoint."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from modelpact.audit.checkpoint import open_checkpoint
from modelpact.audit.tree import Frontier, leaf_hash
from modelpact.crypto import SigningKey
from modelpact.store import open_store
from tests.audit.crash_child import ORIGIN

TOTAL = 10_000
ROOT = Path(__file__).resolve().parents[2]


def _check(url: str, key: SigningKey, acked: dict[int, str]) -> int:
    store = open_store(url)
    try:
        with store.unit_of_work() as uow:
            size = uow.audit.size()
            records = uow.audit.entries(0, size)
            latest = uow.audit.latest_checkpoint()
    finally:
        store.close()
    assert [r.idx for r in records] == list(range(size)), "the log has a gap"
    for index, leaf in acked.items():
        assert index < size, f"acknowledged entry {index} was lost (log holds {size})"
        assert records[index].leaf_hash.hex() == leaf, f"acknowledged entry {index} changed"
    frontier = Frontier()
    for record in records:
        assert leaf_hash(record.entry) == record.leaf_hash
    if latest is not None:
        for record in records[: latest.size]:
            frontier.append(record.leaf_hash)
        assert frontier.root() == latest.root, "the recomputed root differs from the checkpoint"
        checkpoint = open_checkpoint(latest.note, key.verify_key, name=ORIGIN)
        assert (checkpoint.size, checkpoint.root) == (latest.size, latest.root)
    return size


def test_sigkill_at_random_points(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    key = SigningKey.generate()
    key.save(tmp_path / "key.pem")
    open_store(url).close()  # migrate once, outside the kills
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    acked: dict[int, str] = {}
    kills = 0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(200):  # bounded: at least 20 kills, then run to completion
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.audit.crash_child",
                url,
                str(tmp_path / "key.pem"),
                str(TOTAL),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        assert child.stdout is not None
        kill_after = rng.randint(50, 600) if kills < 20 else None
        seen = 0
        for line in child.stdout:
            if line.startswith("A "):
                _, index, leaf = line.split()
                acked[int(index)] = leaf
                seen += 1
                if kill_after is not None and seen >= kill_after:
                    child.send_signal(signal.SIGKILL)
                    break
        child.stdout.close()
        code = child.wait(timeout=60)
        if code == -signal.SIGKILL:
            kills += 1
        else:
            assert code == 0, f"child failed with {code}"
        size = _check(url, key, acked)
        if code == 0 and size >= TOTAL:
            break
    assert kills >= 20
    assert _check(url, key, acked) == TOTAL
    assert len(acked) <= TOTAL
