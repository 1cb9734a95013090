"""Decisions: the compiled policies of all active charters, parsed once, asked many times."""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

import cedarpy

from modelpact.policy.compile import (
    PARTNER_STATUS_ID,
    PARTNER_STATUS_POLICY,
    PARTNER_STATUS_REASON,
    CompiledCharter,
    epoch_micros,
)
from modelpact.policy.decision import AccessRequest, Decision

__all__ = ["PolicyEngine"]


class PolicyEngine:
    """An immutable policy set.  Build a new engine when charters change.

    Default deny: with no charter at all, every request is denied.  Any Cedar
    evaluation error also denies (fail closed), and says so in the reasons.

    Every charter policy is conditioned on ``context.charter`` naming it, so for
    a request only the global policies and its own charter's can apply.  The
    engine keeps one parsed policy set per charter and evaluates just that one:
    the same answers as the union, at a cost that does not grow with the
    number of charters.

    Decisions are kept too: Cedar's answer is a function of the policy set, the
    entities and the request, and a charter's policies read the time only to
    compare it with the instants they were compiled with
    (:attr:`CompiledCharter.instants`).  So a decision is kept under the request's
    fields, the partner's status and the index of the interval between instants
    that the request's time falls in, and reused for any time in that interval.
    """

    __slots__ = (
        "_charters",
        "_decisions",
        "_entity_cache",
        "_explanations",
        "_global",
        "_policies",
    )

    #: Parsed entity graphs kept for reuse; parsing them costs about as much as deciding.
    ENTITY_CACHE_SIZE = 4096
    #: Decisions kept for reuse (each a few hundred bytes); all dropped when full.
    DECISION_CACHE_SIZE = 16_384

    def __init__(self, compiled: Iterable[CompiledCharter] = ()) -> None:
        charters = tuple(compiled)
        self._charters = {c.charter_id: c for c in charters}
        self._explanations: dict[str, str] = {PARTNER_STATUS_ID: PARTNER_STATUS_REASON}
        for item in charters:
            self._explanations.update(item.explanations)
        self._global = cedarpy.PolicySet.from_str(PARTNER_STATUS_POLICY)
        self._policies = {
            c.charter_id: cedarpy.PolicySet.from_str(PARTNER_STATUS_POLICY + c.text)
            for c in charters
        }
        self._entity_cache: dict[tuple[str, str, str, str], cedarpy.Entities] = {}
        self._decisions: dict[tuple[str | int, ...], Decision] = {}

    def decide(self, request: AccessRequest, *, partner_status: str) -> Decision:
        """Allow or deny ``request`` for a partner currently in ``partner_status``."""
        compiled = self._charters.get(request.charter)
        interval = (
            0 if compiled is None else bisect_right(compiled.instants, epoch_micros(request.at))
        )
        key = (
            request.partner,
            request.charter,
            request.purpose,
            request.action.value,
            request.model,
            request.version,
            partner_status,
            interval,
        )
        found = self._decisions.get(key)
        if found is None:
            found = self._evaluate(request, partner_status)
            if len(self._decisions) >= self.DECISION_CACHE_SIZE:
                self._decisions.clear()
            self._decisions[key] = found
        return found

    def evaluate(self, request: AccessRequest, *, partner_status: str) -> Decision:
        """:meth:`decide`, always asking Cedar (the reference the kept decisions are held to)."""
        return self._evaluate(request, partner_status)

    def _evaluate(self, request: AccessRequest, partner_status: str) -> Decision:
        result = cedarpy.is_authorized(
            self._cedar_request(request),
            self._policies.get(request.charter, self._global),
            self._entities(request, partner_status),
        )
        diagnostics = result.diagnostics
        # Sorted: Cedar reports the policies that decided in no fixed order.
        ids = tuple(
            sorted(diagnostics.id_annotations_by_reason.get(r, r) for r in diagnostics.reasons)
        )
        if diagnostics.errors:
            return Decision(False, tuple(f"policy error: {e}" for e in diagnostics.errors), ids)
        reasons = tuple(self._explanations.get(i, i) for i in ids)
        if result.allowed:
            return Decision(True, reasons, ids)
        if reasons:
            return Decision(False, reasons, ids)
        return Decision(False, (self._no_permit(request),), ())

    def _no_permit(self, request: AccessRequest) -> str:
        compiled = self._charters.get(request.charter)
        if compiled is None:
            return f"no active charter named {request.charter}"
        return (
            f"no grant in {request.charter}@v{compiled.version} allows {request.action.value}"
            f" on {request.model} version {request.version}"
        )

    @staticmethod
    def _cedar_request(request: AccessRequest) -> dict[str, Any]:
        return {
            "principal": {"type": "Partner", "id": request.partner},
            "action": {"type": "Action", "id": request.action.value},
            "resource": {"type": "ModelVersion", "id": f"{request.model}@{request.version}"},
            "context": {
                "charter": request.charter,
                "purpose": request.purpose,
                "now": epoch_micros(request.at),
            },
        }

    def _entities(self, request: AccessRequest, partner_status: str) -> cedarpy.Entities:
        key = (request.partner, partner_status, request.model, request.version)
        cached = self._entity_cache.get(key)
        if cached is None:
            if len(self._entity_cache) >= self.ENTITY_CACHE_SIZE:
                self._entity_cache.clear()
            graph = json.dumps(self._entity_graph(request, partner_status))
            cached = self._entity_cache[key] = cedarpy.Entities.from_json_str(graph)
        return cached

    @staticmethod
    def _entity_graph(request: AccessRequest, partner_status: str) -> list[dict[str, Any]]:
        return [
            {
                "uid": {"type": "Partner", "id": request.partner},
                "attrs": {"status": partner_status},
                "parents": [],
            },
            {
                "uid": {"type": "ModelVersion", "id": f"{request.model}@{request.version}"},
                "attrs": {"model": request.model, "version": request.version},
                "parents": [],
            },
        ]
