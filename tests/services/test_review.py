"""Access reviews over a workspace with real traffic: predictions through the gateway and
entries appended to its audit log, read back as the clock moves on."""

# ruff: noqa: F811 - the gateway's fixtures are imported by name and requested as arguments

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry, AdminEntry, IncidentEntry
from modelpact.errors import InvalidInput, NotFound
from modelpact.gateway.app import Gateway
from modelpact.services import CharterDesk, PartnerDirectory, Workspace
from modelpact.services.review import Review, ReviewDesk, ReviewRow
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


def row(review: Review, partner: str) -> ReviewRow:
    (found,) = [r for r in review.rows if r.grant.partner == partner and r.grant.model == MODEL]
    return found


def access(at: datetime, *, rows: int, partner: str = "acme", allow: bool = True) -> AccessEntry:
    return AccessEntry(
        action="predict",
        actor=partner,
        charter=f"northwind-{partner}",
        decision="allow" if allow else "deny",
        model=MODEL,
        purpose="fraud-screening",
        reasons=("grant 0",) if allow else ("no grant allows it",),
        rows=rows,
        subject=f"{MODEL}@1.0.0",
        time=at,
        version="1.0.0",
    )


def incident(at: datetime, partner: str = "acme", model: str = MODEL) -> IncidentEntry:
    return IncidentEntry(
        actor=partner,
        charter=f"northwind-{partner}",
        detail="queries far from the training data",
        detector="prada",
        model=model,
        response="throttle",
        severity="warning",
        statistic="0.81",
        step=1,
        subject=f"{partner}/northwind-{partner}/{model}",
        threshold="0.9",
        time=at,
        window=100,
    )


def admin_entries(ws: Workspace, action: str) -> list[AdminEntry]:
    return [e for e in entries(ws) if isinstance(e, AdminEntry) and e.action == action]


def test_gateway_traffic_is_the_last_use_and_the_volume(
    app: Any, ws: Workspace, clock: Clock
) -> None:
    start = clock.now

    async def predict(partner: str, *batches: list[list[float]]) -> None:
        async with client(app, ws, partner=partner) as sdk:
            for batch in batches:
                await sdk.predict(MODEL, np.array(batch))

    run(predict("acme", ROWS, ROWS[:2]))
    clock.advance(days=2)
    run(predict("globex", ROWS[:1]))
    desk = ReviewDesk(ws)
    review = desk.report(clock.now, 30, 14)
    assert review.complete and review.log_size == len(entries(ws))
    acme, globex = row(review, "acme"), row(review, "globex")
    assert (acme.grant.charter, acme.grant.version, acme.grant.versions) == (
        "northwind-acme",
        1,
        "1.*",
    )
    assert acme.grant.actions == ("predict",) and acme.grant.output == "scores"
    assert acme.last_use == start and globex.last_use == clock.now
    assert (acme.rows_window, acme.requests_window, acme.rows_total, acme.requests_total) == (
        7,
        2,
        7,
        2,
    )
    assert (globex.rows_total, globex.requests_total, globex.incidents) == (1, 1, 0)
    assert acme.days_left == 28 and acme.grant.until == start + timedelta(days=30)
    assert acme.flags == () and globex.flags == ()
    # Unused for a day: acme has not come back in two days; globex used it just now.
    shorter = desk.report(clock.now, 1, 14)
    assert row(shorter, "acme").flags == ("unused",) and row(shorter, "globex").flags == ()
    # 28 days left: inside a 28-day horizon, outside a 27-day one.
    assert row(desk.report(clock.now, 30, 28), "acme").flags == ("expiring",)
    assert row(desk.report(clock.now, 30, 27), "acme").flags == ()
    document = review.as_dict()
    (first,) = [g for g in document["grants"] if g["partner"] == "acme"]
    assert first["total"] == {"rows": 7, "requests": 2}
    assert first["last_use"] == start.isoformat(timespec="seconds")


def test_a_moving_clock_counts_windows_incidents_and_flags(
    ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    t0 = clock.now
    for entry in (
        access(t0 + timedelta(days=1), rows=3),
        access(t0 + timedelta(days=5), rows=4),
        access(t0 + timedelta(days=6), rows=9, allow=False),  # denied: no use
        incident(t0 + timedelta(days=6)),
        incident(t0 + timedelta(days=7)),
        incident(t0 + timedelta(days=7), partner="globex", model="other-model"),  # no such grant
        access(t0 + timedelta(days=8), rows=50, partner="globex", allow=False),
    ):
        gateway.log.append(entry)
    desk = ReviewDesk(ws)
    clock.advance(days=20)
    review = desk.report(clock.now, 14, 14)
    acme, globex = row(review, "acme"), row(review, "globex")
    assert acme.last_use == t0 + timedelta(days=5)
    assert (acme.rows_window, acme.requests_window, acme.denied_window) == (7, 2, 1)
    assert (acme.incidents, acme.last_incident) == (2, t0 + timedelta(days=7))
    assert acme.days_left == 10
    assert acme.flags == ("unused", "expiring")  # 15 days since its last use, 10 days left
    assert globex.last_use is None and globex.incidents == 0 and globex.denied_window == 1
    assert globex.flags == ("unused", "expiring")  # in force 20 days, never used
    # A 30-day horizon is not reached yet: in force for 20 days only.
    assert row(desk.report(clock.now, 30, 5), "globex").flags == ()
    # A 10-day window leaves the uses out of the window, not out of the totals.
    narrow = row(desk.report(clock.now, 14, 14, window_days=10), "acme")
    assert (narrow.rows_window, narrow.requests_window, narrow.denied_window) == (0, 0, 0)
    assert (narrow.rows_total, narrow.requests_total) == (7, 2)
    clock.advance(days=11)  # past valid.until
    late = row(desk.report(clock.now, 14, 14), "acme")
    assert late.flags == ("unused", "expired") and late.days_left == -1
    # A bounded read says so, and counts only what it read: the three newest entries hold
    # one of acme's incidents and none of its uses.
    partial = ReviewDesk(ws, max_entries=3).report(clock.now, 14, 14)
    assert not partial.complete and partial.scanned_from == partial.log_size - 3
    bounded = row(partial, "acme")
    assert (bounded.requests_total, bounded.incidents, bounded.last_use) == (0, 1, None)
    with pytest.raises(InvalidInput, match="unused days"):
        desk.report(clock.now, -1, 14)


def test_a_new_charter_version_keeps_the_grants_history(
    ws: Workspace, gateway: Gateway, clock: Clock
) -> None:
    t0 = clock.now
    gateway.log.append(access(t0, rows=2))
    clock.advance(days=1)
    CharterDesk(ws).apply(charter_for(ws, "acme", version=2), source="v2.json")
    review = ReviewDesk(ws).report(clock.now, 30, 14)
    acme = row(review, "acme")
    assert acme.grant.version == 2 and acme.last_use == t0 and acme.in_force_since == t0


def test_keep_and_narrow_are_recorded_only(ws: Workspace) -> None:
    desk = ReviewDesk(ws)
    kept = desk.decide("northwind-acme", MODEL, "keep", reason="used weekly", reviewer="Ada")
    narrowed = desk.decide("northwind-globex", MODEL, "narrow", reason="labels suffice")
    assert kept.partner_status == "active" and narrowed.partner_status == "active"
    assert [p.status for p in PartnerDirectory(ws).all()] == ["active", "active"]
    first, second = admin_entries(ws, "review.decision")
    assert first.actor == "Ada" and first.subject == f"acme/northwind-acme/{MODEL}"
    assert first.detail == {
        "charter": "northwind-acme",
        "decision": "keep",
        "model": MODEL,
        "partner": "acme",
        "reason": "used weekly",
        "reviewer": "Ada",
        "version": 1,
    }
    assert second.detail["decision"] == "narrow" and second.detail["reviewer"] == "owner"
    assert entries(ws)[kept.index] == first


def test_suspend_and_revoke_act_on_the_partner(ws: Workspace) -> None:
    desk = ReviewDesk(ws)
    suspended = desk.decide("northwind-acme", MODEL, "suspend", reason="unused for 90 days")
    assert suspended.partner_status == "suspended"
    assert PartnerDirectory(ws).get("acme").status == "suspended"
    (change,) = admin_entries(ws, "partner.suspend")
    assert change.detail["reason"] == "access review: unused for 90 days"
    revoked = desk.decide("northwind-globex", MODEL, "revoke", reason="pilot over", reviewer="Bo")
    assert revoked.partner_status == "revoked" and PartnerDirectory(ws).get("globex").status == (
        "revoked"
    )
    assert [e.detail["decision"] for e in admin_entries(ws, "review.decision")] == [
        "suspend",
        "revoke",
    ]
    # The grant is still listed (its charter is active), with the partner's status.
    review = ReviewDesk(ws).report(ws.clock(), 30, 14)
    assert row(review, "globex").grant.partner_status == "revoked"


def test_refused_decisions_record_nothing(ws: Workspace) -> None:
    desk = ReviewDesk(ws)
    desk.decide("northwind-globex", MODEL, "revoke", reason="pilot over")
    size = len(entries(ws))
    with pytest.raises(InvalidInput, match="unknown decision 'pause'"):
        desk.decide("northwind-acme", MODEL, "pause", reason="x")
    with pytest.raises(NotFound, match="no charter named nowhere"):
        desk.decide("nowhere", MODEL, "keep", reason="x")
    with pytest.raises(NotFound, match="grants no model other-model"):
        desk.decide("northwind-acme", "other-model", "keep", reason="x")
    with pytest.raises(InvalidInput, match="needs a reason"):
        desk.decide("northwind-acme", MODEL, "keep", reason="  ")
    with pytest.raises(InvalidInput, match="is revoked; cannot suspend"):
        desk.decide("northwind-globex", MODEL, "suspend", reason="again")
    with ws.store.unit_of_work() as uow:
        uow.charters.set_status("northwind-acme", 1, "terminated")
    with pytest.raises(InvalidInput, match="northwind-acme is terminated"):
        desk.decide("northwind-acme", MODEL, "keep", reason="x")
    assert len(entries(ws)) == size
    assert PartnerDirectory(ws).get("acme").status == "active"
