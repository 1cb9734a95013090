"""Errors as RFC 9457 problem details: one ``type`` per error kind, never a stack trace.

Every :class:`~modelpact.errors.ModelpactError` maps to a status and a problem
type; the ``detail`` is the error's one-line diagnostics, which by the errors
module's contract never holds a secret or a partner's raw input.  Anything else
is a bug: it becomes a bare ``internal`` problem and its text stays in the
server's log.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from modelpact.errors import (
    AlreadyExists,
    AuditUnavailable,
    BudgetExhausted,
    ContextNeeded,
    Denied,
    Expired,
    InvalidInput,
    KeyExhausted,
    ModelpactError,
    ModelUnavailable,
    NotFound,
    QuotaExhausted,
    StorageUnavailable,
    Tampered,
    Unauthenticated,
)
from modelpact.runtime import PredictionFailed
from modelpact.wire import PROBLEM_BASE

__all__ = [
    "MEDIA_TYPE",
    "PayloadTooLarge",
    "install",
    "invalid_request",
    "problem_for",
    "problem_response",
    "validation_detail",
]

MEDIA_TYPE = "application/problem+json"
_log = logging.getLogger("modelpact.gateway")

#: Most specific first: the first class an error is an instance of decides.
_KINDS: tuple[tuple[type[ModelpactError], int, str, str], ...] = (
    (Unauthenticated, 401, "unauthenticated", "Not authenticated"),
    (PredictionFailed, 500, "prediction-failed", "The model's answer cannot be served"),
    (Expired, 403, "expired", "Outside the charter's validity"),
    (BudgetExhausted, 403, "budget-exhausted", "The privacy budget is spent"),
    (Denied, 403, "denied", "Denied by the charter"),
    (QuotaExhausted, 429, "quota-exhausted", "Limit reached"),
    (ContextNeeded, 409, "context-needed", "Upload the encryption context"),
    (NotFound, 404, "not-found", "Not found"),
    (AlreadyExists, 409, "conflict", "Already exists"),
    (InvalidInput, 400, "invalid-input", "Invalid input"),
    (Tampered, 400, "tampered", "Integrity check failed"),
    (ModelUnavailable, 503, "model-unavailable", "The model worker failed; try again"),
    (KeyExhausted, 503, "key-exhausted", "An encryption key must be rotated first"),
    (AuditUnavailable, 503, "audit-unavailable", "The audit log cannot record requests"),
    (StorageUnavailable, 503, "unavailable", "Storage unavailable"),
)


class PayloadTooLarge(InvalidInput):
    """A request body over the gateway's limit."""


def problem_for(error: ModelpactError) -> tuple[int, dict[str, Any]]:
    """The status and problem document for ``error``."""
    if isinstance(error, PayloadTooLarge):
        status, kind, title = 413, "payload-too-large", "Request body too large"
    else:
        status, kind, title = 500, "internal", "Internal error"
        for cls, code, name, heading in _KINDS:
            if isinstance(error, cls):
                status, kind, title = code, name, heading
                break
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": title,
        "status": status,
        "detail": error.diagnostics(),
    }
    if isinstance(error, Denied) and error.reasons:
        body["reasons"] = list(error.reasons)
    if isinstance(error, QuotaExhausted) and error.retry_after is not None:
        body["retry_after"] = error.retry_after
    return status, body


def problem_response(error: ModelpactError) -> JSONResponse:
    status, body = problem_for(error)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="modelpact"'
    if isinstance(error, QuotaExhausted) and error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def validation_detail(exc: RequestValidationError) -> str:
    """Where and what, in one line, without echoing the offending value."""
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    return f"{where}: {first.get('msg', 'malformed request')}"[:300]


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    """The 422 problem for a request that does not match the API's schema."""
    return _plain(422, "invalid-request", "Malformed request", validation_detail(exc))


def _plain(status: int, kind: str, title: str, detail: str) -> JSONResponse:
    body = {"type": PROBLEM_BASE + kind, "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into problem+json."""

    async def on_modelpact(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ModelpactError)
        return problem_response(exc)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _plain(422, "invalid-request", "Malformed request", validation_detail(exc))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return _plain(exc.status_code, kind, str(exc.detail), str(exc.detail))

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        _log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return _plain(500, "internal", "Internal error", "the gateway failed; the owner is told")

    app.add_exception_handler(ModelpactError, on_modelpact)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_bug)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before the app reads them whole.

    Checks ``Content-Length`` up front and counts streamed chunks too (a
    chunked upload has no length to check).  ``wider``: ``(path suffix, limit)`` for the
    routes whose bodies are larger by nature (ciphertexts).
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, wider: tuple[tuple[str, int], ...] = ()
    ) -> None:
        self._app = app
        self._max = max_bytes
        self._wider = wider

    async def __call__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = next((n for suffix, n in self._wider if path.endswith(suffix)), self._max)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    await self._refuse(scope, receive, send, limit)
                    return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
            return message

        await self._app(scope, counted, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            PayloadTooLarge(
                f"the request body exceeds {limit} bytes",
                hint="send fewer rows per request",
            )
        )
        await response(scope, receive, send)
