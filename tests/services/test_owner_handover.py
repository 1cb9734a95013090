"""Rotating the owner's signing key: the handover is logged, verifiers follow it, and an
interrupted rotation finishes when run again."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from modelpact.audit.entries import AdminEntry, decode_entry
from modelpact.audit.handover import HANDOVER_ACTION, follow_handovers, handovers_in
from modelpact.audit.handover_export import verify_export_following
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import AlreadyExists, StorageUnavailable, Tampered
from modelpact.services import Workspace, open_workspace, owner_keys
from modelpact.services.audit import AuditDesk
from modelpact.services.owner_keys import (
    NEXT_KEY,
    PENDING_FILE,
    ROTATION_LOCK,
    finish_key_swap,
    handover_proofs,
    is_owner_key,
    owner_key_chain,
    rotate_owner_key,
)
from tests.services.conftest import FixedClock


def handover_indexes(ws: Workspace) -> list[int]:
    with ws.store.unit_of_work() as uow:
        records = uow.audit.entries(0, uow.audit.size())
    return [i for i, _ in handovers_in([(r.idx, r.entry) for r in records])]


def test_rotation_hands_the_log_to_a_new_key(workspace: Workspace) -> None:
    old = workspace.owner_verify_key
    rotation = rotate_owner_key(workspace)
    new = workspace.owner_verify_key
    assert rotation.old_key == old and rotation.new_key == new != old
    assert not rotation.resumed
    root = workspace.root
    assert SigningKey.load(root / "keys/owner-ed25519.pem").verify_key == new
    assert (root / "keys/owner-ed25519.pub").read_text().strip() == new.encode()
    assert (root / "keys/owner-ed25519.pem").stat().st_mode & 0o777 == 0o600
    assert not (root / NEXT_KEY).exists() and not (root / PENDING_FILE).exists()
    # The handover is an entry of the log, and the checkpoint after it is the new key's.
    assert handover_indexes(workspace) == [rotation.index]
    with workspace.store.unit_of_work() as uow:
        entry = decode_entry(uow.audit.entry(rotation.index).entry)
    assert isinstance(entry, AdminEntry) and entry.action == HANDOVER_ACTION
    chain = owner_key_chain(workspace)
    assert chain.keys == (old, new)
    assert chain.open_checkpoint(rotation.checkpoint.note).size == rotation.checkpoint.size
    assert chain.key_for(rotation.checkpoint.size) == new
    # The workspace opens again (its .pub matches its key) and knows both keys.
    open_workspace(root).store.close()
    assert is_owner_key(workspace, old) and is_owner_key(workspace, new)
    assert not is_owner_key(workspace, SigningKey.generate().verify_key)


def test_an_export_verifies_for_a_verifier_that_only_knew_the_old_key(
    workspace: Workspace,
) -> None:
    first = workspace.owner_verify_key
    rotate_owner_key(workspace)
    rotate_owner_key(workspace)  # two handovers: the chain is followed link by link
    text = AuditDesk(workspace).export()
    for trusted in (first, workspace.owner_verify_key):
        report = verify_export_following(text, trusted)
        assert report.ok, report.problems
    stranger = SigningKey.generate().verify_key
    report = verify_export_following(text, stranger)
    assert not report.ok
    assert "do not include the trusted key" in report.problems[0]


def test_a_retired_key_checkpoint_after_the_handover_is_refused(workspace: Workspace) -> None:
    """What a gateway left running with the old key would sign: verifiers refuse it."""
    from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
    from modelpact.audit.tree import tree_root

    old = SigningKey.load(workspace.root / "keys/owner-ed25519.pem")
    rotate_owner_key(workspace)
    with workspace.store.unit_of_work() as uow:
        size = uow.audit.size()
        root = tree_root(size, uow.audit)
    origin = workspace.log_origin
    stale = sign_checkpoint(Checkpoint(origin, size, root), old, name=origin)
    with pytest.raises(Exception, match="handed the log over"):
        owner_key_chain(workspace).open_checkpoint(stale)


def _interrupt(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    def crash(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("simulated crash")

    monkeypatch.setattr(owner_keys, name, crash)


@pytest.mark.parametrize("step", ["_append_once", "_write_index", "_hold_key"])
def test_an_interrupted_rotation_finishes_when_run_again(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    old = workspace.owner_verify_key
    with monkeypatch.context() as patch:
        _interrupt(patch, step)
        with pytest.raises(StorageUnavailable):
            rotate_owner_key(workspace)
    assert (workspace.root / PENDING_FILE).exists()
    if step != "_append_once":  # the .pub names the new key: the workspace does not open
        with pytest.raises(Tampered):
            open_workspace(workspace.root)
    finish_key_swap(workspace.root)  # what 'keys rotate-owner' does first
    fresh = open_workspace(workspace.root, clock=workspace.clock)
    try:
        rotation = rotate_owner_key(fresh)
        assert rotation.resumed and rotation.old_key == old
        assert handover_indexes(fresh) == [rotation.index]  # appended once, never twice
        assert owner_key_chain(fresh).keys == (old, rotation.new_key)
        assert fresh.owner_verify_key == rotation.new_key
        report = verify_export_following(AuditDesk(fresh).export(), old)
        assert report.ok, report.problems
    finally:
        fresh.store.close()


def test_a_rotation_cut_between_its_two_renames_is_finished_before_the_workspace_opens(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = workspace.owner_verify_key
    with monkeypatch.context() as patch:
        _interrupt(patch, "_swap_keys")
        with pytest.raises(StorageUnavailable):
            rotate_owner_key(workspace)
    root = workspace.root
    # The .pub names the new key, the private key is still the old one: refused to open.
    with pytest.raises(Tampered):
        open_workspace(root)
    assert finish_key_swap(root)
    fresh = open_workspace(root, clock=workspace.clock)
    try:
        rotation = rotate_owner_key(fresh)
        assert rotation.resumed and rotation.old_key == old
        assert len(handover_indexes(fresh)) == 1
        assert not (root / PENDING_FILE).exists()
    finally:
        fresh.store.close()


def test_a_tampered_index_is_refused(workspace: Workspace) -> None:
    rotate_owner_key(workspace)
    path = workspace.root / owner_keys.HANDOVERS_FILE
    path.write_text(path.read_text().replace('"index": ', '"index": 1', 1))
    with pytest.raises(Tampered):
        owner_key_chain(workspace)


def test_a_chain_followed_from_the_log_alone(workspace: Workspace) -> None:
    """What an auditor with the database does: the log's handovers, from the first key."""
    first = workspace.owner_verify_key
    rotate_owner_key(workspace)
    with workspace.store.unit_of_work() as uow:
        records = uow.audit.entries(0, uow.audit.size())
    found = handovers_in([(r.idx, r.entry) for r in records])
    chain = follow_handovers(first, found, origin=workspace.log_origin)
    assert chain.current == workspace.owner_verify_key
    assert isinstance(chain.current, VerifyKey)


def test_paths_are_inside_the_keys_folder() -> None:
    for name in (NEXT_KEY, PENDING_FILE, owner_keys.HANDOVERS_FILE):
        assert Path(name).parent == Path("keys")


def test_a_process_left_running_follows_the_handover(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gateway's log asks the workspace for its key at each checkpoint: mid-handover it
    signs nothing, once the new key is in place it signs with it, never with the old one."""
    from modelpact.audit.entries import AdminEntry
    from modelpact.audit.log import AuditLog

    root = workspace.root
    running = open_workspace(root, clock=workspace.clock)  # opened before the rotation
    log = AuditLog(running.store, key=running.signing_key, origin=running.log_origin,
                   clock=running.clock)  # fmt: skip
    try:
        old = running.owner_verify_key
        assert owner_key_chain(running).open_checkpoint(log.checkpoint().note)
        with monkeypatch.context() as patch:
            _interrupt(patch, "_swap_keys")  # the handover is logged, the swap is not
            with pytest.raises(StorageUnavailable):
                rotate_owner_key(workspace)
        entry = AdminEntry(time=workspace.clock(), actor="owner", action="test.entry", subject="x")
        log.append(entry)  # entries still go in
        with pytest.raises(StorageUnavailable, match="being handed over"):
            log.checkpoint()
        assert finish_key_swap(root)
        fresh = open_workspace(root, clock=workspace.clock)
        try:
            new = rotate_owner_key(fresh).new_key
            chain = owner_key_chain(fresh)
        finally:
            fresh.store.close()
        log.append(entry)
        signed = log.checkpoint()
        assert running.owner_verify_key == new != old
        assert chain.key_for(signed.size) == new
        assert chain.open_checkpoint(signed.note).size == signed.size
    finally:
        log.close()
        running.store.close()


def _rotate_again_while_signing_the_first(
    monkeypatch: pytest.MonkeyPatch, first: Workspace, second: Workspace, clock: FixedClock
) -> list[BaseException | int]:
    """Start a rotation of ``second`` while ``first``'s rotation has written its next
    key and signs the old key's last checkpoint (before its pending file exists); the
    first then signs its handover a second later (other bytes)."""
    real = Workspace.checkpoint
    outcome: list[BaseException | int] = []

    def checkpoint(self: Workspace) -> Any:
        if self is first and not outcome:
            assert (first.root / NEXT_KEY).exists() and not (first.root / PENDING_FILE).exists()
            try:
                outcome.append(rotate_owner_key(second).index)
            except StorageUnavailable as exc:
                outcome.append(exc)
            clock.advance(seconds=1)
        return real(self)

    monkeypatch.setattr(Workspace, "checkpoint", checkpoint)
    return outcome


def test_a_second_rotation_while_one_runs_fails_at_once(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    """Two 'keys rotate-owner' at once would sign two handovers from one key (a fork no
    verifier accepts, in an append-only log): the second one stops before anything."""
    old = workspace.owner_verify_key
    second = open_workspace(workspace.root, clock=workspace.clock)
    try:
        outcome = _rotate_again_while_signing_the_first(monkeypatch, workspace, second, clock)
        rotation = rotate_owner_key(workspace)
    finally:
        second.store.close()
    (refused,) = outcome
    assert isinstance(refused, StorageUnavailable)
    assert refused.summary == "another owner-key rotation is running"
    assert handover_indexes(workspace) == [rotation.index]
    assert owner_key_chain(workspace).keys == (old, rotation.new_key)
    assert is_owner_key(workspace, old)
    assert (workspace.root / ROTATION_LOCK).stat().st_mode & 0o777 == 0o600
    rotate_owner_key(workspace)  # the lock is released once a rotation ends


def test_the_log_refuses_a_second_handover_from_the_same_key(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    """Without the folder's lock (two machines sharing the database), the log itself
    refuses a handover from a key that already handed over."""
    old = workspace.owner_verify_key
    monkeypatch.setattr(owner_keys, "_rotation_lock", lambda root: contextlib.nullcontext())
    second = open_workspace(workspace.root, clock=workspace.clock)
    try:
        outcome = _rotate_again_while_signing_the_first(monkeypatch, workspace, second, clock)
        with pytest.raises(AlreadyExists, match="already hands owner key") as refused:
            rotate_owner_key(workspace)
        assert "another rotation ran against this database" in refused.value.hint
        (first_index,) = outcome
        assert handover_indexes(second) == [first_index]  # one handover, never two
        chain = owner_key_chain(second)
        assert chain.keys[0] == old and chain.boundaries == (first_index,)
        assert is_owner_key(second, old)
    finally:
        second.store.close()


def test_a_rotation_cut_before_its_append_logs_the_handover_before_the_new_key_signs(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut after the .pub names the new key, before the handover is logged: the new key
    is put in place only once its handover is in the log, so a process left running
    never signs with it a tree that does not hold the handover."""
    from modelpact.audit.log import AuditLog

    root = workspace.root
    running = open_workspace(root, clock=workspace.clock)  # a gateway, opened before
    log = AuditLog(running.store, key=running.signing_key, origin=running.log_origin,
                   clock=running.clock)  # fmt: skip
    try:
        old = running.owner_verify_key
        with monkeypatch.context() as patch:
            _interrupt(patch, "_append_once")
            with pytest.raises(StorageUnavailable):
                rotate_owner_key(workspace)
        assert handover_indexes(running) == []
        entry = AdminEntry(time=workspace.clock(), actor="owner", action="test.entry", subject="x")
        log.append(entry)
        with pytest.raises(StorageUnavailable, match="being handed over"):
            log.checkpoint()  # the .pub names the new key: neither key signs
        assert finish_key_swap(root)
        (index,) = handover_indexes(running)  # logged before the new key came into use
        log.append(entry)
        signed = log.checkpoint()  # the running process now signs with the new key
        assert signed.size > index
        fresh = open_workspace(root, clock=workspace.clock)
        try:
            rotation = rotate_owner_key(fresh)
            chain = owner_key_chain(fresh)
        finally:
            fresh.store.close()
        assert rotation.resumed and rotation.index == index
        assert handover_indexes(running) == [index]
        assert chain.keys == (old, rotation.new_key)
        assert chain.open_checkpoint(signed.note).size == signed.size
    finally:
        log.close()
        running.store.close()


def test_finish_key_swap_leaves_a_workspace_that_opens_alone(workspace: Workspace) -> None:
    assert not finish_key_swap(workspace.root)  # nothing under way: nothing moves
    rotate_owner_key(workspace)
    assert not finish_key_swap(workspace.root)
    open_workspace(workspace.root).store.close()


def test_a_process_opened_before_a_rotation_proves_its_handovers(workspace: Workspace) -> None:
    """A running gateway answers /v1/log/handovers right after a rotation, before it
    signs its next checkpoint (its cached key is the old one)."""
    running = open_workspace(workspace.root, clock=workspace.clock)
    try:
        old = running.owner_verify_key  # cached
        rotation = rotate_owner_key(workspace)
        (proof,) = handover_proofs(running, rotation.checkpoint.size)
        assert proof.index == rotation.index
        assert owner_key_chain(running).keys == (old, rotation.new_key)
        assert running.owner_verify_key == rotation.new_key
    finally:
        running.store.close()
