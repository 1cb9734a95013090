"""Prometheus metrics for the owner: traffic, decisions, latency and the audit log.

Served at ``/metrics`` to loopback clients only: the counts are the owner's
business, and a partner reaching the gateway over the network must not read
another partner's traffic off them.  Labels are route, outcome and problem
kind — never a partner, a token or anything a partner sent.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GatewayMetrics", "MetricsMiddleware"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "testclient"  # Starlette's in-process test client has no address


class GatewayMetrics:
    """One registry per app, so two gateways in one process (tests) do not share counts."""

    def __init__(self, audit_size: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "modelpact_requests",
            "HTTP requests answered, by route and status class",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "modelpact_request_seconds",
            "Time to answer, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.audited = Counter(
            "modelpact_audit_entries",
            "Audit entries this gateway made durable, by entry type and decision",
            ["type", "decision"],
            registry=self.registry,
        )
        size = Gauge("modelpact_audit_log_size", "Entries in the audit log", registry=self.registry)
        size.set_function(lambda: float(audit_size()))

    async def endpoint(self, request: Request) -> Response:
        if not _loopback(request.client.host if request.client else None):
            return Response("metrics are served to the owner's machine only\n", status_code=403)
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by its route template and status class."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self._app(scope, receive, capture)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self._metrics.requests.labels(name, f"{status // 100}xx").inc()
            self._metrics.latency.labels(name).observe(time.perf_counter() - started)
