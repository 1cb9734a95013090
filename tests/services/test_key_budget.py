"""Encryption counters: reserved in blocks (a crash only over-counts), a partner key gets a new
generation past ``rotate_at``, the KEK is refused past ``limit``, and shredding destroys every
generation."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from modelpact.crypto import GCM_SEAL_LIMIT, DataKey, KeyEncryptionKey
from modelpact.errors import InvalidInput, Tampered
from modelpact.services import Workspace
from modelpact.services.envelopes import open_for_partner, seal_for_partner
from modelpact.services.kek_rotation import kek_status, key_warnings, rotate_kek
from modelpact.services.key_budget import EncryptionBudget, KeyExhausted, KeyLimits
from modelpact.services.partner_keys import KeyDestroyed, PartnerDataKeys
from modelpact.services.workspace import WorkspaceConfig
from tests.services.conftest import START

_FIELDS = ("key", "state")


def limited(ws: Workspace, rotate_at: int, limit: int) -> Workspace:
    """The workspace with tiny limits, as ``[keys]`` in modelpact.toml would set them."""
    ws.config = dataclasses.replace(ws.config, key_limits=KeyLimits(rotate_at, limit))
    ws._encryptions = None
    ws._kek = None
    return ws


def seal(ws: Workspace, n: int, charter: str = "c") -> str:
    return seal_for_partner(ws, "acme", charter, f"r{n}".encode(), b"ad", kind="t", fields=_FIELDS)


def open_(ws: Workspace, envelope: str, charter: str = "c") -> bytes:
    return open_for_partner(
        ws, "acme", charter, envelope, b"ad", kind="t", fields=_FIELDS, what="a record"
    )


def test_defaults_stay_well_under_the_gcm_limit() -> None:
    limits = KeyLimits()
    assert (limits.rotate_at, limits.limit) == (2**31, GCM_SEAL_LIMIT) == (2**31, 2**32)
    assert limits.block == 1024
    assert KeyLimits(4, 8).block == 1
    for rotate_at, limit in ((0, 8), (8, 8), (4, 2**32 + 1)):
        with pytest.raises(InvalidInput):
            KeyLimits(rotate_at, limit)


def test_a_crash_loses_at_most_a_block_and_only_over_counts(workspace: Workspace) -> None:
    first = EncryptionBudget(workspace.artifacts, KeyLimits(2**20, 2**21))  # blocks of 1024
    assert [first.spend("key-usage/x") for _ in range(3)] == [1, 2, 3]
    assert first.reserved() == {"key-usage/x": 1024}  # one write for 1024 encryptions
    restarted = EncryptionBudget(workspace.artifacts, KeyLimits(2**20, 2**21))  # a crash
    assert restarted.spend("key-usage/x") == 1025  # never a number handed out before
    assert first.spend("key-usage/x") == 4  # the first process goes on with its block
    assert restarted.reserved() == {"key-usage/x": 2048}


def test_a_partner_key_gets_a_new_generation_past_rotate_at(workspace: Workspace) -> None:
    ws = limited(workspace, rotate_at=3, limit=6)
    envelopes = [seal(ws, n) for n in range(8)]
    generations = [json.loads(e).get("generation", 1) for e in envelopes]
    assert generations == [1, 1, 1, 2, 2, 2, 3, 3]
    assert [open_(ws, e) for e in envelopes] == [f"r{n}".encode() for n in range(8)]
    keys = PartnerDataKeys(ws)
    assert keys.current("acme", "c")[0] == 3
    assert ws.artifacts.exists("partner-key-generations/acme/c/3")
    counts = {u.key_id: u.reserved for u in kek_status(ws).uses}
    assert counts["partner/acme/c/1"] == 4  # three seals and the one that found it due
    assert counts["partner/acme/c/3"] == 2


def test_an_envelope_bound_to_its_generation(workspace: Workspace) -> None:
    ws = limited(workspace, rotate_at=1, limit=2)
    first, second = seal(ws, 0), seal(ws, 1)
    moved = json.loads(second)
    moved["generation"] = 1
    with pytest.raises(Tampered):
        open_(ws, json.dumps(moved))
    forged = json.loads(first) | {"generation": 2}
    with pytest.raises(Tampered):
        open_(ws, json.dumps(forged))
    gone = json.loads(first) | {"generation": 9}
    with pytest.raises(Tampered, match="generation 9"):
        open_(ws, json.dumps(gone))


def test_shredding_destroys_every_generation(workspace: Workspace) -> None:
    ws = limited(workspace, rotate_at=2, limit=100)  # the KEK wraps each generation too
    envelopes = [seal(ws, n) for n in range(7)]  # generations 1 to 4
    other = seal(ws, 99, charter="kept")
    keys = PartnerDataKeys(ws)
    tombstone = keys.destroy("acme", "c", terminated_at=START)
    for envelope in envelopes:
        with pytest.raises(KeyDestroyed):
            open_(ws, envelope)
    assert ws.artifacts.keys("partner-key-generations/acme/c") == []
    assert ws.artifacts.keys("key-usage/partner/acme/c") == []
    assert keys.tombstone("acme", "c") == tombstone
    with pytest.raises(KeyDestroyed):
        seal(ws, 100)  # never made again
    assert keys.destroy("acme", "c", terminated_at=START) == tombstone  # harmless twice
    assert open_(ws, other, charter="kept") == b"r99"  # another charter's key is untouched


def test_a_generation_left_by_an_interrupted_destroy_is_swept_the_second_time(
    workspace: Workspace,
) -> None:
    ws = limited(workspace, rotate_at=1, limit=2)
    seal(ws, 0), seal(ws, 1)
    keys = PartnerDataKeys(ws)
    generation = ws.artifacts.get("partner-key-generations/acme/c/2")
    keys.destroy("acme", "c", terminated_at=START)
    ws.artifacts.put("partner-key-generations/acme/c/2", generation)  # as if the sweep died
    keys.destroy("acme", "c", terminated_at=START)
    assert not ws.artifacts.exists("partner-key-generations/acme/c/2")


def test_the_kek_fails_closed_past_its_limit_and_warns_before(workspace: Workspace) -> None:
    ws = limited(workspace, rotate_at=2, limit=4)
    kek = ws.kek()
    for _ in range(2):
        kek.wrap(DataKey.generate(), b"x")
    assert key_warnings(kek_status(ws)) == []
    kek.wrap(DataKey.generate(), b"x")
    (warning,) = key_warnings(kek_status(ws))
    assert "made 3 wraps, past 2" in warning[0] and "rotate-kek" in warning[1]
    kek.wrap(DataKey.generate(), b"x")
    with pytest.raises(KeyExhausted) as refused:
        kek.wrap(DataKey.generate(), b"x")
    assert "rotate-kek" in refused.value.diagnostics()
    (warning,) = key_warnings(kek_status(ws))
    assert "reached its limit" in warning[0]
    rotate_kek(ws)  # nothing wrapped is stored here: the new KEK starts from zero
    kek.wrap(DataKey.generate(), b"x")
    status = kek_status(ws)
    assert [u.reserved for u in status.uses if u.kind == "kek"] == [1]
    assert key_warnings(status) == []


def test_a_partner_key_older_than_its_counter_moves_to_a_new_generation_at_once(
    workspace: Workspace,
) -> None:
    """A first generation made before seals were counted has no counter: it may have sealed
    any number of records, so it is taken as due, never as fresh."""
    ws = limited(workspace, rotate_at=1000, limit=2000)
    first = seal(ws, 0)
    assert json.loads(first).get("generation", 1) == 1  # a key made now: counted from 0
    ws.encryptions().forget("key-usage/partner/acme/c/1")  # as before counters existed
    fresh = limited(ws, rotate_at=1000, limit=2000)  # a process started after the upgrade
    second = seal(fresh, 1)
    assert json.loads(second)["generation"] == 2
    assert [open_(fresh, e) for e in (first, second)] == [b"r0", b"r1"]
    counts = {u.key_id: u.reserved for u in kek_status(fresh).uses}
    assert counts["partner/acme/c/1"] > 1000 and counts["partner/acme/c/2"] >= 1


def test_a_new_partner_key_generation_starts_its_counter_at_zero(workspace: Workspace) -> None:
    ws = limited(workspace, rotate_at=3, limit=6)
    PartnerDataKeys(ws).key("acme", "c", create=True)
    assert ws.encryptions().reserved()["key-usage/partner/acme/c/1"] == 0
    assert [json.loads(seal(ws, n)).get("generation", 1) for n in range(4)] == [1, 1, 1, 2]


def test_a_kek_from_before_counters_is_due_for_rotation_at_once(workspace: Workspace) -> None:
    """A key file without an id dates from before counting: its count is unknown."""
    ws = limited(workspace, rotate_at=100, limit=200)
    path = ws.root / "keys" / "kek.key"
    path.unlink()  # nothing is wrapped under it yet in this workspace
    KeyEncryptionKey(os.urandom(32)).save(path)  # id "legacy", no date
    ws._kek = None
    status = kek_status(ws)
    assert [(u.key_id, u.reserved) for u in status.uses if u.kind == "kek"] == [("kek/legacy", 100)]
    ws.kek().wrap(DataKey.generate(), b"x")
    (warning,) = key_warnings(kek_status(ws))
    assert "legacy" in warning[0] and "rotate-kek" in warning[1]
    rotate_kek(ws)  # a new KEK, with an id: counted from its first wrap
    assert key_warnings(kek_status(ws)) == []


def test_limits_come_from_the_workspace_configuration() -> None:
    text = WorkspaceConfig("w", key_limits=KeyLimits(100, 200)).to_toml()
    assert WorkspaceConfig.from_toml(text, source="t").key_limits == KeyLimits(100, 200)
    assert "[keys]" not in WorkspaceConfig("w").to_toml()
    bad = text.replace("limit = 200", "limit = 50")
    with pytest.raises(InvalidInput, match="rotate_at < limit"):
        WorkspaceConfig.from_toml(bad, source="t")
    with pytest.raises(InvalidInput, match=r"keys\.limit must be an integer"):
        WorkspaceConfig.from_toml(text.replace("limit = 200", 'limit = "x"'), source="t")
