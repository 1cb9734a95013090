"""Charter apply and decisions over a real workspace, with time under the test's control."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from modelpact.charter import Action, SignedCharter, to_yaml
from modelpact.crypto import SigningKey
from modelpact.errors import (
    AlreadyExists,
    Expired,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    Tampered,
)
from modelpact.policy import AccessRequest
from modelpact.services import CharterDesk, Decider, ModelRegistry, PartnerDirectory, Workspace
from modelpact.store._schema import charters
from modelpact.store.sql import create_store_engine
from tests.factories import make_charter
from tests.services.conftest import START, FixedClock, admin_actions

PARTNER = SigningKey.generate()


@pytest.fixture
def ready(workspace: Workspace, onnx_bytes: bytes) -> Workspace:
    ModelRegistry(workspace).add("fraud-detector", onnx_bytes, version="1.0.0", source="m.onnx")
    PartnerDirectory(workspace).enrol("acme", PARTNER.verify_key.encode())
    return workspace


def envelope(ws: Workspace, version: int = 1, **changes: object) -> str:
    base = make_charter(version=version)
    document = base.to_document()
    document["owner"]["key"] = ws.owner_verify_key.encode()
    document["partner"]["key"] = PARTNER.verify_key.encode()
    for dotted, value in changes.items():
        target = document
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    charter = type(base).model_validate(document)
    signed = CharterDesk(ws).sign(to_yaml(charter), source="c.yaml")
    return signed.countersign(PARTNER).to_json()


REQUEST = AccessRequest(
    partner="acme",
    charter="northwind-acme",
    purpose="fraud-screening",
    action=Action.PREDICT,
    model="fraud-detector",
    version="1.0.0",
    at=START,
)


def test_apply_then_decide(ready: Workspace) -> None:
    decider = Decider(ready)
    assert not decider.decide(REQUEST).allowed  # nothing applied: default deny
    CharterDesk(ready).apply(envelope(ready), source="e.json")
    assert decider.decide(REQUEST).allowed
    assert not decider.decide(replace(REQUEST, partner="stranger")).allowed


def test_new_version_replaces_the_old_policy(ready: Workspace) -> None:
    desk, decider = CharterDesk(ready), Decider(ready)
    desk.apply(envelope(ready), source="e.json")
    assert decider.decide(REQUEST).allowed
    applied = desk.apply(envelope(ready, 2, purposes=["research"]), source="e2.json")
    assert applied.superseded == 1
    assert not decider.decide(REQUEST).allowed
    assert decider.decide(replace(REQUEST, purpose="research")).allowed
    assert [r.status for r in desk.all()] == ["superseded", "active"]
    with pytest.raises(AlreadyExists):
        desk.apply(envelope(ready, 2), source="again.json")
    assert desk.diff("northwind-acme", 1, 2) == (
        "~ version: 1 -> 2",
        "~ purposes[0]: fraud-screening -> research",
    )


def test_window_is_enforced_at_apply_and_at_decision(ready: Workspace, clock: FixedClock) -> None:
    CharterDesk(ready).apply(envelope(ready), source="e.json")
    clock.advance(days=365)
    assert not Decider(ready).decide(replace(REQUEST, at=clock())).allowed
    with pytest.raises(Expired):
        CharterDesk(ready).apply(envelope(ready, 2), source="late.json")


def test_not_yet_valid_charter_is_refused(ready: Workspace, clock: FixedClock) -> None:
    clock.now = START - timedelta(days=120)
    with pytest.raises(Expired):
        CharterDesk(ready).apply(envelope(ready), source="early.json")


def test_suspended_partner_cannot_get_a_charter_applied(ready: Workspace) -> None:
    PartnerDirectory(ready).change_status("acme", "suspend")
    with pytest.raises(InvalidInput, match="suspended"):
        CharterDesk(ready).apply(envelope(ready), source="e.json")


def test_owner_signature_only_is_refused(ready: Workspace) -> None:
    charter = SignedCharter.from_json(envelope(ready)).charter
    owner_only = SignedCharter.sign_by_owner(charter, ready.owner_key()).to_json()
    with pytest.raises(SignatureInvalid):
        CharterDesk(ready).apply(owner_only, source="e.json")
    assert CharterDesk(ready).all() == []
    assert not Decider(ready).decide(REQUEST).allowed


def test_a_row_forged_in_the_database_does_not_count(ready: Workspace) -> None:
    desk = CharterDesk(ready)
    desk.apply(envelope(ready), source="e.json")
    record = desk.all()[0]
    forged = record.envelope.replace('"fraud-screening"', '"anything"')
    url = ready.database_url
    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.update(charters).values(envelope=forged))
    engine.dispose()
    with pytest.raises(Tampered):
        Decider(ready).decide(replace(REQUEST, purpose="anything"))


def test_an_older_envelope_copied_into_the_newer_row_does_not_count(ready: Workspace) -> None:
    desk = CharterDesk(ready)
    desk.apply(envelope(ready), source="e1.json")
    desk.apply(envelope(ready, 2, purposes=["research"]), source="e2.json")
    first = desk.get("northwind-acme", 1)[0]
    url = ready.database_url
    engine = create_store_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.update(charters)
            .where(charters.c.version == 2)
            .values(envelope=first.envelope, digest=first.digest)
        )
    engine.dispose()
    with pytest.raises(Tampered, match="northwind-acme@v2 does not match its record"):
        Decider(ready).decide(REQUEST)


def test_two_active_versions_are_refused(ready: Workspace) -> None:
    desk = CharterDesk(ready)
    desk.apply(envelope(ready), source="e1.json")
    desk.apply(envelope(ready, 2), source="e2.json")
    with ready.store.unit_of_work() as uow:
        uow.charters.set_status("northwind-acme", 1, "active")
    with pytest.raises(Tampered, match="two versions"):
        Decider(ready).decide(REQUEST)


def test_rollback_puts_an_applied_version_back_in_force_and_amendments_go_on(
    ready: Workspace,
) -> None:
    from modelpact.audit.entries import AdminEntry, decode_entry
    from modelpact.services.state_cache import active_record

    desk, decider = CharterDesk(ready), Decider(ready)
    desk.apply(envelope(ready), source="e1.json")
    desk.apply(envelope(ready, 2, purposes=["research"]), source="e2.json")
    assert not decider.decide(REQUEST).allowed
    done = desk.rollback("northwind-acme", to_version=1, reason="  v2 broke the nightly job ")
    assert (done.charter.ref, done.previous) == ("northwind-acme@v1", 2)
    assert decider.decide(REQUEST).allowed  # v1's purpose is back
    assert not decider.decide(replace(REQUEST, purpose="research")).allowed
    assert [r.status for r in desk.all()] == ["active", "superseded"]
    assert desk.get("northwind-acme")[1].version == 1  # the version in force, not the latest
    with ready.store.unit_of_work() as uow:
        found = active_record(uow, "northwind-acme", "acme")  # what sessions authenticate by
        entries = [decode_entry(r.entry) for r in uow.audit.entries(0, uow.audit.size())]
    assert found is not None and found.version == 1
    (event,) = [e for e in entries if isinstance(e, AdminEntry) and e.action == "charter.rollback"]
    assert event.subject == "northwind-acme@v1"
    assert event.detail["previous"] == 2 and event.detail["reason"] == "v2 broke the nightly job"
    assert admin_actions(ready, "northwind-acme@v1") == ["charter.apply", "charter.rollback"]

    # Forward again to v2 (applied before), then an amendment above every version applied.
    assert desk.rollback("northwind-acme", to_version=2, reason="fixed").previous == 1
    with pytest.raises(AlreadyExists, match="at version 2"):
        desk.apply(envelope(ready, 2), source="again.json")
    desk.rollback("northwind-acme", to_version=1, reason="back")
    assert desk.apply(envelope(ready, 3), source="e3.json").superseded == 1
    assert [r.status for r in desk.all()] == ["superseded", "superseded", "active"]


def test_rollback_refuses_what_cannot_be_put_back(ready: Workspace, clock: FixedClock) -> None:
    from modelpact.services.exit import ExitDesk

    desk = CharterDesk(ready)
    with pytest.raises(NotFound, match="no charter northwind-acme"):
        desk.rollback("northwind-acme", to_version=1, reason="r")
    desk.apply(envelope(ready), source="e1.json")
    desk.apply(envelope(ready, 2, valid__until="2027-12-01T00:00:00+00:00"), source="e2.json")
    with pytest.raises(InvalidInput, match="say why"):
        desk.rollback("northwind-acme", to_version=1, reason="  ")
    with pytest.raises(InvalidInput, match="v2 is already in force"):
        desk.rollback("northwind-acme", to_version=2, reason="r")
    with pytest.raises(NotFound, match="no version 7"):
        desk.rollback("northwind-acme", to_version=7, reason="r")
    clock.advance(days=200)  # past v1's window, inside v2's
    with pytest.raises(Expired, match="northwind-acme@v1 is not valid now"):
        desk.rollback("northwind-acme", to_version=1, reason="r")
    assert [r.status for r in desk.all()] == ["superseded", "active"]  # nothing changed
    ExitDesk(ready).terminate("northwind-acme", reason="done")
    with pytest.raises(InvalidInput, match="v2 is terminated"):
        desk.rollback("northwind-acme", to_version=1, reason="r")
