"""The one byte form of a charter that is hashed and signed, and its readable YAML.

Owner and partner sign the RFC 8785 (JCS) canonical JSON of
:meth:`Charter.to_document`: keys sorted, no whitespace, numbers in one form, times
already normalised to UTC by the model.  Two charters that mean the same thing
therefore have the same bytes and the same digest, whatever order or time zone
their YAML was written in.  :func:`to_yaml` writes the same document back as YAML
a human reviews, fields in schema order, and reads back to an equal charter.
"""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

from modelpact.charter.model import Charter
from modelpact.crypto import canonical_json, sha256_hex

__all__ = ["charter_bytes", "charter_digest", "to_yaml"]


def charter_bytes(charter: Charter) -> bytes:
    """RFC 8785 canonical JSON of the charter document: exactly what is signed."""
    return canonical_json(charter.to_document())


def charter_digest(charter: Charter) -> str:
    """``sha256:<hex>`` of :func:`charter_bytes`, the name attestation and sessions use."""
    return "sha256:" + sha256_hex(charter_bytes(charter))


class _CharterDumper(yaml.SafeDumper):
    """Safe YAML out: no aliases (the parser refuses them), times as plain ``...Z``."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _represent_datetime(dumper: yaml.SafeDumper, value: datetime) -> yaml.ScalarNode:
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", text)


_CharterDumper.add_representer(datetime, _represent_datetime)


def to_yaml(charter: Charter) -> str:
    """Readable YAML of the charter document, fields in schema order."""
    document = charter.to_document()
    # Times go out as YAML timestamps rather than quoted strings: easier to read,
    # and the parser reads them back as the same instant.
    valid = document["valid"]
    valid["from"] = charter.valid.from_
    if charter.valid.until is not None:
        valid["until"] = charter.valid.until
    return yaml.dump(
        document,
        Dumper=_CharterDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )
