"""The dashboard over HTTP (here, not in tests/dashboard: these run scenarios with
asyncio.run, which the browser tests there cannot share a worker with): sign-in links, who
sees what, the numbers, and the review's actions.  In a real browser: tests/dashboard."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AdminEntry, SessionEntry
from modelpact.crypto import SigningKey
from modelpact.dashboard.access import Viewer, make_link
from modelpact.errors import QuotaExhausted
from modelpact.services import CharterDesk, PartnerDirectory, Workspace
from tests.gateway.conftest import MODEL, Clock, charter_for, client, entries, run

ROWS = load_breast_cancer().data[:5].tolist()


def browser(app: Any) -> httpx.AsyncClient:
    """A cookie-keeping client over https (the cookie is Secure), in process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://gateway")


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_the_owner_signs_in_once_sees_everyone_and_suspends_with_a_reason(
    ws: Workspace, app: Any
) -> None:
    async def scenario() -> None:
        async with client(app, ws) as sdk:  # some real traffic first
            await sdk.predict(MODEL, ROWS)
            await sdk.predict(MODEL, ROWS[:2])
        link = make_link(ws.owner_key(), Viewer("owner"))
        async with browser(app) as web:
            assert (await web.get("/dashboard")).status_code == 401  # not signed in
            signed = await web.get(f"/dashboard/signin?link={link}")
            assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
            cookie = signed.headers["set-cookie"].lower()
            assert all(w in cookie for w in ("secure", "httponly", "samesite=strict"))
            again = await web.get(f"/dashboard/signin?link={link}")
            assert again.status_code == 403 and "used already" in again.text
            home = await web.get("/dashboard")
            assert home.status_code == 200
            assert "script-src 'self'" in home.headers["content-security-policy"]
            assert "acme" in home.text and "globex" in home.text and "fraud-detector" in home.text
            page = await web.get("/dashboard/partners/acme")
            assert 'id="total-requests">2<' in page.text and 'id="total-rows">7<' in page.text
            assert "sha256:" in page.text  # digests, never values
            assert str(ROWS[0][0]) not in page.text
            models = await web.get("/dashboard/models")
            assert "acme" in models.text and ">7<" in models.text
            review = await web.get("/dashboard/review")
            token = csrf(review.text)
            no_reason = await web.post("/dashboard/partners/globex/suspend",
                                       data={"csrf": token, "reason": " "})  # fmt: skip
            assert no_reason.status_code == 400 and "a reason is required" in no_reason.text
            forged = await web.post("/dashboard/partners/globex/suspend",
                                    data={"csrf": "x" * 32, "reason": "test"})  # fmt: skip
            assert forged.status_code == 403
            why = {"csrf": token, "reason": "access review: pilot over"}
            done = await web.post("/dashboard/partners/globex/suspend", data=why)
            assert done.status_code == 303
            assert PartnerDirectory(ws).get("globex").status == "suspended"
            out = await web.post("/dashboard/signout", data={"csrf": token})
            assert out.status_code == 200
            assert (await web.get("/dashboard")).status_code == 401

    run(scenario())
    (suspended,) = [e for e in entries(ws) if isinstance(e, AdminEntry)
                    and e.action == "partner.suspend"]  # fmt: skip
    assert suspended.detail["reason"] == "access review: pilot over"


def test_a_partner_signs_in_with_its_key_and_sees_only_its_own_page(
    ws: Workspace, app: Any
) -> None:
    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, ROWS)
            grant = sdk.session
            assert grant is not None
        async with browser(app) as web:
            refused = await web.post("/dashboard/link", headers={"Authorization": "Bearer nope"})
            assert refused.status_code == 401
            made = await web.post(
                "/dashboard/link", headers={"Authorization": f"Bearer {grant.token}"}
            )
            assert made.status_code == 200, made.text
            signed = await web.get(made.json()["path"])
            assert signed.headers["location"] == "/dashboard/partners/acme"
            own = await web.get("/dashboard/partners/acme")
            assert own.status_code == 200 and 'id="total-rows">5<' in own.text
            assert "globex" not in own.text
            for path in ("/dashboard/partners/globex", "/dashboard/review",
                         "/dashboard/models", "/dashboard/incidents",
                         "/dashboard/partners/globex/recent"):  # fmt: skip
                assert (await web.get(path)).status_code == 404, path
            assert (await web.get("/dashboard")).headers["location"] == "/dashboard/partners/acme"
            token = csrf(own.text)
            attempt = await web.post("/dashboard/partners/globex/suspend",
                                     data={"csrf": token, "reason": "mine now"})  # fmt: skip
            assert attempt.status_code == 404
        assert PartnerDirectory(ws).get("globex").status == "active"

    run(scenario())
    issued = [e for e in entries(ws) if isinstance(e, SessionEntry) and e.action == "dashboard"]
    assert [e.actor for e in issued] == ["acme"]  # the link is on the record


def test_links_that_are_forged_expired_or_malformed_open_nothing(
    ws: Workspace, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with browser(app) as web:
            forged = make_link(SigningKey.generate(), Viewer("owner"))
            tampered = forged.split(".")[0] + ".AAAA"
            for link, words in ((forged, "not one the owner signed"),
                                ("abc", "not a sign-in link"),
                                (tampered, "not one the owner signed")):  # fmt: skip
                answer = await web.get(f"/dashboard/signin?link={link}")
                assert answer.status_code == 401 and words in answer.text, answer.text
            import time

            old = make_link(ws.owner_key(), Viewer("owner"), minutes=1)
            now = time.time()
            monkeypatch.setattr(time, "time", lambda: now + 120)
            expired = await web.get(f"/dashboard/signin?link={old}")
            assert expired.status_code == 403 and "expired" in expired.text

    run(scenario())


def test_limits_show_as_429s_apart_from_denials(ws: Workspace, app: Any) -> None:
    CharterDesk(ws).apply(
        charter_for(ws, "acme", version=2, limits__requests_per_minute=2), source="v2.json"
    )

    async def scenario() -> None:
        async with client(app, ws) as sdk:
            await sdk.predict(MODEL, ROWS[:1])
            await sdk.predict(MODEL, ROWS[:1])
            with pytest.raises(QuotaExhausted):
                await sdk.predict(MODEL, ROWS[:1])
        async with browser(app) as web:
            await web.get(f"/dashboard/signin?link={make_link(ws.owner_key(), Viewer('owner'))}")
            page = await web.get("/dashboard/partners/acme")
            assert 'id="total-limited">1<' in page.text and 'id="total-denied">0<' in page.text
            assert 'id="rate-northwind-acme"' in page.text

    run(scenario())


def test_charters_expiring_soon_are_flagged_for_the_owner_and_their_partner(
    ws: Workspace, app: Any, clock: Clock
) -> None:
    later = (clock.now + timedelta(days=90)).isoformat()
    CharterDesk(ws).apply(charter_for(ws, "globex", version=2, valid__until=later), source="g")

    async def scenario() -> None:
        async with browser(app) as web:
            owner = make_link(ws.owner_key(), Viewer("owner"))
            await web.get(f"/dashboard/signin?link={owner}")
            calm = await web.get("/dashboard")
            assert 'id="expiring"' not in calm.text  # 30 days left: nothing to say yet
            clock.advance(days=20)  # acme: 10 days left; globex (v2): 70
            home = await web.get("/dashboard")
            assert home.status_code == 200
            banner = home.text.split('id="expiring"')[1].split("</aside>")[0]
            assert "1 charter expiring within 14 days" in banner
            assert "northwind-acme v1" in banner and "globex" not in banner
            assert 'class="badge warning">expiring<' in home.text
            acme_page = await web.get("/dashboard/partners/acme")
            assert 'id="expiring"' in acme_page.text and "agree a new version" in acme_page.text
            globex_page = await web.get("/dashboard/partners/globex")
            assert 'id="expiring"' not in globex_page.text
        async with browser(app) as web:  # the partner sees its own warning
            partner = make_link(ws.owner_key(), Viewer("partner", "acme"))
            await web.get(f"/dashboard/signin?link={partner}")
            own = await web.get("/dashboard/partners/acme")
            banner = own.text.split('id="expiring"')[1].split("</aside>")[0]
            assert "northwind-acme v1 expires" in banner and "(10 days left)" in banner
            assert "ask the owner for a new version" in banner

    run(scenario())
