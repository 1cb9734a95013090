"""Shared test values: keys and charters built directly (parsing is tested in tests/charter)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelpact.charter import Charter
from modelpact.crypto import SigningKey

OWNER = SigningKey.generate()
PARTNERS = {name: SigningKey.generate() for name in ("acme", "globex", "initech")}
FROM = datetime(2026, 1, 1, tzinfo=UTC)
UNTIL = datetime(2026, 7, 1, tzinfo=UTC)
INSIDE = datetime(2026, 3, 1, 12, tzinfo=UTC)


def make_charter(
    charter_id: str = "northwind-acme",
    *,
    partner: str = "acme",
    version: int = 1,
    purposes: tuple[str, ...] = ("fraud-screening",),
    grants: tuple[dict[str, Any], ...] | None = None,
    valid: dict[str, Any] | None = None,
) -> Charter:
    return Charter.model_validate(
        {
            "charter": charter_id,
            "version": version,
            "owner": {"name": "Northwind", "key": OWNER.verify_key.encode()},
            "partner": {
                "id": partner,
                "name": partner.upper(),
                "key": PARTNERS[partner].verify_key.encode(),
            },
            "objective": "Score transactions.",
            "valid": valid or {"from": FROM.isoformat(), "until": UNTIL.isoformat()},
            "purposes": list(purposes),
            "grants": list(
                grants
                or (
                    {
                        "model": "fraud-detector",
                        "versions": "1.*",
                        "actions": ["predict"],
                        "output": {"kind": "scores", "decimals": 2},
                    },
                )
            ),
        }
    )
