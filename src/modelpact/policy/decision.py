"""What is asked of the policy engine, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from modelpact.charter.model import Action
from modelpact.errors import InvalidInput

__all__ = ["AccessRequest", "Decision"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessRequest:
    """One partner asking to do one action on one model version, under one charter and purpose."""

    partner: str
    charter: str
    purpose: str
    action: Action
    model: str
    version: str
    at: datetime

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise InvalidInput("a request time must carry its time zone")


@dataclass(frozen=True, slots=True)
class Decision:
    """Allow or deny, with the reasons a human reads and the policy ids that decided it."""

    allowed: bool
    reasons: tuple[str, ...]
    policy_ids: tuple[str, ...] = ()

    def __str__(self) -> str:
        verdict = "ALLOW" if self.allowed else "DENY"
        return f"{verdict}: " + "; ".join(self.reasons)
