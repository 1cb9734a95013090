"""The charter model: what the schema accepts, and the fixes to its canonical document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from modelpact.charter import (
    Charter,
    Grant,
    Limits,
    OutputPolicy,
    Validity,
    parse_duration,
)
from modelpact.charter.model import JointMetric
from modelpact.errors import InvalidInput

from .examples import OWNER_KEY, example_charter, example_document


def _with(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = document
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return document


def _locations(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in exc.value.errors()]


def test_the_example_is_valid() -> None:
    charter = example_charter()
    assert charter.ref == "northwind-acme-fraud@v3"
    assert charter.partner.id == "acme"
    assert charter.limits.session_ttl_seconds == 900


def test_extraction_monitor_off_survives_the_document() -> None:
    # Leaving the null out of the signed document would turn the monitor back on.
    document = _with(example_document(), ("protections", "extraction_monitor"), None)
    charter = Charter.model_validate(document)
    assert charter.protections.extraction_monitor is None
    assert charter.to_document()["protections"]["extraction_monitor"] is None
    assert Charter.model_validate(charter.to_document()) == charter


def test_nulls_that_mean_default_are_left_out() -> None:
    document = example_document()
    del document["valid"]["until"], document["incident_response"], document["limits"]["daily_quota"]
    assert Charter.model_validate(document).to_document() == document


def test_times_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    validity = Validity.model_validate({"from": datetime(2026, 1, 1, 2, tzinfo=plus_two)})
    assert validity.from_ == datetime(2026, 1, 1, tzinfo=UTC)
    assert validity.from_.tzinfo is UTC


def test_until_before_from_points_at_until() -> None:
    document = _with(example_document(), ("valid", "until"), "2025-01-01T00:00:00Z")
    with pytest.raises(ValidationError) as exc:
        Charter.model_validate(document)
    assert _locations(exc) == [("valid", "until")]


def test_owner_and_partner_need_different_keys() -> None:
    document = _with(example_document(), ("partner", "key"), OWNER_KEY.verify_key.encode())
    with pytest.raises(ValidationError) as exc:
        Charter.model_validate(document)
    assert _locations(exc) == [("partner",)]


@pytest.mark.parametrize("field", [("version",), ("limits", "daily_quota")])
def test_integers_stay_inside_json_safe_range(field: tuple[str, ...]) -> None:
    # RFC 8785 cannot put larger integers in canonical JSON, so they could not be signed.
    document = _with(example_document(), field, 2**53)
    with pytest.raises(ValidationError):
        Charter.model_validate(document)
    Charter.model_validate(_with(example_document(), field, 2**53 - 1))


def test_unknown_fields_are_errors_everywhere() -> None:
    with pytest.raises(ValidationError):
        Charter.model_validate(_with(example_document(), ("limits", "burst"), 5))
    with pytest.raises(ValidationError):
        Charter.model_validate({**example_document(), "notes": "x"})


def test_charter_is_immutable() -> None:
    charter = example_charter()
    with pytest.raises(ValidationError):
        charter.version = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"kind": "top_k"}, "needs k"),
        ({"kind": "scores", "k": 3}, "k applies only to top_k"),
        ({"kind": "noised_scores"}, "needs epsilon"),
        ({"kind": "scores", "epsilon": 1.0}, "epsilon applies only"),
        ({"kind": "scores", "budget": 5.0}, "budget applies only"),
        ({"kind": "noised_scores", "epsilon": 2.0, "budget": 1.0}, "smaller than one answer"),
        ({"kind": "label", "decimals": 2}, "decimals does not apply"),
        ({"kind": "embedding", "decimals": 2}, "decimals does not apply"),
    ],
)
def test_output_policy_fields_fit_the_kind(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OutputPolicy.model_validate(policy)


@pytest.mark.parametrize(
    ("pattern", "version", "covered"),
    [
        ("*", "7.0.1", True),
        ("1.*", "1.0", True),
        ("1.*", "1.2.3", True),
        ("1.*", "10.0", False),
        ("1.*", "1", False),
        ("1.2.0", "1.2.0", True),
        ("1.2.0", "1.2.01", False),
    ],
)
def test_grant_covers_version(pattern: str, version: str, covered: bool) -> None:
    grant = Grant.model_validate(
        {"model": "m", "versions": pattern, "actions": ["predict"], "output": {"kind": "label"}}
    )
    assert grant.covers_version(version) is covered


def test_duplicate_actions_and_purposes_are_errors() -> None:
    with pytest.raises(ValidationError, match="listed more than once"):
        Charter.model_validate(_with(example_document(), ("purposes",), ["a", "a"]))
    document = example_document()
    document["grants"][0]["actions"] = ["predict", "predict"]
    with pytest.raises(ValidationError, match="listed more than once"):
        Charter.model_validate(document)


def test_validity_contains_is_half_open() -> None:
    validity = example_charter().valid
    assert validity.contains(datetime(2026, 1, 1, tzinfo=UTC))
    assert not validity.contains(datetime(2026, 6, 30, tzinfo=UTC))
    assert not validity.contains(datetime(2025, 12, 31, 23, 59, tzinfo=UTC))


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("2d", 172800)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds
    assert Limits(session_ttl=text).session_ttl_seconds == seconds


@pytest.mark.parametrize("text", ["0s", "15", "1w", "-1m", "1.5h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_duration(text)


def test_the_joint_section_is_strict_and_optional() -> None:
    document = example_document()
    assert "joint" not in document  # absent: no joint runs, and the canonical form is unchanged
    terms = {"compute_party": {"id": "tallyhall", "name": "Tally Hall"}, "metrics": ["auc"]}
    charter = Charter.model_validate(document | {"joint": terms})
    assert charter.joint is not None and charter.joint.metrics == (JointMetric.AUC,)
    assert charter.to_document()["joint"] == terms
    bad = [
        terms | {"metrics": ["accuracy", "accuracy"]},
        terms | {"metrics": ["f1"]},
        terms | {"budget": 3},
        {"compute_party": {"id": "acme", "name": "ACME itself"}},
        {"metrics": ["auc"]},
    ]
    for joint in bad:
        with pytest.raises(ValidationError):
            Charter.model_validate(document | {"joint": joint})
