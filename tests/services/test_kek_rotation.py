"""KEK rotation: every old item stays readable, new wraps go under the new key at once, and a
rotation interrupted — by an exception or a real SIGKILL — resumes and completes."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modelpact.audit.entries import AdminEntry, decode_entry
from modelpact.crypto import DataKey, KeyEncryptionKey, SigningKey
from modelpact.errors import StorageUnavailable, Tampered
from modelpact.services import ModelRegistry, PartnerDirectory, Workspace, open_workspace
from modelpact.services.envelopes import open_for_partner, seal_envelope, seal_for_partner
from modelpact.services.kek import KEK_LOCK_FILE, Wrap, file_lock
from modelpact.services.kek_rotation import (
    PACE_VARIABLE,
    ROTATION_LOCK_FILE,
    kek_status,
    key_warnings,
    rotate_kek,
)
from modelpact.services.key_budget import KeyLimits
from modelpact.services.monitoring import _open_state
from modelpact.services.partner_keys import KeyDestroyed, PartnerDataKeys
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
    with ws.kek().wrapping() as wrap, ws.store.unit_of_work() as uow:
        state = seal_envelope(
            wrap, b'{"queries": 3}', _legacy_ad(), kind=_LEGACY, fields=_FIELDS
        )  # as saved before partner keys existed
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
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    """A registration wraps its data key under the old KEK, then takes longer than any
    fixed wait before its row is committed (SQLite's busy_timeout, PostgreSQL's lock
    timeout: seconds).  The rotation waits for it on the KEK lock, then re-wraps the row."""
    items = populate(workspace, onnx_bytes)
    old = kek_file(workspace)
    kek = workspace.kek()
    real_wrap = kek.wrap
    wrapped_old = threading.Event()

    def slow_wrap(data_key: DataKey, ad: bytes) -> bytes:
        wrapped = real_wrap(data_key, ad)
        if threading.current_thread().name == "writer":
            wrapped_old.set()
            deadline = time.monotonic() + 10
            while not workspace.next_kek_path.exists():  # the rotation has begun...
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.5)  # ...and the writer is still on its way to the commit
        return wrapped

    real_wrapping = kek.wrapping
    committed = threading.Event()

    @contextlib.contextmanager
    def wrapping() -> Iterator[Wrap]:
        with real_wrapping() as wrap:
            yield wrap
            if threading.current_thread().name == "writer":
                committed.set()  # the row is committed; the lock is not released yet

    kek.wrap = slow_wrap  # type: ignore[method-assign]
    kek.wrapping = wrapping  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def register() -> None:
        try:
            ModelRegistry(workspace).add("m", onnx_bytes, version="3", source="m.onnx")
        except BaseException as exc:
            errors.append(exc)

    writer = threading.Thread(target=register, name="writer")
    writer.start()
    assert wrapped_old.wait(30)
    committed_at_first_item: list[bool] = []

    def tick() -> None:
        if not committed_at_first_item:
            committed_at_first_item.append(committed.is_set())

    try:
        report = rotate_kek(workspace, tick=tick)
    finally:
        writer.join(30)
    assert errors == []
    assert committed_at_first_item == [True]  # the passes began after the commit
    assert report.tallies["model_versions"].rewrapped == 3  # versions 1, 2 and the late 3
    new = kek_file(workspace)
    with workspace.store.unit_of_work() as uow:
        late = uow.models.get_version("m", "3").wrapped_key
    assert opens(new, late, b"modelpact/model/m/3") and not opens(old, late, b"modelpact/model/m/3")
    ModelRegistry(workspace).verify("m", "3")  # only the new KEK is left
    assert_all_readable(workspace, items)


def test_every_writer_wraps_and_stores_inside_the_kek_lock(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    """Model versions, partner keys (first and later generations) and watermark keys."""
    ws = workspace
    ws.config = dataclasses.replace(ws.config, key_limits=KeyLimits(1, 100))
    ws._encryptions = None
    ws._kek = None
    PartnerDirectory(ws).enrol("acme", SigningKey.generate().verify_key.encode())
    kek = ws.kek()
    lock = ws.root / KEK_LOCK_FILE
    real_wrap, real_put = kek.wrap, ws.artifacts.put
    held: list[tuple[str, bool]] = []

    def lock_held() -> bool:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def wrap(data_key: DataKey, ad: bytes) -> bytes:
        held.append((ad.decode(), lock_held()))
        return real_wrap(data_key, ad)

    def put(name: str, data: bytes) -> None:
        if name.startswith("partner-key"):
            held.append((name, lock_held()))
        real_put(name, data)

    kek.wrap = wrap  # type: ignore[method-assign]
    ws.artifacts.put = put  # type: ignore[method-assign]
    ModelRegistry(ws).add("m", onnx_bytes, version="1", source="m.onnx")
    _seal(ws, "acme", "c", b"one"), _seal(ws, "acme", "c", b"two")  # generations 1 and 2
    WatermarkDesk(ws).keys("acme")
    assert {what for what, _ in held} == {
        "modelpact/model/m/1",
        "partner-data-key/acme/c",
        "partner-keys/acme/c",
        "partner-data-key/acme/c/2",
        "partner-key-generations/acme/c/2",
        "watermark-keys/acme",
    }
    assert all(inside for _, inside in held), held


def test_a_writer_that_wraps_after_the_rotation_began_uses_the_new_kek_without_waiting(
    workspace: Workspace,
) -> None:
    kek = workspace.kek()
    old = kek_file(workspace)
    KeyEncryptionKey.generate().save(workspace.next_kek_path)  # a rotation's first step
    with kek.wrapping() as wrap:
        wrapped = wrap(DataKey.generate(), b"x")
        kek.lock_timeout = 0.2
        with pytest.raises(StorageUnavailable, match="writers kept"):
            kek.await_writers()  # a rotation waits for this writer...
    kek.await_writers()  # ...and no longer once it is done
    assert opens(KeyEncryptionKey.load(workspace.next_kek_path), wrapped, b"x")
    assert not opens(old, wrapped, b"x")


def test_a_writer_waits_for_the_kek_lock_a_bounded_time(workspace: Workspace) -> None:
    kek = workspace.kek()
    kek.lock_timeout = 0.2
    lock = workspace.root / KEK_LOCK_FILE
    with file_lock(lock, exclusive=True, timeout=0, busy=lambda: StorageUnavailable("held")):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="stayed taken") as refused, kek.wrapping():
            pass
        assert time.monotonic() - started < 5
    assert "rotate-kek" in refused.value.diagnostics()
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    with kek.wrapping() as wrap:  # free again
        wrap(DataKey.generate(), b"x")


def test_a_second_rotation_at_the_same_time_fails_at_once(workspace: Workspace) -> None:
    lock = workspace.root / ROTATION_LOCK_FILE
    with file_lock(lock, exclusive=True, timeout=0, busy=lambda: StorageUnavailable("held")):
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="another KEK rotation is running"):
            rotate_kek(workspace)
        assert time.monotonic() - started < 1
    assert not workspace.next_kek_path.exists()  # it began nothing
    rotate_kek(workspace)  # free again


def test_a_ring_read_across_a_replace_has_the_live_key_once_and_keeps_its_counter(
    workspace: Workspace,
) -> None:
    """Another rotation's replace between the two reads: both files hold the new key."""
    kek = workspace.kek()
    kek.wrap(DataKey.generate(), b"x")
    live = kek_file(workspace)
    counter = f"key-usage/kek/{live.key_id}"
    assert counter in workspace.encryptions().reserved()
    shutil.copy(workspace.root / "keys" / "kek.key", workspace.next_kek_path)
    assert [k.key_id for k in kek.reload().keys] == [live.key_id]
    report = rotate_kek(workspace)
    assert report.previous == "none" and report.current == live.key_id
    assert counter in workspace.encryptions().reserved()  # not forgotten: its key is live
    assert kek_file(workspace).key_id == live.key_id


def test_the_next_kek_is_never_seen_empty_or_half_written(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between any two steps of writing ``kek.next.key`` another process finds no file or
    the whole key (checked at every ``open`` the writer makes)."""
    path = workspace.next_kek_path
    new = KeyEncryptionKey.generate(created_at=START)
    real_open = os.open
    seen: list[str] = []

    def watching_open(*args: Any, **kwargs: Any) -> int:
        fd = real_open(*args, **kwargs)
        if os.path.lexists(path):
            with open(path, "rb") as handle:
                text = handle.read()
            seen.append("whole" if text.strip() and json.loads(text)["id"] else "partial")
        else:
            seen.append("absent")
        return fd

    monkeypatch.setattr(os, "open", watching_open)
    new.save(path)
    monkeypatch.undo()
    assert "partial" not in seen and seen[-1] == "whole", seen
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.endswith("~")] == []
    assert KeyEncryptionKey.load(path).key_id == new.key_id


def test_an_empty_next_kek_left_by_a_crash_is_ignored_then_replaced(
    workspace: Workspace, onnx_bytes: bytes
) -> None:
    """What a version that created the file before writing it left when killed there."""
    items = populate(workspace, onnx_bytes)
    old = kek_file(workspace)
    fd = os.open(workspace.next_kek_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    assert [k.key_id for k in workspace.kek().reload().keys] == [old.key_id]
    assert_all_readable(workspace, items)
    report = rotate_kek(workspace)
    assert not report.resumed and report.previous == old.key_id
    assert kek_file(workspace).key_id == report.current != old.key_id
    assert_all_readable(workspace, items)


def test_a_rotation_finishes_the_sweep_of_an_interrupted_destroy(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destroy killed after its tombstone and before its sweep left later generations;
    the rotation must not re-wrap them (they would open under the new KEK): it deletes
    them, and their counters."""
    ws = workspace
    ws.config = dataclasses.replace(ws.config, key_limits=KeyLimits(1, 100))
    ws._encryptions = None
    ws._kek = None
    envelopes = [_seal(ws, "acme", "c", f"secret {n}".encode()) for n in range(3)]
    kept = _seal(ws, "acme", "kept", b"kept")
    keys = PartnerDataKeys(ws)

    def crash(*_args: object) -> None:
        raise Interrupted

    monkeypatch.setattr(PartnerDataKeys, "_sweep", crash)
    with pytest.raises(Interrupted):
        keys.destroy("acme", "c", terminated_at=START)
    monkeypatch.undo()
    assert ws.artifacts.keys("partner-key-generations/acme/c") != []  # left behind
    report = rotate_kek(ws)
    assert report.tallies["partner_keys"].rewrapped == 1  # the kept charter's key alone
    assert ws.artifacts.keys("partner-key-generations/acme/c") == []
    assert ws.artifacts.keys("key-usage/partner/acme/c") == []
    assert keys.tombstone("acme", "c") is not None
    for envelope in envelopes:
        with pytest.raises(KeyDestroyed):
            _open(ws, "acme", "c", envelope)
    assert _open(ws, "acme", "kept", kept) == b"kept"
