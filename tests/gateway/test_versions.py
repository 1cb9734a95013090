"""Versions through the gateway: a partner pinned to a model version keeps it, one following a
range gets the newest version in it, and a charter rollback takes effect on open sessions."""

from __future__ import annotations

from typing import Any

from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry
from modelpact.errors import Denied
from modelpact.services import CharterDesk, ModelRegistry, Workspace
from tests.gateway.conftest import MODEL, charter_for, client, entries, run

ROWS = load_breast_cancer().data[:2].tolist()


def grant(versions: str) -> list[dict[str, Any]]:
    return [
        {
            "model": MODEL,
            "versions": versions,
            "actions": ["predict"],
            "output": {"kind": "scores", "decimals": 2},
        }
    ]


def test_pinned_and_following_partners_get_their_versions(
    app: Any, ws: Workspace, onnx_model: bytes
) -> None:
    desk, registry = CharterDesk(ws), ModelRegistry(ws)
    desk.apply(charter_for(ws, "acme", version=2, grants=grant("1.0.0")), source="a.json")
    desk.apply(charter_for(ws, "globex", version=2, grants=grant("1.*")), source="g.json")
    for version in ("1.1.0", "2.0.0"):
        registry.add(MODEL, onnx_model, version=version, source="m.onnx")
    assert registry.served(MODEL) == "2.0.0"

    async def versions() -> tuple[str, str]:
        async with client(app, ws, partner="acme") as acme, client(app, ws, partner="globex") as g:
            return (await acme.predict(MODEL, ROWS)).version, (await g.predict(MODEL, ROWS)).version

    # 2.0.0 is served; acme is pinned to 1.0.0, globex follows 1.x to its newest.
    assert run(versions()) == ("1.0.0", "1.1.0")
    registry.rollback(MODEL, to_version="1.0.0")  # served again, and inside globex's range
    assert run(versions()) == ("1.0.0", "1.0.0")
    registry.rollback(MODEL, to_version="2.0.0")
    registry.add(MODEL, onnx_model, version="1.2.0", source="m.onnx")  # a 1.x fix, served
    registry.rollback(MODEL, to_version="2.0.0")
    assert run(versions()) == ("1.0.0", "1.2.0")

    async def outside() -> str:
        async with client(app, ws, partner="acme") as acme:
            try:
                await acme.predict(MODEL, ROWS, version="2.0.0")
            except Denied as refused:
                return refused.summary
        raise AssertionError("a version outside the pin was served")

    assert "does not allow predict on fraud-detector 2.0.0" in run(outside())
    access = [e for e in entries(ws) if isinstance(e, AccessEntry) and e.actor == "acme"]
    assert [e.version for e in access if e.decision == "allow"] == ["1.0.0"] * 3
    assert access[-1].decision == "deny" and access[-1].version == "2.0.0"


def test_a_charter_rollback_applies_to_open_sessions(
    app: Any, ws: Workspace, onnx_model: bytes
) -> None:
    desk = CharterDesk(ws)
    ModelRegistry(ws).add(MODEL, onnx_model, version="2.0.0", source="m.onnx")
    desk.apply(charter_for(ws, "acme", version=2, grants=grant("*")), source="a2.json")

    async def scenario() -> list[str]:
        async with client(app, ws) as sdk:
            seen = [(await sdk.predict(MODEL, ROWS)).version]
            desk.rollback("northwind-acme", to_version=1, reason="2.0.0 misbehaves for acme")
            seen.append((await sdk.predict(MODEL, ROWS)).version)  # the same session
            return seen

    # v1 follows 1.* (the fixture's grant): back to 1.0.0 at once, on the open session.
    assert run(scenario()) == ["2.0.0", "1.0.0"]
