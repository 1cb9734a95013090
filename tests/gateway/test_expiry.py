"""While the gateway serves, its expiry sweep runs in the background: a signed
``charter.expiring`` webhook once per threshold, then the charter ended on its own with an
exit report in the workspace that the partner verifies with ``charter verify-exit``."""

from __future__ import annotations

import base64
import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request

from modelpact.audit.entries import AdminEntry
from modelpact.cli.main import main
from modelpact.cli.terminal import replace_durably
from modelpact.gateway.app import Gateway, create_app
from modelpact.services import CharterDesk, Workspace
from modelpact.services.expiry import ExpirySweep, Sweeper
from modelpact.services.webhooks import EVENT_HEADER, SIGNATURE_HEADER, Notifier
from tests.gateway.conftest import (
    MODEL,
    N_FEATURES,
    Clock,
    charter_for,
    client,
    entries,
    run,
    running,
)

WRITE = functools.partial(replace_durably, mode=0o644)


@pytest.fixture
def hook() -> tuple[FastAPI, list[tuple[bytes, str, str]]]:
    received: list[tuple[bytes, str, str]] = []
    receiver = FastAPI()

    @receiver.post("/events")
    async def events(request: Request) -> dict[str, str]:
        headers = request.headers
        received.append((await request.body(), headers.get(SIGNATURE_HEADER, ""),
                         headers.get(EVENT_HEADER, "")))  # fmt: skip
        return {"ok": "yes"}

    return receiver, received


def test_the_served_gateway_warns_once_then_ends_the_charter_on_its_own(
    ws: Workspace, clock: Clock, hook: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver, received = hook
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with running(receiver, **tls) as receiver_url:
        CharterDesk(ws).apply(
            charter_for(
                ws,
                "acme",
                version=2,
                incident_response={
                    "contacts": ["security@northwind.example"],
                    "webhook": f"{receiver_url}/events",
                },
            ),
            source="v2.json",
        )
        notifier = Notifier(ws.owner_key(), ca=ws.ca_cert_path, pause=0.05)
        gateway = Gateway(ws, notifier=notifier)
        sweeper = Sweeper(ExpirySweep(ws, write=WRITE, notifier=notifier), interval=3600)
        app = create_app(ws, gateway=gateway, sweeper=sweeper)
        try:
            with running(app, lifespan="on") as url:
                assert url.startswith("http://127.0.0.1:")
                assert sweeper.wait(1)  # the first pass, at startup: nothing due yet
                assert sweeper.last is not None and sweeper.last.idle

                clock.advance(days=17)  # 13 days left
                sweeper.wake()
                assert sweeper.wait(2)
                assert sweeper.last is not None
                assert sorted(w.charter for w in sweeper.last.warned) == [
                    "northwind-acme", "northwind-globex"
                ]  # fmt: skip
                notifier.flush()
                sweeper.wake()  # again: nothing new is sent
                assert sweeper.wait(3)
                notifier.flush()
                assert sweeper.last is not None and sweeper.last.warned == []

                clock.advance(days=13, seconds=1)  # the windows close
                sweeper.wake()
                assert sweeper.wait(4)
                ended = sweeper.last.ended if sweeper.last else []
        finally:
            gateway.close()
    assert not sweeper._thread or not sweeper._thread.is_alive()  # stopped with the app

    # One warning reached acme's webhook (globex's charter names none), signed by the owner.
    ((body, signature, event),) = received
    assert event == "charter.expiring"
    scheme, _, value = signature.partition("=")
    assert scheme == "ed25519"
    ws.owner_verify_key.verify(base64.b64decode(value), body)
    document = json.loads(body)
    assert document["entry"]["action"] == "charter.expiring"
    assert document["entry"]["subject"] == "northwind-acme@v2"
    assert document["entry"]["detail"]["days"] == 14
    logged = entries(ws)[document["index"]]
    assert isinstance(logged, AdminEntry) and logged.action == "charter.expiring"

    # Both charters ended by the sweep; the reports are in the workspace and verify.
    assert sorted((e.charter, e.version) for e in ended) == [
        ("northwind-acme", 2), ("northwind-globex", 1)
    ]  # fmt: skip
    assert {r.status for r in CharterDesk(ws).all() if r.status != "superseded"} == {"terminated"}
    key = ws.owner_verify_key.encode()
    for report in (ws.root / "exits" / "northwind-acme-v2.json",
                   ws.root / "exits" / "northwind-globex-v1.json"):  # fmt: skip
        capsys.readouterr()
        assert main(["charter", "verify-exit", str(report), "--owner-key", key]) == 0
        assert "OK — exit report for" in capsys.readouterr().out


def test_charter_expire_runs_the_sweep_by_hand(
    ws: Workspace, app: Any, clock: Clock, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    import modelpact.services

    async def use() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, [[0.0] * N_FEATURES])

    run(use())

    monkeypatch.setattr(modelpact.services, "open_workspace",
                        lambda root, **_: _same(ws, root))  # fmt: skip
    capsys.readouterr()
    assert main(["--workspace", str(ws.root), "charter", "expire"]) == 0
    assert "nothing expired, expiring or past its retention" in capsys.readouterr().out
    clock.advance(days=20)
    assert main(["--workspace", str(ws.root), "charter", "expire", "--warn-days", "14"]) == 0
    out = capsys.readouterr().out
    assert "northwind-acme@v1 (acme): expires" in out and "(within 14 days)" in out
    clock.advance(days=11)
    assert main(["--workspace", str(ws.root), "charter", "expire"]) == 0
    out = capsys.readouterr().out
    assert "northwind-acme@v1 (acme): expired and ended; exit report" in out
    assert (ws.root / "exits" / "northwind-acme-v1.json").is_file()
    assert "charter verify-exit REPORT --owner-key" in out
    clock.advance(days=31)  # the default retention: 30 days from the termination
    assert main(["--workspace", str(ws.root), "charter", "expire"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"northwind-acme \(acme\): retention ended \S+; [1-9]\d* log entries pruned", out
    )
    export = ws.root.parent / "log.json"  # and the log still verifies, offline
    assert main(["--workspace", str(ws.root), "audit", "export", "--out", str(export)]) == 0
    key = ws.owner_verify_key.encode()
    capsys.readouterr()
    assert main(["audit", "verify", str(export), "--public-key", key]) == 0
    assert "pruned at the end of their retention" in capsys.readouterr().out


class _Borrowed:
    """The test's workspace, lent to one command: the command's ``close`` leaves it open."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def __enter__(self) -> Workspace:
        return self._ws

    def __exit__(self, *exc: object) -> None:
        return None


def _same(ws: Workspace, root: Path) -> Any:
    assert Path(root) == ws.root
    return _Borrowed(ws)
