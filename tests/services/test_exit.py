"""The exit: a charter terminated through the service while the gateway serves.

Sealed records of the terminated partner no longer open (tried, not assumed), the other
partner's still do; the partner's next request is refused and audited; the signed exit
report verifies and any change to it fails; an interrupted exit completes on a rerun.
"""

# ruff: noqa: F811 - the gateway's fixtures are imported by name and requested as arguments

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry, AdminEntry, SessionEntry
from modelpact.cli.charter import verify_exit_report
from modelpact.crypto import SigningKey, canonical_json
from modelpact.errors import (
    Denied,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    StorageUnavailable,
    Tampered,
)
from modelpact.gateway.app import Gateway
from modelpact.services import CharterDesk, Workspace
from modelpact.services.envelopes import seal_for_partner
from modelpact.services.exit import REPORT_PREFIX, ExitDesk, ExitReport
from modelpact.services.monitoring import _open_state
from modelpact.services.partner_keys import KeyDestroyed, PartnerDataKeys
from modelpact.services.watermarking import WatermarkDesk
from tests.gateway.conftest import (  # noqa: F401 - fixtures are used by name
    MODEL,
    Clock,
    app,
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


def sealed_watch(ws: Workspace, partner: str, charter: str) -> str:
    with ws.store.unit_of_work(read_only=True) as uow:
        record = uow.monitor.state(partner, charter, MODEL)
    assert record is not None
    return record.state


def watermark_row(ws: Workspace, partner: str) -> str | None:
    with ws.store.unit_of_work(read_only=True) as uow:
        return uow.watermarks.key(partner)


def admin(ws: Workspace, action: str) -> list[AdminEntry]:
    return [e for e in entries(ws) if isinstance(e, AdminEntry) and e.action == action]


def use_both(app: Any, ws: Workspace, gateway: Gateway) -> None:
    """Each partner makes two requests; the monitor saves its sealed watches."""

    async def scenario() -> None:
        async with client(app, ws) as acme, client(app, ws, partner="globex") as globex:
            await acme.predict(MODEL, ROWS)
            await acme.predict(MODEL, ROWS[:2])
            await globex.predict(MODEL, ROWS[:3])

    run(scenario())
    gateway.monitor.flush()
    gateway.monitor.save()


def test_terminating_shreds_the_partners_data_refuses_it_and_reports(
    app: Any, ws: Workspace, gateway: Gateway
) -> None:
    use_both(app, ws, gateway)
    acme_watch, globex_watch = sealed_watch(ws, "acme", ACME), sealed_watch(ws, "globex", GLOBEX)
    assert json.loads(_open_state(ws, ("acme", ACME, MODEL), acme_watch))  # opens today
    watermark_key = watermark_row(ws, "acme")
    assert watermark_key is not None

    async def refused_after_exit() -> ExitReport:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, ROWS[:1])  # a live session under the charter
            report = ExitDesk(ws).terminate(ACME, reason="pilot over")
            assert report.partner == "acme" and not report.resumed
            with pytest.raises(Denied):
                await sdk.predict(MODEL, ROWS[:1])
            with pytest.raises(Denied):
                await sdk.open_session()
        return report

    size_before = len(entries(ws))
    report = run(refused_after_exit())

    # At once: terminated, and the partner's next requests refused and audited as denies.
    record, _ = CharterDesk(ws).get(ACME)
    assert record.status == "terminated"
    (terminate,) = admin(ws, "charter.terminate")
    assert terminate.detail["reason"] == "pilot over" and terminate.detail["sessions_revoked"] == 2
    after = entries(ws)[size_before:]
    denied = [
        e
        for e in after
        if isinstance(e, (SessionEntry, AccessEntry)) and e.actor == "acme" and e.decision == "deny"
    ]
    assert len(denied) >= 2

    # Crypto-shredding: acme's sealed watch no longer opens (tried); globex's still does.
    with pytest.raises(KeyDestroyed):
        _open_state(ws, ("acme", ACME, MODEL), acme_watch)
    assert json.loads(_open_state(ws, ("globex", GLOBEX, MODEL), globex_watch))
    with ws.store.unit_of_work(read_only=True) as uow:
        assert uow.monitor.state("acme", ACME, MODEL) is None  # the rows went too
    with pytest.raises(KeyDestroyed):  # and no new key is ever made for the charter
        seal_for_partner(ws, "acme", ACME, b"x", b"ad", kind="k", fields=("a", "b"))
    assert (ws.root / "artifacts" / "partner-keys" / "acme" / ACME).read_bytes().find(
        b"wrapped"
    ) == -1
    gateway.monitor.save()  # a watch the gateway still held is dropped, not sealed again
    with ws.store.unit_of_work(read_only=True) as uow:
        assert uow.monitor.state("acme", ACME, MODEL) is None

    # Kept: watermark keys and marks, until the retention counted from the termination.
    assert watermark_row(ws, "acme") == watermark_key
    assert [e.subject for e in admin(ws, "exit.watch_states_deleted")] == [f"acme/{ACME}"]
    assert [e.subject for e in admin(ws, "exit.data_key_destroyed")] == [f"acme/{ACME}"]

    # The other partner carries on.
    async def globex_carries_on() -> None:
        async with client(app, ws, partner="globex") as sdk:
            await sdk.predict(MODEL, ROWS[:1])

    run(globex_carries_on())

    # The report verifies and says what happened.
    document = verify_exit_report(report.text, ws.owner_verify_key, charter=ACME)
    assert document["charter"]["partner"] == "acme"
    assert document["usage"]["models"] == [
        {"model": MODEL, "version": "1.0.0", "requests": 3, "rows": 8}
    ]
    assert document["usage"]["metered"]["rows"] == 8
    assert document["usage"]["denials"] == 0  # the refusals above came after the report
    assert document["usage"]["sessions_opened"] == 2
    assert document["terminated"]["reason"] == "pilot over"
    destroyed = {d["key"] for d in document["destroyed"] if "key" in d}
    assert destroyed == {f"partner-keys/acme/{ACME}"}
    assert all(d["entry"] is not None for d in document["destroyed"])
    retained = report.terminated_at + timedelta(days=30)
    assert document["retention"]["until"] == retained.isoformat()
    assert document["kept"][0]["until"] == retained.isoformat()
    assert "default" in document["outputs"]["basis"]
    assert document["checkpoint"]["size"] > document["terminated"]["entry"]


def test_any_change_to_the_report_fails(app: Any, ws: Workspace, gateway: Gateway) -> None:
    use_both(app, ws, gateway)
    text = ExitDesk(ws).terminate(ACME, reason="pilot over").text
    key = ws.owner_verify_key
    verify_exit_report(text, key, charter=ACME)

    changed = text.replace('"rows": 7', '"rows": 70')
    assert changed != text
    with pytest.raises(SignatureInvalid):
        verify_exit_report(changed, key)
    lines = text.splitlines()
    reason = next(i for i, line in enumerate(lines) if '"reason": "pilot over"' in line)
    with pytest.raises(Tampered):  # a removed line
        verify_exit_report("\n".join(lines[:reason] + lines[reason + 1 :]), key)
    with pytest.raises(Tampered):
        verify_exit_report(text, key, charter=GLOBEX)
    with pytest.raises(Tampered):
        verify_exit_report(text, SigningKey.generate().verify_key)
    with pytest.raises(Tampered):
        verify_exit_report("not json", key)

    # Re-signed after swapping in a proof for another entry: the checkpoint check catches it.
    envelope = json.loads(text)
    envelope["report"]["checkpoint"]["index"] = 0
    resigned = ws.owner_key().sign(REPORT_PREFIX + canonical_json(envelope["report"]))
    import base64

    envelope["signature"]["value"] = base64.b64encode(resigned).decode()
    with pytest.raises(Tampered):
        verify_exit_report(json.dumps(envelope), key)


def test_an_interrupted_exit_completes_when_run_again(
    app: Any, ws: Workspace, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_both(app, ws, gateway)
    original = PartnerDataKeys.destroy

    def disk_gone(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable("cannot delete artifact: no space left")

    monkeypatch.setattr(PartnerDataKeys, "destroy", disk_gone)  # a fault we cannot cause
    with pytest.raises(StorageUnavailable):
        ExitDesk(ws).terminate(ACME, reason="pilot over")
    assert CharterDesk(ws).get(ACME)[0].status == "terminated"  # step 1 held
    assert admin(ws, "exit.data_key_destroyed") == []  # nothing claimed that did not happen
    monkeypatch.setattr(PartnerDataKeys, "destroy", original)

    report = ExitDesk(ws).terminate(ACME, reason="asked again")
    assert report.resumed
    assert len(admin(ws, "charter.terminate")) == 1
    assert len(admin(ws, "exit.data_key_destroyed")) == 1
    document = verify_exit_report(report.text, ws.owner_verify_key, charter=ACME)
    assert document["terminated"]["reason"] == "pilot over"  # the first, on the record
    with pytest.raises(KeyDestroyed):
        PartnerDataKeys(ws).key("acme", ACME)
    again = ExitDesk(ws).terminate(ACME, reason="and again")  # idempotent
    assert len(admin(ws, "exit.data_key_destroyed")) == 1
    assert verify_exit_report(again.text, ws.owner_verify_key)["charter"]["id"] == ACME


def test_watermark_retention_counts_from_the_termination(
    app: Any, ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    use_both(app, ws, gateway)
    desk = WatermarkDesk(ws)
    valid_until = CharterDesk(ws).get(ACME)[1].valid.until
    assert valid_until is not None
    assert desk.retained_until("acme") == valid_until + timedelta(days=30)
    report = ExitDesk(ws).terminate(ACME, reason="pilot over")
    assert desk.retained_until("acme") == report.terminated_at + timedelta(days=30)
    clock.advance(days=29)
    assert [e.destroyed for e in desk.expire()] == [False, False]
    clock.advance(days=2)  # past the termination's retention, long before valid.until's
    gone = {e.partner: e.destroyed for e in desk.expire()}
    assert gone == {"acme": True, "globex": False}
    assert watermark_row(ws, "acme") is None and watermark_row(ws, "globex") is not None


def test_expired_charters_exit_the_same_way(app: Any, ws: Workspace, clock: Clock) -> None:
    assert ExitDesk(ws).terminate_expired() == []
    clock.advance(days=31)  # both charters' windows have closed
    reports = ExitDesk(ws).terminate_expired()
    assert sorted(r.charter for r in reports) == [ACME, GLOBEX]
    assert {e.actor for e in admin(ws, "charter.terminate")} == {"expiry"}
    for report in reports:
        verify_exit_report(report.text, ws.owner_verify_key, charter=report.charter)
    assert ExitDesk(ws).terminate_expired() == []


def test_a_terminated_charter_is_not_applied_again(ws: Workspace) -> None:
    from tests.gateway.conftest import charter_for

    ExitDesk(ws).terminate(ACME, reason="pilot over")
    with pytest.raises(InvalidInput, match="was terminated; a terminated charter is not applied"):
        CharterDesk(ws).apply(charter_for(ws, "acme", version=2), source="v2.json")
    assert CharterDesk(ws).get(ACME)[0].status == "terminated"


def test_a_reason_is_required_and_the_charter_must_exist(ws: Workspace) -> None:
    with pytest.raises(InvalidInput):
        ExitDesk(ws).terminate(ACME, reason="  ")
    with pytest.raises(NotFound):
        ExitDesk(ws).terminate("no-such-charter", reason="typo")
    assert CharterDesk(ws).get(ACME)[0].status == "active"


def test_the_exit_on_both_stores(workspace: Workspace, onnx_model: bytes) -> None:
    """Without a gateway, on SQLite and PostgreSQL: sessions of that charter only are revoked,
    the partner's sealed watch no longer opens, the other's does, the report verifies."""
    import hashlib

    from modelpact.services import ModelRegistry, PartnerDirectory
    from modelpact.services.monitoring import _seal_state
    from modelpact.store import MonitorStateRecord, SessionRecord
    from tests.gateway.conftest import KEYS, charter_for

    ws = workspace
    ModelRegistry(ws).add(MODEL, onnx_model, version="1.0.0", source="m.onnx")
    for partner, key in KEYS.items():
        PartnerDirectory(ws).enrol(partner, key.verify_key.encode())
        CharterDesk(ws).apply(charter_for(ws, partner), source="e.json")
    now = ws.clock()
    sealed = {}
    with ws.store.unit_of_work() as uow:
        for n, (partner, charter) in enumerate([("acme", ACME), ("globex", GLOBEX)]):
            uow.sessions.add(
                SessionRecord(
                    token_hash=hashlib.sha256(charter.encode()).digest(),
                    partner_id=partner,
                    charter_id=charter,
                    charter_version=1,
                    purpose="fraud-screening",
                    issued_at=now,
                    expires_at=now + timedelta(minutes=15),
                )
            )
            watch = (partner, charter, MODEL)
            sealed[partner] = _seal_state(ws, watch, json.dumps({"queries": n + 1}))
            uow.monitor.save_state(
                MonitorStateRecord(*watch, state=sealed[partner], updated_at=now)
            )

    report = ExitDesk(ws).terminate(ACME, reason="pilot over")

    with ws.store.unit_of_work(read_only=True) as uow:
        acme = uow.sessions.get(hashlib.sha256(ACME.encode()).digest())
        globex = uow.sessions.get(hashlib.sha256(GLOBEX.encode()).digest())
        assert uow.monitor.state("acme", ACME, MODEL) is None
        assert uow.monitor.state("globex", GLOBEX, MODEL) is not None
    assert acme.revoked_at == now and globex.revoked_at is None
    with pytest.raises(KeyDestroyed):
        _open_state(ws, ("acme", ACME, MODEL), sealed["acme"])
    assert json.loads(_open_state(ws, ("globex", GLOBEX, MODEL), sealed["globex"])) == {
        "queries": 2
    }
    document = verify_exit_report(report.text, ws.owner_verify_key, charter=ACME)
    assert document["terminated"]["sessions_revoked"] == 1
    assert document["destroyed"][0]["count"] == 1
