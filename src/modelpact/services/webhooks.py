"""Webhooks: events, signed, POSTed to the charter's ``incident_response.webhook``.

Two events: an incident (the monitor's alarm) and ``charter.expiring`` (the charter's
validity window closes within a warning threshold; sent once per charter version and
threshold by the expiry sweep, :mod:`modelpact.services.expiry`).  The body is the
event's audit entry (its canonical JSON) with the log index it got, so a receiver can
look it up and check its inclusion proof; the ``Modelpact-Signature`` header is
``ed25519=<base64>`` of the body by the workspace's owner key, which the receiver knows
from the charter.  ``Modelpact-Event`` names the event (``incident`` or
``charter.expiring``) for routing; the signed body says the same (``entry.type``, and an
admin entry's ``entry.action``).  Delivery runs
on a background thread with a bounded queue, HTTPS only (certificates checked
against the system's trust store, or ``ca`` when given), a few retries with a
growing pause, and never blocks a request: the incident is already durable in the
log; the webhook only tells someone sooner.
"""

from __future__ import annotations

import base64
import logging
import queue
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from modelpact.audit.entries import AdminEntry, AuditEntry, encode_entry
from modelpact.crypto import SigningKey, canonical_json

__all__ = ["EVENT_HEADER", "SIGNATURE_HEADER", "Notifier"]

SIGNATURE_HEADER = "Modelpact-Signature"
EVENT_HEADER = "Modelpact-Event"
_log = logging.getLogger(__name__)


@dataclass
class _Stats:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = field(default=None)


class Notifier:
    """Posts events (incidents, expiry warnings) to webhooks from one background thread."""

    def __init__(
        self,
        key: SigningKey,
        *,
        ca: Path | None = None,
        timeout: float = 5.0,
        attempts: int = 3,
        pause: float = 0.5,
        queue_size: int = 256,
    ) -> None:
        self._key = key
        verify = ssl.create_default_context(cafile=str(ca)) if ca is not None else True
        self._client = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False)
        self._attempts = attempts
        self._pause = pause
        self._queue: queue.Queue[tuple[str, bytes, str] | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self.stats = _Stats()
        self._thread = threading.Thread(target=self._run, name="modelpact-webhooks", daemon=True)
        self._thread.start()

    @staticmethod
    def body(entry: AuditEntry, index: int) -> bytes:
        """What is posted: ``{"entry": <the audit entry>, "index": <its log index>}``, RFC 8785."""
        import json  # the entry's bytes are canonical already; re-read them as a value

        return canonical_json({"entry": json.loads(encode_entry(entry)), "index": index})

    def signature(self, body: bytes) -> str:
        return "ed25519=" + base64.b64encode(self._key.sign(body)).decode("ascii")

    @staticmethod
    def event(entry: AuditEntry) -> str:
        """The event's name: an admin entry's action, else the entry's type."""
        return entry.action if isinstance(entry, AdminEntry) else entry.type

    def notify(self, url: str, entry: AuditEntry, index: int) -> None:
        """Queue one delivery; dropped (and counted) when the queue is full."""
        if not url.startswith("https://"):
            self.stats.dropped += 1  # the charter schema allows https only; never downgrade
            return
        try:
            self._queue.put_nowait((url, self.body(entry, index), self.event(entry)))
        except queue.Full:
            self.stats.dropped += 1
            _log.warning("webhook queue full: a notification was dropped")

    def flush(self) -> None:
        """Wait until every queued delivery was tried."""
        self._queue.join()

    def close(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, url: str, body: bytes, event: str) -> None:
        headers = {
            "content-type": "application/json",
            SIGNATURE_HEADER: self.signature(body),
            EVENT_HEADER: event,
        }
        for attempt in range(self._attempts):
            try:
                response = self._client.post(url, content=body, headers=headers)
                if response.status_code < 300:
                    self.stats.delivered += 1
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
            self.stats.last_error = error
            if self._stop.wait(self._pause * 2**attempt):
                break
        self.stats.failed += 1
        # The URL's host only: a path or query may carry a receiver's token.
        _log.warning("%s webhook to %s failed: %s", event, httpx.URL(url).host, error)
