"""The dashboard in a real browser (Debian's chromium) against a real gateway with real traffic:
the owner and a partner sign in, the charts draw the log's numbers, a partner cannot open
another's page by URL, and a suspension made on the review page lands in the audit log.

``MODELPACT_SCREENSHOTS=DIR`` also saves a screenshot of each page there (docs/dashboard holds
the ones made so).
"""

# ruff: noqa: F811 - the gateway's fixtures are imported by name and requested as arguments

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sklearn.datasets import load_breast_cancer

from modelpact.audit.entries import AccessEntry, AdminEntry
from modelpact.client import PartnerClient
from modelpact.dashboard.access import Viewer, make_link
from modelpact.errors import NotFound
from modelpact.services import PartnerDirectory, Workspace
from tests.gateway.conftest import (  # noqa: F401 - fixtures are used by name
    KEYS,
    MODEL,
    app,
    clock,
    entries,
    gateway,
    onnx_model,
    running,
    ws,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ROWS = load_breast_cancer().data[:8].tolist()


@pytest.fixture
def served(app: Any, ws: Workspace) -> Iterator[str]:
    tls = {"ssl_certfile": str(ws.server_cert_path), "ssl_keyfile": str(ws.server_key_path)}
    with running(app, **tls) as url:
        yield url


def sdk(url: str, ws: Workspace, partner: str) -> PartnerClient:
    return PartnerClient(
        url,
        partner=partner,
        key=KEYS[partner],
        charter=f"northwind-{partner}",
        purpose="fraud-screening",
        owner_key=ws.owner_verify_key,
        verify=str(ws.ca_cert_path),
        clock=ws.clock,
    )


def shot(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot of the whole page: in tmp_path always, and where MODELPACT_SCREENSHOTS says."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    keep = os.environ.get("MODELPACT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"{name}.png").write_bytes(path.read_bytes())


def test_owner_and_partner_see_the_real_numbers_and_only_what_is_theirs(
    served: str, ws: Workspace, page: Page, chromium: Browser, tmp_path: Path
) -> None:
    with sdk(served, ws, "acme") as acme:
        for rows in (ROWS[:5], ROWS[5:7], ROWS[7:8]):
            acme.predict(MODEL, rows)
        with pytest.raises(NotFound):
            acme.predict("no-such-model", ROWS[:1])  # a denial, on the record
    with sdk(served, ws, "globex") as globex:
        globex.predict(MODEL, ROWS[:3])
        globex_link = globex.dashboard_link()

    problems: list[str] = []  # script errors, CSP refusals: none on any page
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    # The owner: overview, acme's page with its charts, models, incidents.
    page.goto(f"{served}/dashboard/signin?link={make_link(ws.owner_key(), Viewer('owner'))}")
    assert page.url.endswith("/dashboard")
    with ws.store.unit_of_work(read_only=True) as uow:
        size = uow.audit.size()
    assert int(page.inner_text("#log-size")) == size
    assert page.locator("#partners").inner_text().count("active") == 2
    shot(page, tmp_path, "overview")

    page.goto(f"{served}/dashboard/partners/acme")
    assert page.inner_text("#total-requests") == "4"
    assert page.inner_text("#total-rows") == "8"
    assert page.inner_text("#total-denied") == "1"
    page.wait_for_selector("#chart-requests canvas")
    drawn = page.evaluate(
        "() => ['chart-requests', 'chart-rows'].map(id => document.getElementById(id).uPlot"
        ".data[1].reduce((a, b) => a + b, 0))"
    )
    assert drawn == [4, 8]  # the charts hold the log's numbers
    box = page.locator("#chart-rows canvas").bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 100
    before = page.locator("#recent tbody tr").count()
    assert before >= 4
    with sdk(served, ws, "acme") as acme:
        acme.predict(MODEL, ROWS[:1])
    page.evaluate("() => htmx.ajax('GET', '/dashboard/partners/acme/recent', '#recent')")
    page.wait_for_function(f"() => document.querySelectorAll('#recent tbody tr').length > {before}")
    shot(page, tmp_path, "partner")
    page.goto(f"{served}/dashboard/models")
    assert "globex" in page.inner_text("main")
    shot(page, tmp_path, "models")
    page.goto(f"{served}/dashboard/incidents")
    shot(page, tmp_path, "incidents")

    # Partner globex, signed in with its key: its own page, and nobody else's.
    context = chromium.new_context(ignore_https_errors=True)
    try:
        theirs = context.new_page()
        theirs.goto(globex_link)
        assert theirs.url.endswith("/dashboard/partners/globex")
        assert theirs.inner_text("#total-rows") == "3"
        assert "acme" not in theirs.inner_text("main")
        shot(theirs, tmp_path, "partner-view")
        answer = theirs.goto(f"{served}/dashboard/partners/acme")
        assert answer is not None and answer.status == 404
        assert (theirs.goto(f"{served}/dashboard/review") or answer).status == 404
    finally:
        context.close()

    # The owner suspends globex from the access review, with a reason.
    page.goto(f"{served}/dashboard/review")
    shot(page, tmp_path, "review")
    row = page.locator("#grants tr", has_text="globex")
    row.locator("form.change").first.locator("input[name=reason]").fill("pilot paused")
    row.locator("form.change").first.locator("button").click()
    page.wait_for_selector("#done")
    assert "suspend globex" in page.inner_text("#done")
    assert PartnerDirectory(ws).get("globex").status == "suspended"
    suspended = [e for e in entries(ws) if isinstance(e, AdminEntry)
                 and e.action == "partner.suspend"]  # fmt: skip
    assert [e.detail.get("reason") for e in suspended] == ["pilot paused"]
    assert problems == []
    allowed = [e for e in entries(ws) if isinstance(e, AccessEntry) and e.decision == "allow"]
    assert sum(e.rows for e in allowed if e.actor == "acme") == 9
