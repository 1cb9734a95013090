"""The Cedar schema every compiled charter is validated against.

Principals are partners, resources are model versions, the context names the
charter and purpose the request is bound to and the time of the request (Unix
microseconds, so the window check is exact integer comparison).
"""

from __future__ import annotations

from functools import cache

import cedarpy

from modelpact.charter.model import Action

__all__ = ["SCHEMA_TEXT", "schema"]

SCHEMA_TEXT = """\
entity Partner = { status: String };
entity ModelVersion = { model: String, version: String };
type RequestContext = { charter: String, purpose: String, now: Long };
""" + "".join(
    f'action "{action.value}" appliesTo {{\n'
    "  principal: [Partner], resource: [ModelVersion], context: RequestContext\n};\n"
    for action in Action
)


@cache
def schema() -> cedarpy.Schema:
    """The parsed schema, parsed once per process."""
    return cedarpy.Schema.from_str(SCHEMA_TEXT)
