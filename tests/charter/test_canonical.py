"""Canonical form: one byte string per meaning, and YAML that reads back to the same charter."""

from __future__ import annotations

import hashlib
import json
import random
import re
from datetime import timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelpact.charter import (
    Charter,
    charter_bytes,
    charter_digest,
    charter_from_document,
    load_charter,
    to_yaml,
)
from modelpact.crypto import canonical_json

from .examples import PROPERTY, charters, example_charter, example_text


def test_bytes_are_rfc8785_of_the_document() -> None:
    charter = example_charter()
    document = charter.to_document()
    assert charter_bytes(charter) == canonical_json(document)
    # For an ASCII document without floats, RFC 8785 is sorted keys and no whitespace.
    expected = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    assert charter_bytes(charter) == expected
    assert charter_bytes(charter).startswith(b'{"charter":"northwind-acme-fraud","exit":')


def test_digest_is_sha256_of_the_bytes() -> None:
    charter = example_charter()
    digest = charter_digest(charter)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert digest == "sha256:" + hashlib.sha256(charter_bytes(charter)).hexdigest()


def test_any_change_changes_the_digest() -> None:
    base = example_charter()
    other = load_charter(example_text({25: "  daily_quota: 50001"}))
    assert charter_digest(base) != charter_digest(other)


def test_equal_meaning_gives_equal_bytes() -> None:
    flow = example_text(
        {12: "  from: 2026-01-01T01:00:00+01:00", 27: "  session_ttl: 15m  # a comment"}
    )
    assert charter_bytes(load_charter(flow)) == charter_bytes(example_charter())


def test_to_yaml_is_readable() -> None:
    text = to_yaml(example_charter())
    lines = text.splitlines()
    assert lines[0] == "charter: northwind-acme-fraud"
    assert "  from: 2026-01-01T00:00:00Z" in lines
    assert "  versions: 1.*" in lines
    assert [line.split(":")[0] for line in lines if not line.startswith((" ", "-"))] == [
        "charter",
        "version",
        "owner",
        "partner",
        "objective",
        "valid",
        "purposes",
        "grants",
        "limits",
        "protections",
        "incident_response",
        "exit",
    ]


def test_to_yaml_never_writes_aliases() -> None:
    text = to_yaml(
        load_charter(
            example_text(
                insert={
                    22: [
                        "  - model: churn",
                        '    versions: "1.*"',
                        "    actions: [predict, predict_encrypted]",
                        "    output: {kind: scores, decimals: 2}",
                    ]
                }
            )
        )
    )
    assert "&" not in text
    assert "*id" not in text


def test_to_yaml_keeps_the_monitor_off() -> None:
    off = load_charter(example_text({30: "  extraction_monitor: null"}, drop=(31, 32)))
    assert "  extraction_monitor: null" in to_yaml(off).splitlines()
    assert load_charter(to_yaml(off)) == off


@PROPERTY
@given(charters())
def test_yaml_round_trip(charter: Charter) -> None:
    assert load_charter(to_yaml(charter)) == charter


@PROPERTY
@given(charters())
def test_bytes_round_trip_through_json(charter: Charter) -> None:
    again = charter_from_document(json.loads(charter_bytes(charter)))
    assert again == charter
    assert charter_bytes(again) == charter_bytes(charter)


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


@PROPERTY
@given(
    charters(),
    st.randoms(use_true_random=False),
    st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)
def test_bytes_ignore_key_order_and_time_zone(
    charter: Charter, rng: random.Random, zone: timezone
) -> None:
    document = _shuffled(charter.to_document(), rng)
    document["valid"]["from"] = charter.valid.from_.astimezone(zone).isoformat()
    if charter.valid.until is not None:
        document["valid"]["until"] = charter.valid.until.astimezone(zone).isoformat()
    assert charter_bytes(Charter.model_validate(document)) == charter_bytes(charter)
