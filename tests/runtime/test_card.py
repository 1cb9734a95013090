"""Model cards: strict YAML in, canonical JSON out."""

from __future__ import annotations

import json

import pydantic
import pytest

from modelpact.errors import InvalidInput
from modelpact.runtime import MAX_CARD_BYTES, ModelCard, card_to_json, load_card

FULL_CARD = """\
description: Scores card transactions for fraud risk.
intended_use: Screening merchant transactions before settlement.
limitations: Trained on EU transactions only; not for credit decisions.
training_data: 2019-2024 Northwind card transactions, pseudonymised.
metrics:
  auc: 0.93
  recall_at_1pct_fpr: 0.61
  calibration_bins: 10
contacts: [ml-team@northwind.example, security@northwind.example]
license: Proprietary, use under charter only
"""


def invalid(text: str, source: str = "card.yaml") -> str:
    with pytest.raises(InvalidInput) as caught:
        load_card(text, source=source)
    message = caught.value.diagnostics()
    assert "\n" not in message
    return message


def test_full_card_loads() -> None:
    card = load_card(FULL_CARD, source="card.yaml")
    assert card.description == "Scores card transactions for fraud risk."
    assert card.metrics == {"auc": 0.93, "recall_at_1pct_fpr": 0.61, "calibration_bins": 10.0}
    assert isinstance(card.metrics["calibration_bins"], float)
    assert card.contacts == ("ml-team@northwind.example", "security@northwind.example")
    assert card.license == "Proprietary, use under charter only"


def test_minimal_card_has_defaults() -> None:
    card = load_card("description: A model.\n", source="card.yaml")
    assert card == ModelCard(description="A model.")
    assert card.metrics == {}
    assert card.contacts == ()
    assert card.intended_use is None


def test_card_is_frozen() -> None:
    card = load_card(FULL_CARD, source="card.yaml")
    with pytest.raises(pydantic.ValidationError):
        card.description = "changed"  # type: ignore[misc]


def test_card_json_is_canonical_and_round_trips() -> None:
    card = load_card(FULL_CARD, source="card.yaml")
    text = card_to_json(card)
    assert text == card_to_json(load_card(FULL_CARD, source="again.yaml"))
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert ModelCard.model_validate_json(text) == card


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("description: x\nlimitation: typo\n", "unknown field 'limitation'"),
        ("description: x\nowner: me\n", "unknown field 'owner'"),
        ("intended_use: x\n", "field 'description' is required"),
        ("description: 42\n", "field 'description': input should be a valid string"),
        ("description: ''\n", "field 'description'"),
        ("description: x\nmetrics: {auc: '0.93'}\n", "field 'metrics.auc'"),
        ("description: x\nmetrics: {auc: true}\n", "field 'metrics.auc'"),
        ("description: x\nmetrics: {auc: .nan}\n", "field 'metrics.auc': input should be a finite"),
        ("description: x\nmetrics: [0.9]\n", "field 'metrics'"),
        ("description: x\ncontacts: ops@example.org\n", "field 'contacts'"),
        ("description: x\ncontacts: [ok@example.org, 7]\n", "field 'contacts[1]'"),
        ("description: x\nlicense: 2024-01-01\n", "field 'license'"),
        ("description: !!binary aGVsbG8=\n", "field 'description'"),
        ("description: x\n1: y\n", "field names must be text"),
    ],
)
def test_bad_fields_are_named(text: str, expected: str) -> None:
    assert expected in invalid(text)


def test_several_problems_are_counted() -> None:
    assert "(and 1 more)" in invalid("colour: blue\nsize: 3\ndescription: x\n")


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "- a\n- b\n", "just a sentence\n", "42\n"]
)
def test_card_must_be_a_mapping(text: str) -> None:
    assert "must be a mapping of fields" in invalid(text)


def test_invalid_yaml_names_the_line() -> None:
    message = invalid("description: x\nmetrics: {auc: 0.9\n")
    assert "not valid YAML" in message
    assert "line" in message


def test_python_tags_are_refused() -> None:
    assert "not valid YAML" in invalid("description: !!python/object/apply:os.system ['id']\n")


def test_aliases_are_refused() -> None:
    bomb = "a: &a [x, x, x]\nb: &b [*a, *a, *a]\ndescription: *b\n"
    assert "aliases" in invalid(bomb)


def test_duplicate_keys_are_refused() -> None:
    assert "duplicate key 'description'" in invalid("description: a\ndescription: b\n")


def test_oversized_card_is_refused() -> None:
    text = "description: " + "x" * MAX_CARD_BYTES + "\n"
    assert "over the limit" in invalid(text)


def test_source_is_named_and_escaped() -> None:
    message = invalid("nope: 1\n", source="cards/\x1b[31mfraud.yaml")
    assert "'cards/\\x1b[31mfraud.yaml'" in message
    assert "\x1b" not in message


def test_text_is_required() -> None:
    with pytest.raises(InvalidInput, match="must be text"):
        load_card(b"description: x", source="card.yaml")  # type: ignore[arg-type]
