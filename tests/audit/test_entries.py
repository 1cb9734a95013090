"""Entry schemas: the fast encoder writes exactly RFC 8785, and decoding refuses anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from modelpact.audit.entries import (
    ENTRY_TYPES,
    AccessEntry,
    AdminEntry,
    ExportEntry,
    IncidentEntry,
    OutputEntry,
    SessionEntry,
    decode_entry,
    encode_entry,
)
from modelpact.errors import InvalidInput, Tampered

# Any text that is valid UTF-8 (no lone surrogates), control characters included.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
NAME = TEXT.filter(lambda s: not any(ord(c) < 0x20 or ord(c) == 0x7F for c in s))
DIGEST = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())
COUNT = st.integers(0, 2**53 - 1)
TIME = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
)
SCALAR = st.one_of(TEXT, st.integers(-(2**53) + 1, 2**53 - 1), st.booleans(), st.none())
KEY = st.from_regex(r"\A[a-z][a-z0-9_]{0,20}\Z")

COMMON: dict[str, Any] = {"actor": NAME, "subject": NAME, "time": TIME}
ENTRIES = st.one_of(
    st.builds(
        AdminEntry,
        action=st.from_regex(r"\A[a-z]{1,8}(\.[a-z_]{1,8}){1,3}\Z"),
        detail=st.dictionaries(KEY, SCALAR, max_size=6),
        **COMMON,
    ),
    st.builds(
        AccessEntry,
        charter=NAME,
        purpose=NAME,
        action=NAME,
        model=NAME,
        version=NAME,
        decision=st.sampled_from(["allow", "deny"]),
        reasons=st.lists(TEXT, max_size=4).map(tuple),
        rows=COUNT,
        input_digest=st.none() | DIGEST,
        output_digest=st.none() | DIGEST,
        **COMMON,
    ),
    st.builds(
        OutputEntry,
        request=COUNT,
        transformations=st.lists(NAME, max_size=4).map(tuple),
        output_digest=DIGEST,
        **COMMON,
    ),
    st.builds(
        ExportEntry,
        what=NAME,
        allowed=st.booleans(),
        reasons=st.lists(TEXT, max_size=3).map(tuple),
        digest=st.none() | DIGEST,
        **COMMON,
    ),
    st.builds(
        SessionEntry,
        action=st.sampled_from(["open", "authenticate", "close"]),
        charter=st.none() | NAME,
        purpose=st.none() | NAME,
        decision=st.sampled_from(["allow", "deny"]),
        reasons=st.lists(TEXT, max_size=3).map(tuple),
        **COMMON,
    ),
    st.builds(
        IncidentEntry,
        charter=NAME,
        detail=TEXT,
        detector=NAME,
        model=NAME,
        severity=st.sampled_from(["info", "warning", "critical"]),
        response=st.sampled_from(["alert", "throttle", "harden", "suspend", "revoke"]),
        statistic=st.floats(-1e6, 1e6).map(lambda x: format(x, ".6g").replace("inf", "0")),
        step=COUNT,
        threshold=st.sampled_from(["0.6", "0.85", "1e-06", "12"]),
        window=COUNT,
        **COMMON,
    ),
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@settings(max_examples=600)
@given(ENTRIES)
def test_the_fast_encoder_writes_exactly_what_rfc8785_writes(entry: Any) -> None:
    reference = rfc8785.dumps(entry.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert encode_entry(entry) == reference
    assert decode_entry(reference) == entry


@pytest.mark.parametrize("kind", ENTRY_TYPES, ids=lambda k: k.__name__)
def test_every_schema_declares_its_fields_in_json_name_order(kind: type[Any]) -> None:
    # The fast encoder relies on it: pydantic writes fields in declaration order.
    names = [field.alias or name for name, field in kind.model_fields.items()]
    assert names == sorted(names)
    assert "schema" in names and "type" in names and "time" in names


def test_times_are_stored_in_utc() -> None:
    local = datetime(2026, 11, 25, 17, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    entry = AdminEntry(time=local, actor="owner", subject="m", action="model.add")
    assert json.loads(encode_entry(entry))["time"] == "2026-11-25T12:00:00Z"


def test_admin_detail_keys_are_sorted_whatever_order_they_came_in() -> None:
    entry = AdminEntry(
        time=NOW, actor="o", subject="p", action="partner.add", detail={"zeta": 1, "alpha": "x"}
    )
    assert encode_entry(entry).index(b'"alpha"') < encode_entry(entry).index(b'"zeta"')


@pytest.mark.parametrize(
    "change",
    [
        {"rows": 2**53},
        {"rows": -1},
        {"input_digest": "sha256:" + "AB" * 32},
        {"actor": "line\nbreak"},
        {"time": datetime(2026, 11, 25)},  # naive
        {"unknown": 1},
    ],
    ids=["rows-too-big", "rows-negative", "digest-upper-case", "control-char", "naive", "extra"],
)
def test_out_of_schema_values_are_refused(change: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "time": NOW,
        "actor": "acme",
        "subject": "r-1",
        "charter": "c",
        "purpose": "p",
        "action": "predict",
        "model": "m",
        "version": "1",
        "decision": "allow",
        "reasons": (),
    }
    AccessEntry(**fields)  # the base is valid
    with pytest.raises(ValidationError):
        AccessEntry(**(fields | change))


def test_decoding_refuses_non_canonical_or_unknown_bytes() -> None:
    entry = AdminEntry(time=NOW, actor="o", subject="p", action="partner.add", detail={"a": 1})
    data = encode_entry(entry)
    spaced = json.dumps(json.loads(data), sort_keys=True).encode()
    with pytest.raises(Tampered, match="canonical form"):
        decode_entry(spaced)
    with pytest.raises(InvalidInput, match="not JSON"):
        decode_entry(b"\xff")
    with pytest.raises(InvalidInput, match="does not match its schema"):
        decode_entry(data.replace(b'"admin"', b'"other"'))
