"""The public names of modelpact.charter: a change here is a change for every caller."""

from __future__ import annotations

import importlib

import pytest

import modelpact.charter

MODULES = ["canonical", "diff", "findings", "lint", "model", "parse", "signed"]


def test_public_names() -> None:
    assert sorted(modelpact.charter.__all__) == sorted(
        [
            "MAX_CHARTER_BYTES",
            "RULES",
            "SIGNED_CHARTER_FORMAT",
            "Action",
            "AttestationPins",
            "Charter",
            "CharterReport",
            "Concern",
            "ExitTerms",
            "ExtractionMonitor",
            "FieldPath",
            "Finding",
            "Grant",
            "IncidentResponse",
            "Limits",
            "LineMap",
            "LintRule",
            "OutputKind",
            "OutputPolicy",
            "Owner",
            "PartnerParty",
            "Protections",
            "Response",
            "Role",
            "SLUG_PATTERN",
            "SignedCharter",
            "Validity",
            "charter_bytes",
            "charter_digest",
            "charter_from_document",
            "check_charter",
            "diff_charters",
            "diff_documents",
            "format_path",
            "lint_charter",
            "load_charter",
            "parse_duration",
            "schema_findings",
            "to_yaml",
        ]
    )
    for name in modelpact.charter.__all__:
        assert getattr(modelpact.charter, name) is not None


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_its_names_and_why(name: str) -> None:
    module = importlib.import_module(f"modelpact.charter.{name}")
    assert module.__doc__
    assert module.__all__
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.{public}"


def test_the_package_stays_pure() -> None:
    forbidden = ("sqlalchemy", "fastapi", "httpx", "cedarpy", "cryptography", "modelpact.store")
    for name in MODULES:
        source = importlib.import_module(f"modelpact.charter.{name}").__file__
        assert source is not None
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
        for module in forbidden:
            assert f"import {module}" not in text
            assert f"from {module}" not in text
        assert "yaml.load(" not in text
        assert "open(" not in text
