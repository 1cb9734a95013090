from __future__ import annotations

import pytest

from modelpact.errors import (
    CharterInvalid,
    ModelpactError,
    NotFound,
    SignatureInvalid,
    Tampered,
    quote_untrusted,
)


def test_diagnostics_is_summary_and_hint_on_one_line() -> None:
    assert NotFound("no model m", hint="register it").diagnostics() == "no model m — register it"
    assert NotFound("no model m").diagnostics() == "no model m"


def test_charter_invalid_shows_the_first_finding_and_a_count() -> None:
    error = CharterInvalid("c.yaml has errors", findings=("c.yaml:3: error: a", "c.yaml:9: b"))
    assert error.diagnostics() == "c.yaml has errors: c.yaml:3: error: a (and 1 more)"


def test_family_lets_callers_tell_failures_apart() -> None:
    assert issubclass(SignatureInvalid, Tampered)
    assert issubclass(Tampered, ModelpactError)
    assert not issubclass(NotFound, Tampered)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain", "'plain'"),
        ("two\nlines", "'two\\nlines'"),
        ("\x1b[31mred", "'\\x1b[31mred'"),
        ("it's", "'it\\'s'"),
        ("x" * 100, "'" + "x" * 79 + "…'"),
    ],
)
def test_untrusted_names_are_quoted_escaped_and_cut(raw: str, shown: str) -> None:
    assert quote_untrusted(raw) == shown
    assert quote_untrusted(raw).isprintable()
