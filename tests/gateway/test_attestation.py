"""Attestation end to end: the SDK checks what serves it before it sends any data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import modelpact
from modelpact.charter import AttestationPins, SignedCharter
from modelpact.errors import AttestationFailed, Denied, Tampered
from modelpact.gateway.app import Gateway, create_app
from modelpact.runtime.measurement import Measurement, measure_code, measure_dependencies
from modelpact.services import CharterDesk, ModelRegistry, Workspace
from modelpact.services.attestation import Attestor
from tests.gateway.conftest import KEYS, MODEL, N_FEATURES, charter_for, client, entries, raw, run

ROW = [[0.5] * N_FEATURES]


def registered_digest(ws: Workspace, version: str = "1.0.0") -> str:
    return ModelRegistry(ws).get_version(MODEL, version).digest


def pinned(ws: Workspace, pins: AttestationPins) -> SignedCharter:
    """Version 2 of acme's charter, pinning ``pins``; applied, and returned countersigned."""
    envelope = charter_for(ws, "acme", version=2, attestation=pins.model_dump(exclude_none=True))
    CharterDesk(ws).apply(envelope, source="v2.json")
    return SignedCharter.from_json(envelope, source="v2.json")


class CopiedCode:
    """The software provider measuring a copy of the package, so a test can change a file."""

    kind = "software"

    def __init__(self, root: Path) -> None:
        self.root = root

    def measurement(self) -> Measurement:
        code, files = measure_code(self.root)
        dependencies, count = measure_dependencies()
        return Measurement(code, dependencies, files, count, "3.11")


def test_the_sdk_attests_then_predicts_and_the_attestation_is_audited(
    app: Any, ws: Workspace
) -> None:
    async def scenario() -> None:
        async with client(app, ws) as sdk:
            document = await sdk.attest()
            assert document.provider == "software"
            assert document.charter.charter == "northwind-acme"
            (model,) = document.models
            assert (model.model, model.version) == (MODEL, "1.0.0")
            assert model.artifact == registered_digest(ws)
            assert document.isolation["model_runtime"] == "in-process"
            await sdk.predict(MODEL, ROW)

    run(scenario())
    attested = [e for e in entries(ws) if e.type == "session" and e.action == "attest"]
    # Once as the session opened (an SDK with the owner's key attests by default), once asked.
    assert len(attested) == 2 and attested[0].reasons[0].startswith("attestation sha256:")


def test_no_session_no_attestation_and_a_bad_nonce_is_refused(app: Any, ws: Workspace) -> None:
    async def scenario() -> None:
        async with raw(app) as http:
            response = await http.get("/v1/attestation", params={"nonce": "x" * 43})
            assert response.status_code == 401
            grant = await client(app, ws).open_session()
            headers = {"Authorization": f"Bearer {grant.token}"}
            for nonce in ("short", "x" * 129, "not base64url!" * 3):
                reply = await http.get("/v1/attestation", params={"nonce": nonce}, headers=headers)
                assert reply.status_code == 422, nonce
                assert reply.headers["content-type"] == "application/problem+json"

    run(scenario())


def test_pins_in_the_countersigned_charter_hold_and_a_swapped_model_is_refused(
    ws: Workspace, gateway: Gateway, onnx_model: bytes
) -> None:
    measured = gateway.attestor._provider.measurement()
    pins = AttestationPins(
        code=measured.code,
        dependencies=measured.dependencies,
        models={f"{MODEL}@1.0.0": registered_digest(ws)},
    )
    countersigned = pinned(ws, pins).charter
    app = create_app(ws, gateway=gateway)

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.attest(countersigned=countersigned)
            # The owner registers and serves another version the charter does not pin.
            ModelRegistry(ws).add(MODEL, onnx_model, version="1.1.0", source="m.onnx")
            with pytest.raises(AttestationFailed, match=f"{MODEL}@1.1.0, which the charter"):
                await sdk.attest(countersigned=countersigned)
            wrong = pins.model_copy(update={"models": {f"{MODEL}@1.1.0": measured.code}})
            with pytest.raises(AttestationFailed, match="swapped artifact"):
                await sdk.attest(pins=wrong)

    run(scenario())


def test_a_changed_serving_file_changes_the_measurement_and_the_sdk_refuses(
    ws: Workspace, tmp_path: Path
) -> None:
    code = tmp_path / "modelpact"
    shutil.copytree(
        Path(modelpact.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__")
    )
    gateway = Gateway(ws)
    gateway.attestor = Attestor(
        ws, sessions=gateway.sessions, models=gateway.models, provider=CopiedCode(code)
    )
    app = create_app(ws, gateway=gateway)
    first = CopiedCode(code).measurement()
    pins = AttestationPins(code=first.code)

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.attest(pins=pins)
            served = code / "gateway" / "app.py"
            served.write_bytes(served.read_bytes() + b"\n# a change nobody agreed to\n")
            with pytest.raises(AttestationFailed, match="serving code measures"):
                await sdk.attest(pins=pins)

    try:
        run(scenario())
    finally:
        gateway.close()


def test_a_tampered_artifact_makes_the_attestation_fail(ws: Workspace) -> None:
    gateway = Gateway(ws)  # a fresh process: the model is not loaded yet
    app = create_app(ws, gateway=gateway)
    (stored,) = (ws.root / "artifacts").rglob("*.enc")
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0x01
    os.chmod(stored, 0o600)
    stored.write_bytes(bytes(data))

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            with pytest.raises(Tampered):
                await sdk.attest()

    try:
        run(scenario())
    finally:
        gateway.close()


def test_attesting_needs_the_owner_key_and_a_session_that_holds(app: Any, ws: Workspace) -> None:
    from modelpact.client import AsyncPartnerClient
    from modelpact.errors import InvalidInput
    from modelpact.services import PartnerDirectory

    with pytest.raises(InvalidInput, match="owner's public key"):
        AsyncPartnerClient(
            "http://gateway",
            partner="acme",
            key=KEYS["acme"],
            charter="c",
            purpose="p",
            attest=True,
        )

    async def scenario() -> None:
        async with client(app, ws, owner_key=None) as sdk:
            with pytest.raises(InvalidInput, match="owner's public key"):
                await sdk.attest()
        async with client(app, ws) as sdk:
            await sdk.attest()
            PartnerDirectory(ws).change_status("acme", "revoke")
            with pytest.raises(Denied, match="revoked"):
                await sdk.attest()

    run(scenario())


def test_with_the_countersigned_charter_every_session_attests_before_any_data(
    ws: Workspace, gateway: Gateway
) -> None:
    good = pinned(ws, AttestationPins(models={f"{MODEL}@1.0.0": registered_digest(ws)})).charter
    app = create_app(ws, gateway=gateway)

    async def scenario() -> None:
        async with client(app, ws, countersigned=good) as sdk:
            await sdk.predict(MODEL, ROW)
        kinds = [(e.type, getattr(e, "action", "")) for e in entries(ws)[-2:]]
        assert kinds == [("session", "attest"), ("access", "predict")]
        wrong = pinned_again(ws, AttestationPins(models={f"{MODEL}@1.0.0": "sha256:" + "0" * 64}))
        before = len(entries(ws))
        async with client(app, ws, countersigned=wrong) as sdk:
            with pytest.raises(AttestationFailed, match="swapped artifact"):
                await sdk.predict(MODEL, ROW)
            assert sdk.session is None  # the session that failed is not used
        after = entries(ws)[before:]
        assert [e.type for e in after] == ["session", "session"]  # opened, attested; no access

    run(scenario())


def pinned_again(ws: Workspace, pins: AttestationPins) -> Any:
    envelope = charter_for(ws, "acme", version=3, attestation=pins.model_dump(exclude_none=True))
    CharterDesk(ws).apply(envelope, source="v3.json")
    return SignedCharter.from_json(envelope, source="v3.json").charter
