"""The gateway with model workers: it never decrypts a model, and a crashed worker costs one
request a 503 (audited), not the gateway."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest

from modelpact.errors import ServerError
from modelpact.gateway.app import Gateway, create_app
from modelpact.services import ModelRegistry, Workspace
from modelpact.services.model_workers import WorkerPool
from modelpact.services.serving import ModelServer
from tests.gateway.conftest import MODEL, N_FEATURES, client, entries, raw, run

ROW = [[0.5] * N_FEATURES]


@pytest.fixture
def isolated(ws: Workspace) -> Any:
    gateway = Gateway(ws, workers=WorkerPool(ws.root, size=1, timeout=20.0))
    yield gateway
    gateway.close()


def test_the_gateway_process_never_decrypts_a_model(
    ws: Workspace, isolated: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(*_: Any, **__: Any) -> Any:
        raise AssertionError("the gateway process decrypted or loaded a model")

    for name in ("decrypt", "verify"):
        monkeypatch.setattr(ModelRegistry, name, forbidden)
    monkeypatch.setattr(ModelServer, "_load", forbidden)
    app = create_app(ws, gateway=isolated)

    async def scenario() -> None:
        try:
            async with client(app, ws) as sdk:
                document = await sdk.attest()
                assert document.isolation["model_runtime"] == "worker-processes"
                assert document.models[0].artifact == (
                    ModelRegistry(ws).get_version(MODEL, "1.0.0").digest
                )
                first = await sdk.predict(MODEL, ROW)
                again = await sdk.predict(MODEL, ROW)  # inline path, answered by the worker
                assert first.outputs == again.outputs
                token = sdk.session.token  # type: ignore[union-attr]
            async with raw(app) as http:
                headers = {"Authorization": f"Bearer {token}"}
                meta = await http.get(f"/v2/models/{MODEL}", headers=headers)
                assert meta.status_code == 200, meta.text
                assert meta.json()["inputs"][0]["shape"][-1] == N_FEATURES
                body = {
                    "inputs": [
                        {
                            "name": meta.json()["inputs"][0]["name"],
                            "shape": [1, N_FEATURES],
                            "datatype": "FP32",
                            "data": ROW[0],
                        }
                    ]
                }
                infer = await http.post(f"/v2/models/{MODEL}/infer", json=body, headers=headers)
                assert infer.status_code == 200, infer.text
        finally:
            await isolated.workers.aclose()  # type: ignore[union-attr]

    run(scenario())


def test_a_crashed_worker_costs_one_request_an_audited_503(
    ws: Workspace, isolated: Gateway
) -> None:
    app = create_app(ws, gateway=isolated)
    pool = isolated.workers
    assert pool is not None

    async def scenario() -> None:
        try:
            async with client(app, ws) as sdk, raw(app) as http:
                await sdk.predict(MODEL, ROW)
                headers = {"Authorization": f"Bearer {sdk.session.token}"}  # type: ignore[union-attr]
                (pid,) = pool.pids()

                async def post() -> Any:
                    return await http.post(
                        f"/v1/models/{MODEL}/predict", json={"rows": ROW}, headers=headers
                    )

                os.kill(pid, signal.SIGSTOP)  # the next request is in flight when it dies
                in_flight = asyncio.ensure_future(post())
                await asyncio.sleep(0.5)
                os.kill(pid, signal.SIGKILL)
                failed = await in_flight
                assert failed.status_code == 503, failed.text
                assert failed.json()["type"].endswith("/model-unavailable")
                statuses = [failed.status_code, (await post()).status_code]
                assert statuses == [503, 200] and pool.pids() != [pid]
        finally:
            await pool.aclose()

    run(scenario())
    refused = [e for e in entries(ws) if e.type == "access" and e.decision == "deny"]
    assert all("model worker" in e.reasons[0] for e in refused)


def test_a_swapped_artifact_file_makes_the_worker_and_the_sdk_refuse(
    ws: Workspace, onnx_model: bytes
) -> None:
    import shutil

    from modelpact.errors import Tampered

    ModelRegistry(ws).add(MODEL, onnx_model, version="1.1.0", source="m.onnx")
    ModelRegistry(ws).rollback(MODEL, to_version="1.0.0")
    served, other = (
        next((ws.root / "artifacts").rglob(f"*{version}*/*.enc"), None)
        or next(p for p in (ws.root / "artifacts").rglob("*.enc") if version in str(p))
        for version in ("1.0.0", "1.1.0")
    )
    os.chmod(served, 0o600)
    shutil.copyfile(other, served)  # a validly sealed artifact, of another version
    gateway = Gateway(ws, workers=WorkerPool(ws.root, size=1, timeout=20.0))
    app = create_app(ws, gateway=gateway)

    async def scenario() -> None:
        try:
            async with client(app, ws) as sdk:
                with pytest.raises(Tampered):
                    await sdk.attest()
        finally:
            await gateway.aclose()

    run(scenario())


def test_with_two_workers_one_hung_the_other_keeps_serving(ws: Workspace) -> None:
    import time

    gateway = Gateway(ws, workers=WorkerPool(ws.root, size=2, timeout=30.0))
    app = create_app(ws, gateway=gateway)
    pool = gateway.workers
    assert pool is not None

    async def scenario() -> None:
        try:
            async with client(app, ws) as sdk:
                await asyncio.gather(*(sdk.predict(MODEL, ROW) for _ in range(4)))
                hung, _ = pool.pids()
                os.kill(hung, signal.SIGSTOP)
                stuck = asyncio.ensure_future(sdk.predict(MODEL, ROW))
                await asyncio.sleep(0.2)
                started = time.monotonic()
                for _ in range(3):  # answered by the other worker, long before the timeout
                    await sdk.predict(MODEL, ROW)
                assert time.monotonic() - started < 10
                os.kill(hung, signal.SIGKILL)
                with pytest.raises(ServerError, match="model worker exited"):  # its 503
                    await stuck
        finally:
            await gateway.aclose()

    run(scenario())
