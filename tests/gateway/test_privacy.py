"""noised_scores through the gateway: Laplace-noised answers, a budget spent durably per row,
refused once spent, and what is left visible to the partner."""

from __future__ import annotations

from typing import Any

import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry
from modelpact.errors import BudgetExhausted, NotFound
from modelpact.gateway.app import create_app
from modelpact.services import CharterDesk, Workspace
from tests.gateway.conftest import MODEL, charter_for, client, entries, run

ROWS = load_breast_cancer().data[:6].tolist()


def test_a_noised_grant_spends_its_budget_and_then_refuses(ws: Workspace, gateway: Any) -> None:
    grant = {
        "model": MODEL,
        "versions": "1.*",
        "actions": ["predict"],
        "output": {"kind": "noised_scores", "epsilon": 0.5, "budget": 2.0, "decimals": 3},
    }
    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, grants=[grant], limits__daily_quota=None),
        source="v2.json",
    )
    app = create_app(ws, gateway=gateway)

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            before = await sdk.privacy_budget(MODEL)
            assert (before.epsilon, before.budget, before.spent, before.left) == (0.5, 2.0, 0, 2)
            first = await sdk.predict(MODEL, ROWS[:3])  # 3 rows x 0.5
            for output in first.outputs:
                scores = [s["score"] for s in output["scores"]]
                assert all(0 <= s <= 1 for s in scores) and abs(sum(scores) - 1) < 0.01
            left = await sdk.privacy_budget(MODEL)
            assert (left.spent, left.left) == (1.5, 0.5)
            with pytest.raises(BudgetExhausted, match=r"0\.5 left"):
                await sdk.predict(MODEL, ROWS[:2])  # 1.0 > 0.5: refused, nothing spent
            await sdk.predict(MODEL, ROWS[3:4])  # exactly what is left
            with pytest.raises(BudgetExhausted):
                await sdk.predict(MODEL, ROWS[:1])
            assert (await sdk.privacy_budget(MODEL)).left == 0
            with pytest.raises(NotFound):
                await sdk.privacy_budget("no-such-model")

    run(scenario())
    refused = [e for e in entries(ws) if isinstance(e, AccessEntry) and e.decision == "deny"]
    assert len(refused) == 2 and all("privacy budget" in e.reasons[0] for e in refused)


def test_the_noise_is_fresh_each_time(ws: Workspace, gateway: Any) -> None:
    grant = {
        "model": MODEL,
        "versions": "1.*",
        "actions": ["predict"],
        "output": {"kind": "noised_scores", "epsilon": 1.0},
    }
    CharterDesk(ws).apply(charter_for(ws, "acme", version=2, grants=[grant]), source="v2.json")
    app = create_app(ws, gateway=gateway)

    async def scenario() -> list[Any]:
        async with client(app, ws) as sdk:
            return [(await sdk.predict(MODEL, ROWS)).outputs for _ in range(5)]

    answers = run(scenario())
    # Six rows, five times: noise drawn afresh gives different answers to the same rows (a
    # saturated score often clips back to 1 and 0, so one row alone may repeat).
    assert len({str(a) for a in answers}) > 1
