"""Charters expire on their own: the sweep ends them, warns ahead once per threshold, and
prunes what they left in the log once their retention is over, keeping the log verifiable."""

# ruff: noqa: F811 - the gateway's fixtures are imported by name and requested as arguments

from __future__ import annotations

import dataclasses
import functools
import json
import stat
from datetime import timedelta
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.bundle import verify_export
from modelpact.audit.checkpoint import open_checkpoint
from modelpact.audit.entries import (
    AccessEntry,
    AdminEntry,
    OutputEntry,
    PrunedEntry,
    SessionEntry,
)
from modelpact.audit.log import append_within
from modelpact.audit.tree import leaf_hash, verify_inclusion
from modelpact.cli.charter import verify_exit_report
from modelpact.cli.terminal import replace_durably
from modelpact.errors import Denied, StorageUnavailable
from modelpact.gateway.app import Gateway
from modelpact.services import CharterDesk, Workspace
from modelpact.services.audit import AuditDesk
from modelpact.services.envelopes import open_for_partner, seal_for_partner
from modelpact.services.exit import ExitDesk
from modelpact.services.expiry import ExpirySweep, Sweeper
from modelpact.services.key_budget import KeyLimits
from modelpact.services.partner_keys import KeyDestroyed, PartnerDataKeys
from modelpact.services.watermarking import WatermarkDesk
from tests.gateway.conftest import (  # noqa: F401 - fixtures are used by name
    MODEL,
    Clock,
    app,
    charter_for,
    client,
    clock,
    entries,
    gateway,
    onnx_model,
    run,
    ws,
)

ROWS = load_breast_cancer().data[:5].tolist()
ACME, GLOBEX = "northwind-acme", "northwind-globex"
WRITE = functools.partial(replace_durably, mode=0o644)


def admin(ws: Workspace, action: str) -> list[AdminEntry]:
    return [e for e in entries(ws) if isinstance(e, AdminEntry) and e.action == action]


def use_both(app: Any, ws: Workspace) -> list[int]:
    """Each partner makes a request; the indexes of their receipts (acme's first)."""

    async def scenario() -> list[int]:
        async with client(app, ws) as acme, client(app, ws, partner="globex") as globex:
            first = await acme.predict(MODEL, ROWS)
            second = await globex.predict(MODEL, ROWS[:3])
            return [first.receipt.index, second.receipt.index]

    return run(scenario())


def test_a_closed_window_ends_the_charter_without_anyone_terminating_it(
    app: Any, ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    use_both(app, ws)
    sweep = ExpirySweep(ws, write=WRITE)
    assert sweep.run().ended == []  # the windows are open
    clock.advance(days=30, seconds=1)  # both windows closed (30 days)
    done = sweep.run()
    assert sorted(e.charter for e in done.ended) == [ACME, GLOBEX] and not done.failures
    assert {s.status for s in CharterDesk(ws).all()} == {"terminated"}
    for ended in done.ended:
        assert ended.report == ws.root / "exits" / f"{ended.charter}-v1.json"
        assert stat.S_IMODE(ended.report.stat().st_mode) == 0o644
        document = verify_exit_report(
            ended.report.read_text(), ws.owner_verify_key, charter=ended.charter
        )
        assert document["terminated"]["by"] == "expiry"
        assert document["terminated"]["reason"].startswith("the charter expired at ")
    assert [e.subject for e in admin(ws, "charter.terminate")] == [f"{ACME}@v1", f"{GLOBEX}@v1"]
    again = ExpirySweep(ws, write=WRITE).run()  # a restart, or cron while serving
    assert again.ended == [] and again.idle

    async def refused() -> None:  # every later request is refused, and the refusal audited
        async with client(app, ws) as sdk:
            with pytest.raises(Denied):
                await sdk.predict(MODEL, ROWS)
            with pytest.raises(Denied):
                await sdk.open_session()

    before = len(entries(ws))
    run(refused())
    later = entries(ws)[before:]
    assert len(later) >= 2
    assert all(isinstance(e, SessionEntry) and e.decision == "deny" and e.actor == "acme"
               for e in later)  # fmt: skip


def test_warnings_go_out_once_per_version_and_threshold_and_survive_a_restart(
    ws: Workspace, clock: Clock
) -> None:
    sweep = ExpirySweep(ws, write=WRITE, warnings=(14, 1))
    assert sweep.run().warned == []  # 30 days left
    clock.advance(days=17)  # 13 days left: the 14-day warning
    first = sweep.run()
    assert sorted((w.charter, w.days) for w in first.warned) == [(ACME, 14), (GLOBEX, 14)]
    assert sweep.run().warned == []
    assert ExpirySweep(ws, write=WRITE).run().warned == []  # the log remembers, not memory
    clock.advance(days=12, hours=12)  # 12 hours left: the 1-day warning
    last = ExpirySweep(ws, write=WRITE).run()
    assert sorted((w.charter, w.days) for w in last.warned) == [(ACME, 1), (GLOBEX, 1)]
    assert sweep.run().warned == []
    recorded = admin(ws, "charter.expiring")
    assert [(e.subject, e.detail["days"]) for e in recorded] == [
        (f"{ACME}@v1", 14), (f"{GLOBEX}@v1", 14), (f"{ACME}@v1", 1), (f"{GLOBEX}@v1", 1)
    ]  # fmt: skip
    assert recorded[0].detail["hours_left"] == 13 * 24


def test_a_new_version_is_warned_of_again(ws: Workspace, clock: Clock) -> None:
    sweep = ExpirySweep(ws, write=WRITE, warnings=(14,))
    clock.advance(days=20)
    assert len(sweep.run().warned) == 2
    longer = (clock.now + timedelta(days=5)).isoformat()
    CharterDesk(ws).apply(charter_for(ws, "acme", version=2, valid__until=longer), source="v2")
    (warned,) = sweep.run().warned
    assert (warned.charter, warned.version) == (ACME, 2)


def test_retention_end_prunes_the_charters_entries_and_the_log_still_verifies(
    app: Any, ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, exit={"retention_days": 2}), source="v2"
    )
    acme_receipt, globex_receipt = use_both(app, ws)
    gateway.log.checkpoint()
    before = AuditDesk(ws).checkpoint()
    ExitDesk(ws).terminate(ACME, reason="pilot over")
    sweep = ExpirySweep(ws, write=WRITE)
    clock.advance(days=1)
    assert sweep.run().pruned == []  # one day of two
    clock.advance(days=1, seconds=1)
    done = sweep.run()
    (pruned,) = done.pruned
    assert pruned.charter == ACME and pruned.entries >= 2 and pruned.pruned["access"] == 1
    assert sweep.run().pruned == [] and ExpirySweep(ws, write=WRITE).run().pruned == []

    everything = entries(ws)
    gone = [e for e in everything if isinstance(e, PrunedEntry)]
    assert len(gone) == pruned.entries and {e.charter for e in gone} == {ACME}
    assert not any(isinstance(e, AccessEntry) and e.charter == ACME for e in everything)
    assert any(isinstance(e, AccessEntry) and e.charter == GLOBEX for e in everything)
    assert isinstance(everything[acme_receipt], PrunedEntry)
    assert not any(isinstance(e, OutputEntry) and e.request == acme_receipt for e in everything)
    (prune,) = admin(ws, "log.prune")
    assert prune.detail["charter"] == ACME and prune.detail["entries"] == pruned.entries
    assert all(g.prune == pruned.prune_entry for g in gone)

    # The tree did not change: the old checkpoint, every proof and the export verify.
    after = AuditDesk(ws).checkpoint()
    desk = AuditDesk(ws)
    for index in (acme_receipt, globex_receipt):
        evidence = desk.prove(index)
        signed = open_checkpoint(evidence.checkpoint, ws.owner_verify_key, name=ws.log_origin)
        verify_inclusion(index, evidence.size, evidence.leaf_hash, list(evidence.proof),
                         signed.root)  # fmt: skip
    assert desk.prove(globex_receipt).leaf_hash == leaf_hash(
        _stored(ws, globex_receipt)
    )  # the others' payloads are whole
    report = verify_export(desk.export(), ws.owner_verify_key)
    assert report.ok, report.problems
    assert report.pruned == pruned.entries and after.size > before.size

    async def globex_checks() -> None:  # the SDK's own check of another partner's receipt
        async with client(app, ws, partner="globex") as sdk:
            fresh = await sdk.predict(MODEL, ROWS[:1])
            gateway.log.checkpoint()
            await sdk.verify_receipts([fresh.receipt])

    run(globex_checks())


def test_a_pruned_entry_nobody_explains_fails_verification(
    app: Any, ws: Workspace, gateway: Gateway
) -> None:
    acme_receipt, _ = use_both(app, ws)
    text = AuditDesk(ws).export()
    document = json.loads(text)
    document["entries"][acme_receipt]["entry"] = {
        "actor": "acme", "charter": ACME, "prune": acme_receipt + 1,
        "schema": "pruned/v1", "time": "2026-01-01T00:00:00Z", "type": "pruned",
    }  # fmt: skip
    report = verify_export(json.dumps(document), ws.owner_verify_key)
    assert not report.ok
    assert any(f"entry {acme_receipt} is pruned, but no log.prune" in p for p in report.problems)


def test_retention_prunes_only_the_charters_partners_own_entries(
    app: Any, ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    """A refused session open records whoever the request claimed to be, with the charter
    it named: another party's attempt under acme's charter is not acme's to be forgotten."""
    acme_receipt, _ = use_both(app, ws)
    claimed = SessionEntry(
        action="open", actor="globex", charter=ACME, decision="deny", subject="session",
        reasons=("not this charter's partner",), time=clock.now,
    )  # fmt: skip
    with ws.store.unit_of_work() as uow:
        (foreign,) = append_within(uow, [claimed], now=clock.now)
    ExitDesk(ws).terminate(ACME, reason="pilot over")
    clock.advance(days=31)
    (pruned,) = ExpirySweep(ws, write=WRITE).run().pruned
    everything = entries(ws)
    assert isinstance(everything[acme_receipt], PrunedEntry)
    assert everything[foreign.index] == claimed  # kept whole
    assert {e.actor for e in everything if isinstance(e, PrunedEntry)} == {"acme"}
    assert pruned.pruned["session"] == sum(
        1 for e in everything
        if isinstance(e, PrunedEntry) and e.prune == pruned.prune_entry
    ) - pruned.pruned["access"] - pruned.pruned["output"]  # fmt: skip
    AuditDesk(ws).checkpoint()
    report = verify_export(AuditDesk(ws).export(), ws.owner_verify_key)
    assert report.ok, report.problems


def _limited(ws: Workspace) -> None:
    """Tiny key limits, so the partner's data key has later generations and counters."""
    ws.config = dataclasses.replace(ws.config, key_limits=KeyLimits(1, 2**20))
    ws._encryptions = None
    ws._kek = None


def _seal(ws: Workspace, n: int) -> str:
    return seal_for_partner(ws, "acme", ACME, f"secret {n}".encode(), b"ad", kind="t",
                            fields=("key", "state"))  # fmt: skip


def test_an_exit_interrupted_after_the_tombstone_is_completed_by_the_sweep(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tombstone stands, but later generations survived the crash: the sweep does not
    take the tombstone for a finished exit; it runs the exit again, which shreds them."""
    _limited(ws)
    envelopes = [_seal(ws, n) for n in range(3)]
    generations = PartnerDataKeys.name("acme", ACME, 2).rpartition("/")[0]
    assert ws.artifacts.keys(generations)  # generations 2 and 3
    original = PartnerDataKeys._sweep

    def crash(*args: Any) -> None:
        raise StorageUnavailable("the process died while deleting later generations")

    monkeypatch.setattr(PartnerDataKeys, "_sweep", crash)
    with pytest.raises(StorageUnavailable):
        ExitDesk(ws).terminate(ACME, reason="pilot over")
    monkeypatch.setattr(PartnerDataKeys, "_sweep", original)
    assert PartnerDataKeys(ws).tombstone("acme", ACME) is not None
    assert ExitDesk(ws).leftovers("acme", ACME)  # generations and counters survived

    sweep = ExpirySweep(ws, write=WRITE)
    done = sweep.run()
    assert [(e.charter, e.resumed) for e in done.ended] == [(ACME, True)], done.failures
    assert ExitDesk(ws).leftovers("acme", ACME) == []
    assert ws.artifacts.keys(generations) == []
    assert [e.subject for e in admin(ws, "exit.data_key_destroyed")] == [f"acme/{ACME}"]
    for envelope in envelopes:
        with pytest.raises(KeyDestroyed):
            open_for_partner(ws, "acme", ACME, envelope, b"ad", kind="t",
                             fields=("key", "state"), what="a record")  # fmt: skip
    assert sweep.run().ended == [] and ExpirySweep(ws, write=WRITE).run().ended == []


def test_an_exit_whose_destruction_the_log_lacks_is_completed_by_the_sweep(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is gone, but the process died before the log said so: the sweep completes
    the exit, so the log (and the report) record the destruction."""
    original = PartnerDataKeys.destroy

    def destroyed_then_died(self: PartnerDataKeys, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        raise StorageUnavailable("the process died before the log entry")

    monkeypatch.setattr(PartnerDataKeys, "destroy", destroyed_then_died)
    with pytest.raises(StorageUnavailable):
        ExitDesk(ws).terminate(ACME, reason="pilot over")
    monkeypatch.setattr(PartnerDataKeys, "destroy", original)
    assert ExitDesk(ws).leftovers("acme", ACME) == [] and admin(ws, "exit.data_key_destroyed") == []

    done = ExpirySweep(ws, write=WRITE).run()
    assert [(e.charter, e.resumed) for e in done.ended] == [(ACME, True)], done.failures
    assert [e.subject for e in admin(ws, "exit.data_key_destroyed")] == [f"acme/{ACME}"]
    document = verify_exit_report(
        done.ended[0].report.read_text(), ws.owner_verify_key, charter=ACME
    )
    assert document["destroyed"][1]["entry"] is not None


def test_watermark_keys_go_with_the_retention(
    app: Any, ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    for partner in ("acme", "globex"):
        WatermarkDesk(ws).keys(partner)
    ExitDesk(ws).terminate(ACME, reason="pilot over")
    ExitDesk(ws).terminate(GLOBEX, reason="pilot over")
    clock.advance(days=31)
    done = ExpirySweep(ws, write=WRITE).run()
    assert sorted(done.watermarks) == ["acme", "globex"]
    assert [e.subject for e in admin(ws, "watermark.destroyed")] == ["acme", "globex"]


def _stored(ws: Workspace, index: int) -> bytes:
    with ws.store.unit_of_work(read_only=True) as uow:
        return uow.audit.entry(index).entry


def test_the_sweeper_outlives_a_failed_pass_and_stops_when_closed(ws: Workspace) -> None:
    class Flaky(ExpirySweep):
        calls = 0

        def run(self) -> Any:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise RuntimeError("the database went away for a moment")
            return super().run()

    sweeper = Sweeper(Flaky(ws, write=WRITE), interval=3600)
    sweeper.start()
    try:
        assert sweeper.wait(1) and sweeper.last is None  # the first pass failed
        sweeper.wake()
        assert sweeper.wait(2) and sweeper.last is not None and sweeper.last.idle
    finally:
        sweeper.close()
    assert sweeper.passes == 2
