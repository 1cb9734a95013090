"""The extraction monitor end to end: an attack through the gateway is throttled, hardened and
suspended, each step on the record with its evidence, and the owner told by a signed webhook."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from modelpact.audit.entries import AccessEntry, AdminEntry, IncidentEntry
from modelpact.errors import Denied, QuotaExhausted
from modelpact.gateway.app import Gateway, create_app
from modelpact.runtime import export_sklearn
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.monitoring import Monitor, ProtectionDesk
from modelpact.services.webhooks import SIGNATURE_HEADER, Notifier
from tests.gateway.conftest import charter_for, client, entries, run, running

SCREEN = "cancer-screen"


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any, Any]:
    features, labels = load_breast_cancer(return_X_y=True)
    train, held, train_y, _ = train_test_split(
        features, labels, test_size=0.25, random_state=0, stratify=labels
    )
    return train, train_y, held


@pytest.fixture
def hook() -> tuple[FastAPI, list[tuple[bytes, str]]]:
    """A webhook receiver over TLS on 127.0.0.1: what it got, and its URL."""
    received: list[tuple[bytes, str]] = []
    receiver = FastAPI()

    @receiver.post("/incidents")
    async def incidents(request: Request) -> dict[str, str]:
        received.append((await request.body(), request.headers.get(SIGNATURE_HEADER, "")))
        return {"ok": "yes"}

    return receiver, received


def test_an_attack_is_throttled_hardened_and_suspended_with_evidence(
    ws: Workspace, data: tuple[Any, Any, Any], hook: Any, tmp_path: Path
) -> None:
    train, train_y, held = data
    model = export_sklearn(LogisticRegression(max_iter=5000).fit(train, train_y))
    ModelRegistry(ws).add(SCREEN, model, version="1.0.0", source="m.onnx", reference=train)
    receiver, received = hook
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with running(receiver, **tls) as receiver_url:
        CharterDesk(ws).apply(
            charter_for(
                ws,
                "acme",
                version=2,
                grants=[
                    {
                        "model": SCREEN,
                        "versions": "1.*",
                        "actions": ["predict"],
                        "output": {"kind": "scores", "decimals": 4},
                    }
                ],
                limits__requests_per_minute=20,  # throttled: 2 a minute
                incident_response={
                    "contacts": ["security@northwind.example"],
                    "webhook": f"{receiver_url}/incidents",
                },
            ),
            source="v2.json",
        )
        notifier = Notifier(ws.owner_key(), ca=ws.ca_cert_path, pause=0.05)
        # spacing 64: each further batch of 64 alarming queries climbs one step
        gateway = Gateway(ws, notifier=notifier, monitor=Monitor(ws, notifier=notifier, spacing=64))
        app = create_app(ws, gateway=gateway)
        rng = np.random.default_rng(1)
        probes = rng.uniform(train.min(axis=0), train.max(axis=0), size=(6, 64, train.shape[1]))

        async def scenario() -> None:
            async with client(app, ws) as sdk:
                for start in range(0, 128, 32):  # natural use first: nothing happens
                    await sdk.predict(SCREEN, held[start : start + 32])
                gateway.monitor.flush()
                assert ProtectionDesk(ws).all() == []

                first = await sdk.predict(SCREEN, probes[0])  # the attack begins
                assert "scores" in first.outputs[0]
                gateway.monitor.flush()
                assert [p.response for p in ProtectionDesk(ws).all()] == ["throttle"]

                await sdk.predict(SCREEN, probes[1])  # throttled slot 1 of 2; climbs to harden
                gateway.monitor.flush()
                hardened = await sdk.predict(SCREEN, probes[2])  # slot 2: labels only
                assert all(set(o) == {"label"} for o in hardened.outputs)
                gateway.monitor.flush()
                assert [p.response for p in ProtectionDesk(ws).all()] == ["suspend"]
                with pytest.raises(Denied):  # suspended: refused whatever it asks
                    await sdk.predict(SCREEN, held[:1])

            PartnerDirectory(ws).change_status("acme", "resume")
            async with client(app, ws) as sdk:
                with pytest.raises(QuotaExhausted, match="throttled"):  # still throttled
                    await sdk.predict(SCREEN, held[:1])
            ProtectionDesk(ws).clear("acme", "northwind-acme", SCREEN, reason="reviewed")
            async with client(app, ws) as sdk:
                cleared = await sdk.predict(SCREEN, held[:1])
                assert "scores" in cleared.outputs[0]

        try:
            run(scenario())
            notifier.flush()
        finally:
            gateway.close()

    log = entries(ws)
    incidents = [e for e in log if isinstance(e, IncidentEntry)]
    assert [(e.step, e.response) for e in incidents] == [
        (1, "throttle"),
        (2, "harden"),
        (3, "suspend"),
    ]
    for incident in incidents:  # the evidence: detector, statistic, threshold, window
        assert incident.actor == "acme" and incident.model == SCREEN
        assert incident.detector in {"outliers", "prada", "coverage", "volume"}
        assert float(incident.statistic) > float(incident.threshold) or incident.detector == "prada"
        assert incident.window >= 50
    assert incidents[0].detector == "outliers"
    assert incidents[2].severity == "critical" and "suspended" in incidents[2].detail
    hardened_access = [
        e for e in log if isinstance(e, AccessEntry) and any("hardened" in r for r in e.reasons)
    ]
    assert hardened_access and all(e.decision == "allow" for e in hardened_access)
    assert any(isinstance(e, AdminEntry) and e.action == "monitor.clear" for e in log)

    # Three signed notifications, one per step, each verifiable with the owner's key.
    assert len(received) == 3
    for (body, signature), incident in zip(received, incidents, strict=True):
        document = json.loads(body)
        assert document["entry"]["response"] == incident.response
        assert signature.startswith("ed25519=")
        ws.owner_verify_key.verify(base64.b64decode(signature.removeprefix("ed25519=")), body)


def test_webhook_failures_are_retried_counted_and_never_block(ws: Workspace) -> None:
    from datetime import UTC, datetime

    calls: list[int] = []
    receiver = FastAPI()

    @receiver.post("/down")
    async def down() -> None:
        calls.append(1)
        raise RuntimeError("receiver down")

    entry = IncidentEntry(
        time=datetime.now(UTC),
        actor="acme",
        subject="acme/c/m",
        charter="c",
        model="m",
        detector="outliers",
        statistic="0.9",
        threshold="0.25",
        window=64,
        detail="probes",
        response="throttle",
        severity="warning",
        step=1,
    )
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with running(receiver, **tls) as url:
        notifier = Notifier(ws.owner_key(), ca=ws.ca_cert_path, pause=0.01, attempts=3)
        try:
            notifier.notify(f"{url}/down", entry, 7)
            notifier.notify(url.replace("https://", "http://") + "/down", entry, 7)  # never sent
            notifier.flush()
        finally:
            notifier.close()
    assert len(calls) == 3
    assert notifier.stats.failed == 1 and notifier.stats.dropped == 1
    assert notifier.stats.last_error == "HTTP 500"
