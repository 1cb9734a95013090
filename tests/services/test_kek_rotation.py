"""KEK rotation: every old item stays readable, new wraps go under the new key at once, and a
rotation interrupted — by an exception or a real SIGKILL — resumes and completes."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from modelpact.audit.entries import AdminEntry, decode_entry
from modelpact.crypto import KeyEncryptionKey, SigningKey
from modelpact.errors import Tampered
from modelpact.services import ModelRegistry, PartnerDirectory, Workspace, open_workspace
from modelpact.services.envelopes import open_for_partner, seal_envelope, seal_for_partner
from modelpact.services.kek_rotation import PACE_VARIABLE, kek_status, key_warnings, rotate_kek
from modelpact.services.monitoring import _open_state
from modelpact.services.partner_keys import PartnerDataKeys
from modelpact.services.watermarking import WatermarkDesk
from modelpact.store import MonitorStateRecord
from tests.services.conftest import START

_FIELDS = ("key", "state")
_LEGACY = "modelpact-sealed-watch/v1"
CHARTERS = [f"c{n}" for n in range(6)]


@dataclass
class Items:
    """What a workspace held before the rotation, and what it should still read."""

    sealed: dict[tuple[str, str], tuple[str, bytes]]  # (partner, charter) -> envelope, text
    watermark: dict[str, bytes]  # partner -> the secret of its keys
    legacy_state: str


def _seal(ws: Workspace, partner: str, charter: str, text: bytes) -> str:
    return seal_for_partner(ws, partner, charter, text, b"record", kind="t/v1", fields=_FIELDS)


def _open(ws: Workspace, partner: str, charter: str, envelope: str) -> bytes:
    return open_for_partner(
        ws, partner, charter, envelope, b"record", kind="t/v1", fields=_FIELDS, what="a record"
    )


def _legacy_ad() -> bytes:
    return b"monitor-state/acme/c0/m"


def populate(ws: Workspace, onnx_bytes: bytes) -> Items:
    """Every kind of KEK-wrapped item: model versions, partner keys (two generations for
    one), watermark keys and a monitor state saved before partner keys."""
    ModelRegistry(ws).add("m", onnx_bytes, version="1", source="m.onnx")
    ModelRegistry(ws).add("m", onnx_bytes, version="2", source="m.onnx")
    for partner in ("acme", "globex"):
        PartnerDirectory(ws).enrol(partner, SigningKey.generate().verify_key.encode())
    sealed = {}
    for n, charter in enumerate(CHARTERS):
        partner = "acme" if n % 2 == 0 else "globex"
        text = f"record {n}".encode()
        sealed[(partner, charter)] = (_seal(ws, partner, charter, text), text)
    desk = WatermarkDesk(ws)
    watermark = {p: desk.keys(p).prf.secret() for p in ("acme", "globex")}
    state = seal_envelope(
        ws, b'{"queries": 3}', _legacy_ad(), kind=_LEGACY, fields=_FIELDS
    )  # as saved before partner keys existed
    with ws.store.unit_of_work() as uow:
        uow.monitor.save_state(MonitorStateRecord("acme", "c0", "m", state=state, updated_at=START))
    return Items(sealed, watermark, state)


def assert_all_readable(ws: Workspace, items: Items) -> None:
    registry = ModelRegistry(ws)
    for version in ("1", "2"):
        registry.verify("m", version)
    for (partner, charter), (envelope, text) in items.sealed.items():
        assert _open(ws, partner, charter, envelope) == text
    fresh = WatermarkDesk(ws)  # nothing kept in memory: opened from the rows
    for partner, secret in items.watermark.items():
        assert fresh.keys(partner).prf.secret() == secret
    with ws.store.unit_of_work() as uow:
        record = uow.monitor.state("acme", "c0", "m")
    assert record is not None
    assert json.loads(_open_state(ws, ("acme", "c0", "m"), record.state)) == {"queries": 3}


def wrapped_items(ws: Workspace) -> list[tuple[bytes, bytes]]:
    """Every KEK-wrapped key in the workspace, with its associated data."""
    found = []
    with ws.store.unit_of_work() as uow:
        for model, version, wrapped in uow.keys.model_keys():
            found.append((wrapped, f"modelpact/model/{model}/{version}".encode()))
        watermarks = uow.keys.watermark_keys()
        states = uow.keys.monitor_states()
    for partner, sealed in watermarks:
        found.append(
            (base64.b64decode(json.loads(sealed)["wrapped"]), f"watermark-keys/{partner}".encode())
        )
    for partner, charter, model, text in states:
        if json.loads(text)["format"] == _LEGACY:
            found.append(
                (
                    base64.b64decode(json.loads(text)["key"]),
                    f"monitor-state/{partner}/{charter}/{model}".encode(),
                )
            )
    for name in ws.artifacts.keys("partner-keys") + ws.artifacts.keys("partner-key-generations"):
        blob = json.loads(ws.artifacts.get(name))
        if "wrapped" in blob:
            found.append((base64.b64decode(blob["wrapped"]), _partner_ad(name)))
    return found


def _partner_ad(name: str) -> bytes:
    parts = name.split("/")
    suffix = "" if parts[0] == "partner-keys" else f"/{parts[3]}"
    return f"partner-data-key/{parts[1]}/{parts[2]}{suffix}".encode()


def opens(kek: KeyEncryptionKey, wrapped: bytes, ad: bytes) -> bool:
    try:
        kek.unwrap(wrapped, ad)
    except Tampered:
        return False
    return True


def kek_file(ws: Workspace) -> KeyEncryptionKey:
    return KeyEncryptionKey.load(ws.root / "keys" / "kek.key")


def test_model_ad_matches_the_registry(workspace: Workspace, onnx_bytes: bytes) -> None:
    """The associated data this test assumes is the registry's (else the checks below lie)."""
    ModelRegistry(workspace).add("m", onnx_bytes, version="1", source="m.onnx")
    ((wrapped, ad),) = wrapped_items(workspace)
    assert opens(kek_file(workspace), wrapped, ad)


def test_rotation_keeps_every_old_item_readable_and_moves_all_under_the_new_kek(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    items = populate(workspace, onnx_bytes)
    old = kek_file(workspace)
    before = wrapped_items(workspace)
    assert len(before) == 2 + len(CHARTERS) + 2 + 1
    assert all(opens(old, w, ad) for w, ad in before)

    report = rotate_kek(workspace)

    new = kek_file(workspace)
    assert new.key_id != old.key_id and report.current == new.key_id
    assert report.previous == old.key_id and not report.resumed
    assert not workspace.next_kek_path.exists()
    assert (report.rewrapped, report.already) == (len(before), 0)
    assert report.tallies["partner_keys"].rewrapped == len(CHARTERS)
    after = wrapped_items(workspace)
    assert len(after) == len(before)
    assert all(opens(new, w, ad) and not opens(old, w, ad) for w, ad in after)
    assert_all_readable(workspace, items)
    # A reopened workspace reads them too (nothing depends on this process's cache).
    with open_workspace(workspace.root, clock=workspace.clock) as reopened:
        assert_all_readable(reopened, items)
    # New wraps go under the new key; the old one alone opens none of them.
    ModelRegistry(workspace).add("m", onnx_bytes, version="3", source="m.onnx")
    envelope = _seal(workspace, "acme", "c-new", b"new")
    assert _open(workspace, "acme", "c-new", envelope) == b"new"
    assert all(opens(new, w, ad) and not opens(old, w, ad) for w, ad in wrapped_items(workspace))
    # The audit log says what happened: key ids and counts, never key bytes.
    with workspace.store.unit_of_work() as uow:
        entries = [decode_entry(r.entry) for r in uow.audit.entries(0, uow.audit.size())]
    rotated = [e for e in entries if isinstance(e, AdminEntry) and e.action == "keys.kek_rotated"]
    (entry,) = rotated
    assert entry.detail["previous"] == old.key_id and entry.detail["kek"] == new.key_id
    assert entry.detail["rewrapped"] == len(before) and entry.detail["model_versions"] == 2
    raw = (workspace.root / "keys" / "kek.key").read_text()
    assert json.loads(raw)["key"] not in json.dumps(entry.detail)


def test_new_wraps_go_under_the_new_kek_as_soon_as_a_rotation_begins(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    items = populate(workspace, onnx_bytes)
    old = kek_file(workspace)
    new = KeyEncryptionKey.generate(created_at=START)
    new.save(workspace.next_kek_path)  # what a rotation writes first
    assert kek_status(workspace).rotating
    assert any("unfinished" in problem for problem, _ in key_warnings(kek_status(workspace)))
    ModelRegistry(workspace).add("m", onnx_bytes, version="3", source="m.onnx")
    with workspace.store.unit_of_work() as uow:
        wrapped = uow.models.get_version("m", "3").wrapped_key
    ad = b"modelpact/model/m/3"
    assert opens(new, wrapped, ad) and not opens(old, wrapped, ad)
    assert_all_readable(workspace, items)  # old items: unwrapped by the old key meanwhile

    report = rotate_kek(workspace)
    assert report.resumed and report.current == new.key_id
    assert report.tallies["model_versions"].already == 1  # version 3: nothing to do
    assert kek_file(workspace).key_id == new.key_id
    assert_all_readable(workspace, items)


def test_a_running_process_follows_a_rotation_finished_by_another(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    items = populate(workspace, onnx_bytes)
    assert_all_readable(workspace, items)  # this process holds the old ring now
    with open_workspace(workspace.root, clock=workspace.clock) as other:
        rotate_kek(other)
    new = kek_file(workspace)
    assert_all_readable(workspace, items)  # unwrap fails once, the files are read again
    ModelRegistry(workspace).add("m", onnx_bytes, version="3", source="m.onnx")
    with workspace.store.unit_of_work() as uow:
        wrapped = uow.models.get_version("m", "3").wrapped_key
    assert opens(new, wrapped, b"modelpact/model/m/3")


class Interrupted(Exception):
    pass


def test_a_rotation_interrupted_halfway_resumes_and_completes(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    items = populate(workspace, onnx_bytes)
    old = kek_file(workspace)
    done = 0

    def die_after_five() -> None:
        nonlocal done
        done += 1
        if done == 5:
            raise Interrupted

    with pytest.raises(Interrupted):
        rotate_kek(workspace, tick=die_after_five)
    new = KeyEncryptionKey.load(workspace.next_kek_path)
    states = [opens(new, w, ad) for w, ad in wrapped_items(workspace)]
    assert 0 < sum(states) < len(states)  # really halfway
    assert kek_file(workspace).key_id == old.key_id
    assert_all_readable(workspace, items)

    report = rotate_kek(workspace)
    assert report.resumed and report.current == new.key_id
    assert report.already == sum(states) and report.rewrapped == len(states) - sum(states)
    assert all(not opens(old, w, ad) for w, ad in wrapped_items(workspace))
    assert_all_readable(workspace, items)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_rotation_killed_with_sigkill_resumes_and_completes(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    """A real ``modelpact keys rotate-kek`` process, paced (``MODELPACT_KEK_ROTATION_PACE``)
    so that the test can kill it after a few items."""
    items = populate(workspace, onnx_bytes)
    old = kek_file(workspace)
    total = len(wrapped_items(workspace))
    command = [str(Path(sys.executable).with_name("modelpact")), "--workspace", str(workspace.root)]
    env = os.environ | {PACE_VARIABLE: "0.3"}
    process = subprocess.Popen(
        [*command, "keys", "rotate-kek"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        moved = 0
        deadline = time.monotonic() + 60
        while moved < 3:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the rotation did not start"
            time.sleep(0.05)
            if workspace.next_kek_path.exists():
                new = KeyEncryptionKey.load(workspace.next_kek_path)
                moved = sum(opens(new, w, ad) for w, ad in wrapped_items(workspace))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    moved = sum(opens(new, w, ad) for w, ad in wrapped_items(workspace))
    assert 3 <= moved < total  # killed halfway: some items moved, others not yet
    assert kek_file(workspace).key_id == old.key_id
    assert_all_readable(workspace, items)

    finished = subprocess.run(
        [*command, "keys", "rotate-kek"], capture_output=True, text=True, check=False, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    assert "resumed an interrupted KEK rotation" in finished.stdout
    assert kek_file(workspace).key_id == new.key_id
    assert not workspace.next_kek_path.exists()
    assert all(opens(new, w, ad) and not opens(old, w, ad) for w, ad in wrapped_items(workspace))
    assert_all_readable(workspace, items)


def test_a_second_rotation_moves_everything_again(workspace: Workspace, onnx_bytes: bytes) -> None:
    items = populate(workspace, onnx_bytes)
    first = rotate_kek(workspace)
    second = rotate_kek(workspace)
    assert second.previous == first.current and second.rewrapped == first.rewrapped
    assert_all_readable(workspace, items)


def test_a_destroyed_partner_key_is_not_brought_back_by_a_rotation(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    items = populate(workspace, onnx_bytes)
    keys = PartnerDataKeys(workspace)
    keys.destroy("acme", "c0", terminated_at=START)
    report = rotate_kek(workspace)
    assert report.tallies["partner_keys"].rewrapped == len(CHARTERS) - 1
    assert keys.tombstone("acme", "c0") is not None
    with pytest.raises(Exception, match="destroyed"):
        _open(workspace, "acme", "c0", items.sealed[("acme", "c0")][0])


def test_replace_is_a_compare_and_set(workspace: Workspace) -> None:
    store = workspace.artifacts
    store.put("k/a", b"one")
    assert not store.replace("k/a", b"two", expected=b"other")
    assert store.replace("k/a", b"two", expected=b"one") and store.get("k/a") == b"two"
    store.delete("k/a")
    assert not store.replace("k/a", b"three", expected=b"two") and not store.exists("k/a")
    assert store.keys("k") == [] and store.keys("nothing") == []
    store.put("k/b/c", b"x")
    assert store.keys("k") == ["k/b/c"]


def test_a_key_wrapped_under_the_old_kek_just_before_the_rotation_is_not_left_behind(
    workspace: Workspace, onnx_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that wrapped under the old KEK a moment before the new one appeared stores
    its wrap after a pass found nothing left: the pass after the settle time re-wraps it."""
    from modelpact.services import kek_rotation

    items = populate(workspace, onnx_bytes)
    keys = PartnerDataKeys(workspace)
    late = keys.key("late", "c9", create=True)  # the data key the slow writer is storing
    name = keys.name("late", "c9")
    blob = workspace.artifacts.get(name)  # wrapped under the old KEK
    workspace.artifacts.delete(name)  # not stored yet when the rotation begins
    stored: list[float] = []

    class Clock:  # the rotation's clock: the write lands while it waits out the settle time
        time = staticmethod(time.time)

        @staticmethod
        def sleep(seconds: float) -> None:
            if not stored:
                workspace.artifacts.put(name, blob)
                stored.append(seconds)
            time.sleep(seconds)

    monkeypatch.setattr(kek_rotation, "time", Clock)
    report = rotate_kek(workspace, settle=1.0)
    assert stored and 0 < stored[0] <= 1.0 and not workspace.next_kek_path.exists()
    assert report.tallies["partner_keys"].rewrapped == len(CHARTERS) + 1  # and the late one
    assert keys.key("late", "c9").secret() == late.secret()  # only the new KEK is left
    assert_all_readable(workspace, items)
