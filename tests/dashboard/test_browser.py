"""The vendored htmx and uPlot work in a real, offline browser.

A tiny FastAPI app serves a page that loads both scripts from the package's
``dashboard/static/vendor`` folder: uPlot draws a chart, htmx loads a fragment on
a click. Every request the page makes must go to that app.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from playwright.sync_api import Page, expect

import modelpact
from tests.gateway.conftest import running

VENDOR = Path(modelpact.__file__).parent / "dashboard" / "static" / "vendor"

PAGE = """<!doctype html>
<html>
<head>
  <meta charset="utf-8">
  <title>vendored scripts</title>
  <link rel="stylesheet" href="/static/vendor/uPlot.min.css">
  <script src="/static/vendor/htmx.min.js"></script>
  <script src="/static/vendor/uPlot.iife.min.js"></script>
</head>
<body>
  <div id="chart"></div>
  <button id="load" hx-get="/fragment" hx-target="#fragment">Load</button>
  <div id="fragment"></div>
  <script>
    new uPlot(
      {
        width: 400,
        height: 200,
        scales: {x: {time: false}},
        series: [{}, {label: "requests", stroke: "blue"}],
      },
      [[1, 2, 3], [5, 3, 8]],
      document.getElementById("chart"),
    );
  </script>
</body>
</html>
"""


def vendored_app() -> FastAPI:
    app = FastAPI()
    app.mount("/static/vendor", StaticFiles(directory=VENDOR), name="vendor")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return PAGE

    @app.get("/fragment", response_class=HTMLResponse)
    def fragment() -> str:
        return '<p id="arrived">fragment arrived</p>'

    return app


def test_vendored_htmx_and_uplot_run_offline(page: Page) -> None:
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))

    with running(vendored_app()) as base:
        page.goto(base + "/")
        page.click("#load")
        expect(page.locator("#fragment #arrived")).to_have_text("fragment arrived")

        assert page.evaluate("typeof window.htmx.version") == "string"
        assert page.evaluate("window.htmx.version")
        assert page.evaluate("typeof window.uPlot") == "function"
        canvas = page.locator("#chart canvas")
        expect(canvas).to_have_count(1)
        size = canvas.evaluate("c => [c.width, c.height]")
        assert size[0] > 0
        assert size[1] > 0
        box = canvas.bounding_box()
        assert box is not None
        assert box["width"] > 0
        assert box["height"] > 0

    assert errors == []
    assert requests
    assert all(url.startswith(base + "/") for url in requests), requests
