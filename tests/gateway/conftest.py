"""A workspace ready to serve: a model, two partners with charters, and a gateway over it.

End-to-end tests run on SQLite (the storage contract suite covers PostgreSQL);
the clock starts at the real time so the SDK's signatures carry a plausible
``signed_at``, and tests move it on to expire things.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
import pytest
import uvicorn

from modelpact.audit.entries import decode_entry
from modelpact.charter import Charter, to_yaml
from modelpact.client import AsyncPartnerClient
from modelpact.crypto import SigningKey
from modelpact.gateway.app import Gateway, create_app
from modelpact.services import (
    CharterDesk,
    ModelRegistry,
    PartnerDirectory,
    Workspace,
    init_workspace,
)
from tests.factories import make_charter

KEYS = {"acme": SigningKey.generate(), "globex": SigningKey.generate()}
MODEL = "fraud-detector"
N_FEATURES = 30


T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    """Run one scenario on a fresh event loop."""
    return asyncio.run(coro)  # type: ignore[arg-type]


def client(app: Any, ws: Workspace, partner: str = "acme", **kwargs: Any) -> AsyncPartnerClient:
    """The SDK for ``partner``, talking to ``app`` in process, signing with the test clock."""
    options: dict[str, Any] = {
        "partner": partner,
        "key": KEYS[partner],
        "charter": f"northwind-{partner}",
        "purpose": "fraud-screening",
        "owner_key": ws.owner_verify_key,
        "transport": httpx.ASGITransport(app=app),
        "clock": ws.clock,
    }
    return AsyncPartnerClient("http://gateway", **(options | kwargs))


def raw(app: Any) -> httpx.AsyncClient:
    """A plain HTTP client on ``app`` in process, for requests the SDK would not send."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


def entries(ws: Workspace) -> list[Any]:
    """Every audit entry so far, decoded."""
    with ws.store.unit_of_work() as uow:
        return [decode_entry(r.entry) for r in uow.audit.entries(0, uow.audit.size())]


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def charter_for(ws: Workspace, partner: str, *, version: int = 1, **changes: Any) -> str:
    """A charter for ``partner`` signed by the owner and countersigned: the envelope JSON."""
    base = make_charter(f"northwind-{partner}", partner="acme", version=version)
    document = base.to_document()
    now = ws.clock()
    document["partner"]["id"] = partner
    document["partner"]["name"] = partner.upper()
    document["owner"]["key"] = ws.owner_verify_key.encode()
    document["partner"]["key"] = KEYS[partner].verify_key.encode()
    document["valid"] = {
        "from": (now - timedelta(days=1)).isoformat(),
        "until": (now + timedelta(days=30)).isoformat(),
    }
    document["limits"] = {
        "requests_per_minute": 600,
        "daily_quota": 10_000,
        "max_batch_rows": 64,
        "session_ttl": "15m",
    }
    for dotted, value in changes.items():
        target = document
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        target[last] = value
    charter = Charter.model_validate(document)
    signed = CharterDesk(ws).sign(to_yaml(charter), source="c.yaml")
    return signed.countersign(KEYS[partner]).to_json()


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from modelpact.runtime import export_sklearn

    features, labels = load_breast_cancer(return_X_y=True)
    return export_sklearn(LogisticRegression(max_iter=5000).fit(features, labels))


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def ws(tmp_path: Path, clock: Clock, onnx_model: bytes) -> Iterator[Workspace]:
    with init_workspace(
        tmp_path / "ws", database_url=f"sqlite:///{tmp_path / 'ws.db'}", clock=clock
    ) as workspace:
        ModelRegistry(workspace).add(MODEL, onnx_model, version="1.0.0", source="m.onnx")
        directory = PartnerDirectory(workspace)
        for partner, key in KEYS.items():
            directory.enrol(partner, key.verify_key.encode())
            CharterDesk(workspace).apply(charter_for(workspace, partner), source="e.json")
        yield workspace


@pytest.fixture
def gateway(ws: Workspace) -> Iterator[Gateway]:
    gw = Gateway(ws)
    yield gw
    gw.close()


@pytest.fixture
def app(ws: Workspace, gateway: Gateway) -> Any:
    return create_app(ws, gateway=gateway)


@contextlib.contextmanager
def running(app: Any, *, lifespan: Literal["on", "off"] = "off", **ssl: Any) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on 127.0.0.1 (an ephemeral port) in a thread;
    ``lifespan="on"`` runs its start-up and shut-down as ``modelpact serve`` does."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan=lifespan, **ssl
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    scheme = "https" if ssl else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
