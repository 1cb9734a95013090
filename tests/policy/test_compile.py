from __future__ import annotations

import pytest

from modelpact.errors import CharterInvalid
from modelpact.policy import compile_charter, validate_policies
from modelpact.policy.compile import PARTNER_STATUS_POLICY
from tests.factories import make_charter


def test_every_policy_has_an_explanation() -> None:
    compiled = compile_charter(
        make_charter(
            grants=(
                {
                    "model": "a",
                    "versions": "1.*",
                    "actions": ["predict"],
                    "output": {"kind": "label"},
                },
                {
                    "model": "b",
                    "versions": "2.0.0",
                    "actions": ["predict", "predict_encrypted"],
                    "output": {"kind": "label"},
                },
            )
        )
    )
    assert set(compiled.explanations) == {
        "northwind-acme@v1/grant/0",
        "northwind-acme@v1/grant/1",
        "northwind-acme@v1/window",
        "northwind-acme@v1/purpose",
        "northwind-acme@v1/partner",
    }
    for policy_id in compiled.explanations:
        assert f'@id("{policy_id}")' in compiled.text


def test_open_ended_charter_compiles_without_upper_bound() -> None:
    compiled = compile_charter(make_charter(valid={"from": "2026-01-01T00:00:00Z"}))
    assert ">=" not in compiled.text.split("/window")[1].split(";")[0]


def test_schema_validation_rejects_a_policy_outside_the_schema() -> None:
    bad = PARTNER_STATUS_POLICY + "permit (principal, action, resource) when { context.nope == 1 };"
    with pytest.raises(CharterInvalid, match="schema validation"):
        validate_policies(bad, source="test")


def test_unparseable_policy_is_rejected() -> None:
    with pytest.raises(CharterInvalid):
        validate_policies("permit (principal, action, resource", source="test")
