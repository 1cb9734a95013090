"""How a charter's ``protections.extraction_monitor`` turns alarms into responses.

The responses, mildest first: ``alert`` (an incident entry and a webhook),
``throttle`` (a lower request rate), ``harden`` (label-only answers), ``suspend``
(the partner refused until an owner resumes it) and ``revoke``.  A charter
names the response to a first alarm (``on_alert``) and to a confirmed one
(``on_confirmed``); the monitor climbs one step at a time through every response
from the first to the second, so with the defaults (throttle, then suspend) an
attack that goes on is throttled, then hardened, then suspended.  A step is
taken on a first alarm, and after that only while some detector still alarms
once ``spacing`` more queries have come in since the step before: one burst
cannot jump straight to suspension, and a partner whose queries turn normal
again stays where it is until an owner clears it.  Every step also alerts.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelpact.charter import ExtractionMonitor, Response

__all__ = ["ORDER", "Ladder"]

ORDER: tuple[Response, ...] = (
    Response.ALERT,
    Response.THROTTLE,
    Response.HARDEN,
    Response.SUSPEND,
    Response.REVOKE,
)
"""Every response, mildest first."""


@dataclass(frozen=True, slots=True)
class Ladder:
    """The steps a charter's monitor climbs, and how many queries each must wait."""

    steps: tuple[Response, ...]
    spacing: int = 100

    @classmethod
    def of(cls, monitor: ExtractionMonitor, *, spacing: int = 100) -> Ladder:
        first, last = ORDER.index(monitor.on_alert), ORDER.index(monitor.on_confirmed)
        if last < first:  # a milder confirmed response than the first: the first, and stop
            return cls((monitor.on_alert,), spacing)
        return cls(ORDER[first : last + 1], spacing)

    def next_step(self, current: int, queries_since: int, alarmed: bool) -> int | None:
        """The step to take now (1-based), or None to stay.

        ``current``: steps taken so far (0: none); ``queries_since``: queries seen since
        the last step; ``alarmed``: whether any detector alarms now.
        """
        if not alarmed or current >= len(self.steps):
            return None
        if current == 0 or queries_since >= self.spacing:
            return current + 1
        return None

    def response(self, step: int) -> Response:
        return self.steps[min(step, len(self.steps)) - 1]
