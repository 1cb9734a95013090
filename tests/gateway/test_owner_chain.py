"""A retired owner key stays retired for the SDK: no downgrade through a shorter chain of
handovers, nor across a restart when the client keeps a witness.

The attacker holds a retired key and answers in the gateway's place (a malicious gateway
or a man in the middle): :class:`Forging` passes requests to the real app and replaces
the answers a test names.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelpact.audit.checkpoint import open_checkpoint, sign_checkpoint
from modelpact.client.handover import owner_chain_path
from modelpact.crypto import SigningKey
from modelpact.errors import InvalidInput, LogInconsistent, Tampered
from modelpact.gateway.app import Gateway, create_app
from modelpact.services import Workspace
from modelpact.services.owner_keys import rotate_owner_key
from modelpact.wire import SignedAttestation, attestation_message
from tests.gateway.conftest import MODEL, client, run

ROW = [[0.5] * 30]
Forgery = Callable[[dict[str, Any]], dict[str, Any]]


class Forging(httpx.AsyncBaseTransport):
    """The real app, except for the paths in ``answers``: their JSON is rewritten."""

    def __init__(self, app: Any) -> None:
        self._app = httpx.ASGITransport(app=app)
        self.answers: dict[str, Forgery] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._app.handle_async_request(request)
        forge = self.answers.get(request.url.path)
        if forge is None:
            return response
        await response.aread()
        return httpx.Response(response.status_code, json=forge(response.json()))


def serve(ws: Workspace) -> tuple[Gateway, Any]:
    gateway = Gateway(ws)
    return gateway, create_app(ws, gateway=gateway)


def resign(ws: Workspace, note: str, key: SigningKey, *, origin: str | None = None) -> str:
    """The workspace's checkpoint ``note``, signed by ``key`` instead (for ``origin``)."""
    checkpoint = open_checkpoint(note, ws.owner_verify_key, name=ws.log_origin)
    if origin is not None:
        checkpoint = type(checkpoint)(origin, checkpoint.size, checkpoint.root)
    return sign_checkpoint(checkpoint, key, name=checkpoint.origin)


def attestation_by(key: SigningKey) -> Forgery:
    def forge(answer: dict[str, Any]) -> dict[str, Any]:
        document = SignedAttestation.model_validate(answer).document
        signature = base64.b64encode(key.sign(attestation_message(document))).decode()
        return {"document": answer["document"], "signature": signature}

    return forge


def checkpoint_by(ws: Workspace, key: SigningKey, *, origin: str | None = None) -> Forgery:
    return lambda answer: {"note": resign(ws, answer["note"], key, origin=origin)}


def handovers_by(ws: Workspace, key: SigningKey, *, keep: int) -> Forgery:
    """The gateway's handovers cut to the first ``keep``, proved by ``key``'s checkpoint."""

    def forge(answer: dict[str, Any]) -> dict[str, Any]:
        return {
            "checkpoint": resign(ws, answer["checkpoint"], key),
            "handovers": answer["handovers"][:keep],
        }

    return forge


def test_a_retired_key_is_not_made_current_again_by_a_shorter_chain(ws: Workspace) -> None:
    """The client knows K1 -> K2 -> K3; whoever holds the retired K2 serves a checkpoint
    past K2's handover, an attestation, and the handovers up to K2 only."""
    k1 = ws.owner_verify_key
    rotate_owner_key(ws)
    k2 = ws.owner_key()
    k3 = rotate_owner_key(ws).new_key
    gateway, app = serve(ws)
    forging = Forging(app)

    async def scenario() -> None:
        options: dict[str, Any] = {"owner_key": k1, "attest": False, "transport": forging}
        async with client(app, ws, log_origin=ws.log_origin, **options) as sdk:
            await sdk.checkpoint()  # the real gateway: K1 -> K2 -> K3 followed
            assert sdk.owner_key_in_force == k3
            forging.answers["/v1/log/checkpoint"] = checkpoint_by(ws, k2)
            forging.answers["/v1/log/handovers"] = handovers_by(ws, k2, keep=1)
            with pytest.raises(LogInconsistent, match="rollback") as caught:
                await sdk.checkpoint()
            assert caught.value.evidence  # the retired key's signed checkpoint, kept
            forging.answers["/v1/attestation"] = attestation_by(k2)
            with pytest.raises(LogInconsistent, match="rollback"):
                await sdk.attest()
            assert sdk.owner_key_in_force == k3

    try:
        run(scenario())
    finally:
        gateway.close()


def test_a_client_that_followed_a_handover_refuses_the_retired_key_for_another_log(
    ws: Workspace,
) -> None:
    k1_signing = ws.owner_key()
    k2 = rotate_owner_key(ws).new_key
    gateway, app = serve(ws)
    forging = Forging(app)

    async def scenario() -> None:
        options: dict[str, Any] = {"owner_key": k1_signing.verify_key, "transport": forging}
        async with client(app, ws, attest=False, **options) as sdk:
            await sdk.checkpoint(origin=ws.log_origin)
            assert sdk.owner_key_in_force == k2
            forging.answers["/v1/log/checkpoint"] = checkpoint_by(
                ws, k1_signing, origin="evil.example/log"
            )
            with pytest.raises(InvalidInput, match="follows the owner keys of the log"):
                await sdk.checkpoint(origin="evil.example/log")

    try:
        run(scenario())
    finally:
        gateway.close()


def test_a_client_with_a_witness_keeps_refusing_the_retired_key_after_a_restart(
    ws: Workspace, tmp_path: Path
) -> None:
    """K1 handed over to K2 and is then compromised.  A client that once followed the
    handover, started again, refuses K1's checkpoints past the handover and its
    attestations, though its witness state still holds a checkpoint K1 signed."""
    k1_signing = ws.owner_key()
    k1 = k1_signing.verify_key
    witness = tmp_path / "witness.json"
    gateway, app = serve(ws)

    async def before() -> None:
        async with client(app, ws, owner_key=k1, witness_path=witness) as sdk:
            prediction = await sdk.predict(MODEL, ROW)
            await sdk.verify_receipts([prediction.receipt])

    try:
        run(before())
    finally:
        gateway.close()

    k2 = rotate_owner_key(ws).new_key
    gateway, app = serve(ws)
    forging = Forging(app)

    async def after() -> None:
        # The attestation, signed by K2, is accepted through the handover: the client
        # follows it and keeps the chain beside its witness (which still holds K1's).
        async with client(app, ws, owner_key=k1, witness_path=witness) as sdk:
            await sdk.open_session()
            assert sdk.owner_key_in_force == k2
        assert owner_chain_path(witness).exists()

        # Restarted, against the holder of K1: checkpoints past the handover are refused.
        forging.answers["/v1/log/checkpoint"] = checkpoint_by(ws, k1_signing)
        forging.answers["/v1/log/handovers"] = handovers_by(ws, k1_signing, keep=0)
        options: dict[str, Any] = {"owner_key": k1, "witness_path": witness}
        async with client(
            app, ws, attest=False, log_origin=ws.log_origin, transport=forging, **options
        ) as sdk:
            assert sdk.owner_key_in_force == k2
            with pytest.raises(LogInconsistent, match="rollback"):
                await sdk.checkpoint()
        # ...and so are its attestations.
        forging.answers["/v1/attestation"] = attestation_by(k1_signing)
        async with client(app, ws, transport=forging, **options) as sdk:
            with pytest.raises(LogInconsistent, match="rollback"):
                await sdk.open_session()
            assert sdk.session is None  # no data goes out

        # The honest gateway still works for the restarted client.
        async with client(app, ws, log_origin=ws.log_origin, **options) as sdk:
            prediction = await sdk.predict(MODEL, ROW)
            await sdk.verify_receipts([prediction.receipt])

    try:
        run(after())
    finally:
        gateway.close()


def test_a_kept_chain_that_does_not_verify_stops_the_client(ws: Workspace, tmp_path: Path) -> None:
    k1 = ws.owner_verify_key
    witness = tmp_path / "witness.json"
    rotate_owner_key(ws)
    gateway, app = serve(ws)

    async def follow() -> None:
        async with client(app, ws, owner_key=k1, witness_path=witness) as sdk:
            await sdk.open_session()

    try:
        run(follow())
    finally:
        gateway.close()
    kept = owner_chain_path(witness)
    honest = kept.read_text()
    record = json.loads(honest)
    record["handovers"] = []  # "K1 never handed over"
    kept.write_text(json.dumps(record))
    with pytest.raises(Tampered, match="owner-key chain"):
        client(app, ws, owner_key=k1, witness_path=witness)
    kept.write_text(honest)
    with pytest.raises(Tampered, match="owner-key chain"):  # kept for another owner
        client(app, ws, owner_key=SigningKey.generate().verify_key, witness_path=witness)
    with pytest.raises(InvalidInput, match="for the log"):
        client(app, ws, owner_key=k1, witness_path=witness, log_origin="other.example/log")
