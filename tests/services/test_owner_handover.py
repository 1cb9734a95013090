"""Rotating the owner's signing key: the handover is logged, verifiers follow it, and an
interrupted rotation finishes when run again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelpact.audit.entries import AdminEntry, decode_entry
from modelpact.audit.handover import HANDOVER_ACTION, follow_handovers, handovers_in
from modelpact.audit.handover_export import verify_export_following
from modelpact.crypto import SigningKey, VerifyKey
from modelpact.errors import StorageUnavailable, Tampered
from modelpact.services import Workspace, open_workspace, owner_keys
from modelpact.services.audit import AuditDesk
from modelpact.services.owner_keys import (
    NEXT_KEY,
    PENDING_FILE,
    finish_key_swap,
    is_owner_key,
    owner_key_chain,
    rotate_owner_key,
)


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
        _interrupt(patch, "finish_key_swap")
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
            _interrupt(patch, "finish_key_swap")  # the handover is logged, the swap is not
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
