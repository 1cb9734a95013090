"""After the owner's key is rotated, partners who know only the charter's (old) key follow
the handover: checkpoints, receipts, attestations and the witness all carry on."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from modelpact.audit.handover import handover_from_entry
from modelpact.crypto import SigningKey
from modelpact.errors import SignatureInvalid
from modelpact.gateway.app import Gateway, create_app
from modelpact.services import CharterDesk, Workspace
from modelpact.services.owner_keys import rotate_owner_key
from modelpact.wire import HandoverChain
from tests.gateway.conftest import MODEL, charter_for, client, raw, run

ROW = [[0.5] * 30]


def serve(ws: Workspace) -> tuple[Gateway, Any]:
    gateway = Gateway(ws)
    return gateway, create_app(ws, gateway=gateway)


def test_a_partner_that_knew_only_the_old_key_follows_the_handover(
    ws: Workspace, tmp_path: Path
) -> None:
    old = ws.owner_verify_key
    witness = tmp_path / "witness.json"
    gateway, app = serve(ws)

    async def before() -> None:
        async with client(app, ws, owner_key=old, witness_path=witness) as sdk:
            prediction = await sdk.predict(MODEL, ROW)
            await sdk.verify_receipts([prediction.receipt])

    try:
        run(before())
    finally:
        gateway.close()
    assert witness.exists()  # holds a checkpoint the old key signed

    rotation = rotate_owner_key(ws)  # the gateway is stopped, as the docs ask
    gateway, app = serve(ws)

    async def after() -> None:
        # Sessions open under the charter the old key signed; the attestation (new key)
        # is accepted through the handover, and so are checkpoints and receipts.
        async with client(app, ws, owner_key=old, witness_path=witness) as sdk:
            prediction = await sdk.predict(MODEL, ROW)
            checkpoint = await sdk.verify_receipts([prediction.receipt])
            assert checkpoint.size > rotation.index
            assert sdk.owner_key_in_force == rotation.new_key
        async with raw(app) as http:
            chain = HandoverChain.model_validate((await http.get("/v1/log/handovers")).json())
        [item] = chain.handovers
        handover = handover_from_entry(base64.b64decode(item.entry))
        assert handover is not None and handover.statement.old_key == old
        assert item.index == rotation.index

    try:
        run(after())
    finally:
        gateway.close()


def test_a_stranger_key_does_not_reach_the_new_owner_key(ws: Workspace) -> None:
    rotate_owner_key(ws)
    gateway, app = serve(ws)

    async def scenario() -> None:
        stranger = SigningKey.generate().verify_key
        async with client(app, ws, owner_key=stranger, attest=False) as sdk:
            prediction = await sdk.predict(MODEL, ROW)
            with pytest.raises(SignatureInvalid):
                await sdk.verify_receipts([prediction.receipt])

    try:
        run(scenario())
    finally:
        gateway.close()


def test_stored_charters_signed_by_the_old_key_stay_valid_and_new_ones_use_the_new_key(
    ws: Workspace,
) -> None:
    desk = CharterDesk(ws)
    [record, *_] = desk.all()
    old_owner = desk.trusted(record).owner.verify_key
    rotate_owner_key(ws)
    assert desk.trusted(record).owner.verify_key == old_owner  # history stays valid
    applied = desk.apply(charter_for(ws, "acme", version=2), source="v2.json")
    assert applied.charter.owner.verify_key == ws.owner_verify_key != old_owner


def test_an_exit_report_after_a_rotation_verifies_with_the_charters_owner_key(
    ws: Workspace,
) -> None:
    import json

    from modelpact.cli.charter import verify_exit_report
    from modelpact.errors import Tampered
    from modelpact.services.exit import ExitDesk

    old = ws.owner_verify_key
    rotate_owner_key(ws)
    text = ExitDesk(ws).terminate("northwind-acme", reason="pilot over").text
    document = verify_exit_report(text, old, charter="northwind-acme")
    assert len(document["checkpoint"]["handovers"]) == 1
    assert json.loads(text)["signature"]["key"] == ws.owner_verify_key.encode()
    # Without the handovers, the charter's key does not reach the key that signed.
    envelope = json.loads(text)
    del envelope["report"]["checkpoint"]["handovers"]
    with pytest.raises(Tampered):
        verify_exit_report(json.dumps(envelope), old, charter="northwind-acme")
    # Nor does a key the owner never had.
    with pytest.raises(Tampered):
        verify_exit_report(text, SigningKey.generate().verify_key, charter="northwind-acme")
