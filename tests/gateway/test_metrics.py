"""Prometheus metrics: counted by route and outcome, served to the owner's machine only."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from modelpact.errors import Denied
from modelpact.services import Workspace
from tests.gateway.conftest import MODEL, client
from tests.gateway.test_gateway import ROWS


def scrape(app: Any, host: str) -> httpx.Response:
    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=(host, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            return await http.get("/metrics")

    return asyncio.run(get())


def test_metrics_count_requests_and_audit_entries_without_naming_partners(
    app: Any, ws: Workspace
) -> None:
    async def traffic() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, ROWS[:2])
            await sdk.predict(MODEL, ROWS[:1])
        async with client(app, ws, purpose="marketing") as wrong:
            with pytest.raises(Denied):  # the refusal is what is counted
                await wrong.open_session()

    asyncio.run(traffic())
    response = scrape(app, "127.0.0.1")
    assert response.status_code == 200
    text = response.text
    assert 'modelpact_requests_total{route="/v1/models/{model}/predict",status="2xx"} 2.0' in text
    assert 'modelpact_requests_total{route="/v1/sessions",status="4xx"} 1.0' in text
    assert 'modelpact_audit_entries_total{decision="allow",type="access"} 2.0' in text
    assert 'modelpact_audit_entries_total{decision="deny",type="session"} 1.0' in text
    assert "modelpact_request_seconds_bucket" in text
    assert "modelpact_audit_log_size" in text
    assert "acme" not in text and "mpt_" not in text


def test_metrics_are_refused_to_other_machines(app: Any) -> None:
    response = scrape(app, "203.0.113.7")
    assert response.status_code == 403
    assert "modelpact_" not in response.text
