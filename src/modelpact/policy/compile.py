"""Charter -> Cedar policies.

Each active charter version becomes a handful of policies scoped to its own id
(``context.charter``), so charters of one partner never bleed into each other:

- one ``permit`` per grant: this partner, these actions, this model, these versions;
- ``forbid`` outside the validity window, for a purpose the charter does not name,
  and for any principal other than the charter's partner.

A global ``forbid`` denies every partner whose status is not ``active``.  Cedar
is default-deny and a ``forbid`` overrides any ``permit``, so an empty policy
set denies and a charter can only ever narrow what another allows.  Every
policy carries an ``@id`` that maps to a sentence a human reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cedarpy

from modelpact.charter.model import Charter
from modelpact.errors import CharterInvalid
from modelpact.policy.schema import schema

__all__ = [
    "PARTNER_STATUS_POLICY",
    "CompiledCharter",
    "compile_charter",
    "epoch_micros",
    "validate_policies",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SAFE = re.compile(r"^[A-Za-z0-9@.*+_:-]{1,128}$")

PARTNER_STATUS_ID = "partner-not-active"
PARTNER_STATUS_POLICY = (
    f'@id("{PARTNER_STATUS_ID}")\n'
    "forbid (principal, action, resource)\n"
    'unless { principal.status == "active" };\n'
)
PARTNER_STATUS_REASON = "the partner is suspended or revoked"


def epoch_micros(instant: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (no float rounding, no truncation)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _lit(value: str) -> str:
    """A Cedar string literal.  Inputs are schema-checked slugs; refuse anything else."""
    if not _SAFE.match(value):
        raise CharterInvalid(f"value {value!r} cannot be expressed in a policy")
    return f'"{value}"'


@dataclass(frozen=True, slots=True)
class CompiledCharter:
    """The Cedar text of one charter version and the sentence behind each policy id.

    ``instants``: every time (epoch microseconds) the text compares ``context.now``
    with, each in ``context.now < t`` or ``context.now >= t``; the policies answer
    the same for every ``now`` between two consecutive instants.
    """

    charter_id: str
    version: int
    partner: str
    text: str
    explanations: dict[str, str]
    instants: tuple[int, ...] = ()


def compile_charter(charter: Charter) -> CompiledCharter:
    """Compile and validate ``charter``; raise :class:`CharterInvalid` if Cedar cannot hold it."""
    ref = charter.ref
    cid = _lit(charter.charter)
    partner = f"Partner::{_lit(charter.partner.id)}"
    parts: list[str] = []
    explanations: dict[str, str] = {}

    for index, grant in enumerate(charter.grants):
        pid = f"{ref}/grant/{index}"
        actions = ", ".join(f"Action::{_lit(a.value)}" for a in grant.actions)
        parts.append(
            f'@id("{pid}")\n'
            f"permit (principal == {partner}, action in [{actions}], resource)\n"
            f"when {{ context.charter == {cid} && resource.model == {_lit(grant.model)}"
            f" && resource.version like {_lit(grant.versions)} }};\n"
        )
        verbs = ", ".join(a.value for a in grant.actions)
        explanations[pid] = (
            f"grant {index} of {ref} allows {verbs} on {grant.model} versions {grant.versions}"
        )

    instants = [epoch_micros(charter.valid.from_)]
    window = f"context.now < {instants[0]}"
    until_text = "with no end"
    if charter.valid.until is not None:
        instants.append(epoch_micros(charter.valid.until))
        window += f" || context.now >= {instants[-1]}"
        until_text = f"until {charter.valid.until.isoformat()}"
    pid = f"{ref}/window"
    parts.append(
        f'@id("{pid}")\n'
        "forbid (principal, action, resource)\n"
        f"when {{ context.charter == {cid} && ({window}) }};\n"
    )
    explanations[pid] = (
        f"{ref} is valid from {charter.valid.from_.isoformat()} {until_text}, not now"
    )

    pid = f"{ref}/purpose"
    purposes = ", ".join(_lit(p) for p in charter.purposes)
    parts.append(
        f'@id("{pid}")\n'
        "forbid (principal, action, resource)\n"
        f"when {{ context.charter == {cid} }}\n"
        f"unless {{ [{purposes}].contains(context.purpose) }};\n"
    )
    explanations[pid] = f"the purpose is not one {ref} names ({', '.join(charter.purposes)})"

    pid = f"{ref}/partner"
    parts.append(
        f'@id("{pid}")\n'
        "forbid (principal, action, resource)\n"
        f"when {{ context.charter == {cid} }}\n"
        f"unless {{ principal == {partner} }};\n"
    )
    explanations[pid] = f"{ref} is not a charter with this partner"

    text = "\n".join(parts)
    validate_policies(PARTNER_STATUS_POLICY + text, source=ref)
    return CompiledCharter(
        charter_id=charter.charter,
        version=charter.version,
        partner=charter.partner.id,
        text=text,
        explanations=explanations,
        instants=tuple(sorted(instants)),
    )


def validate_policies(text: str, *, source: str) -> None:
    """Parse and type-check ``text`` against the schema; raise :class:`CharterInvalid` if not."""
    try:
        result = cedarpy.validate_policies(text, schema())
    except (ValueError, RuntimeError) as exc:
        raise CharterInvalid(f"{source}: the compiled policy does not parse: {exc}") from None
    if not result.validation_passed:
        errors = tuple(str(e) for e in result.errors)
        raise CharterInvalid(
            f"{source}: the compiled policy fails schema validation", findings=errors
        )
