"""Charters compiled to Cedar policies, and the decisions they make."""

from modelpact.policy.compile import CompiledCharter, compile_charter, validate_policies
from modelpact.policy.decision import AccessRequest, Decision
from modelpact.policy.engine import PolicyEngine
from modelpact.policy.schema import SCHEMA_TEXT

__all__ = [
    "SCHEMA_TEXT",
    "AccessRequest",
    "CompiledCharter",
    "Decision",
    "PolicyEngine",
    "compile_charter",
    "validate_policies",
]
