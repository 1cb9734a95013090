"""Parsing: every way a charter file can be wrong, each reported at the line to fix."""

from __future__ import annotations

import pytest

from modelpact.charter import (
    MAX_CHARTER_BYTES,
    Charter,
    Finding,
    charter_from_document,
    check_charter,
    load_charter,
)
from modelpact.errors import CharterInvalid, InvalidInput

from .examples import OWNER_KEY, example_document, example_lines, example_text

ZONE = "give a time with an explicit zone, e.g. 2026-01-01T00:00:00Z"


def only_error(text: str) -> Finding:
    report = check_charter(text, source="c.yaml")
    assert report.charter is None or report.errors, report
    assert len(report.errors) == 1, [str(f) for f in report.findings]
    return report.errors[0]


def test_clean_example_has_no_findings() -> None:
    report = check_charter(example_text(), source="c.yaml")
    assert report.findings == ()
    assert report.ok
    assert isinstance(report.charter, Charter)
    assert load_charter(example_text()) == report.charter


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        pytest.param(
            example_text(insert={10: ["notes: hello"]}),
            11,
            "notes",
            "unknown field 'notes' (not part of the charter schema)",
            id="unknown-top-level",
        ),
        pytest.param(
            example_text(insert={27: ["  burst: 10"]}),
            28,
            "limits.burst",
            "unknown field 'burst' (not part of the charter schema)",
            id="unknown-nested",
        ),
        pytest.param(
            example_text(drop=(10,)), None, "objective", "required field missing", id="missing-top"
        ),
        pytest.param(
            example_text(drop=(21,)),
            20,
            "grants[0].output.kind",
            "required field missing",
            id="missing-nested-points-at-parent",
        ),
        pytest.param(
            example_text({12: "  from: 2026-01-01"}), 12, "valid.from", ZONE, id="date-only"
        ),
        pytest.param(
            example_text({13: "  until: 2026-06-30T00:00:00"}),
            13,
            "valid.until",
            ZONE,
            id="naive-datetime",
        ),
        pytest.param(
            example_text({13: '  until: "2026-06-30"'}), 13, "valid.until", ZONE, id="quoted-date"
        ),
        pytest.param(
            example_text({18: "    versions: 1.0"}),
            18,
            "grants[0].versions",
            'quote the version pattern, e.g. "1.*"',
            id="float-version",
        ),
        pytest.param(
            example_text({18: "    versions: 2"}),
            18,
            "grants[0].versions",
            'quote the version pattern, e.g. "1.*"',
            id="int-version",
        ),
        pytest.param(
            example_text({18: '    versions: "1.x.*.*"'}),
            18,
            "grants[0].versions",
            'must be an exact version ("1.2.0"), a prefix ("1.*") or "*"',
            id="bad-version-pattern",
        ),
        pytest.param(
            example_text({19: "    actions: [predict, steal]"}),
            19,
            "grants[0].actions[1]",
            "must be one of 'predict', 'predict_encrypted', 'predict_joint' or 'evaluate_joint'",
            id="bad-action",
        ),
        pytest.param(
            example_text({27: "  session_ttl: 15x"}),
            27,
            "limits.session_ttl",
            "must be a duration such as 90s, 15m, 1h or 1d",
            id="bad-duration",
        ),
        pytest.param(
            example_text({1: "charter: Northwind_Acme"}),
            1,
            "charter",
            "must be a lower-case slug: a-z, 0-9 and '-', at most 63 characters, "
            "not starting with '-'",
            id="bad-slug",
        ),
        pytest.param(
            example_text({34: "  contacts: [security]"}),
            34,
            "incident_response.contacts[0]",
            "must be an e-mail address",
            id="bad-contact",
        ),
        pytest.param(
            example_text({35: "  webhook: http://hooks.example"}),
            35,
            "incident_response.webhook",
            "must be an https:// URL",
            id="plain-http-webhook",
        ),
        pytest.param(
            example_text({5: "  key: ssh-ed25519 AAAA"}),
            5,
            "owner.key",
            "public key must be written ed25519:<base64>",
            id="bad-owner-key",
        ),
        pytest.param(
            example_text({9: f"  key: {OWNER_KEY.verify_key.encode()}"}),
            6,
            "partner",
            "owner and partner must have different keys",
            id="same-keys",
        ),
        pytest.param(
            example_text({13: "  until: 2025-06-30T00:00:00Z"}),
            13,
            "valid.until",
            "valid.until must be after valid.from",
            id="until-before-from",
        ),
        pytest.param(
            example_text({2: "version: 0"}),
            2,
            "version",
            "must be greater than or equal to 1",
            id="version-zero",
        ),
        pytest.param(
            example_text({2: "version: three"}), 2, "version", "must be a whole number", id="nan"
        ),
        pytest.param(
            example_text({29: "  watermark: maybe"}),
            29,
            "protections.watermark",
            "must be true or false",
            id="not-a-bool",
        ),
        pytest.param(
            example_text({10: "objective: '   '"}),
            10,
            "objective",
            "must not be empty",
            id="blank-objective",
        ),
        pytest.param(
            example_text({14: "purposes: []"}, drop=(15,)),
            14,
            "purposes",
            "needs at least one entry",
            id="no-purposes",
        ),
        pytest.param(
            example_text({3: "owner: Northwind"}, drop=(4, 5)),
            3,
            "owner",
            "must be a mapping of fields",
            id="owner-not-mapping",
        ),
        pytest.param(
            example_text({14: "purposes: fraud-screening"}, drop=(15,)),
            14,
            "purposes",
            "must be a list",
            id="purposes-not-list",
        ),
        pytest.param(
            example_text({8: "  name: 42"}),
            8,
            "partner.name",
            "must be text; put it in quotes",
            id="number-as-name",
        ),
        pytest.param(
            example_text({22: "      k: 3"}),
            20,
            "grants[0].output",
            "k applies only to top_k, not scores",
            id="output-field-for-other-kind",
        ),
    ],
)
def test_schema_errors_point_at_the_line(
    text: str, line: int | None, path: str, message: str
) -> None:
    finding = only_error(text)
    assert (finding.line, finding.path, finding.message) == (line, path, message)
    assert finding.severity == "error"


def test_an_invalid_grant_does_not_also_report_grants_too_short() -> None:
    finding = only_error(example_text({21: "      kind: everything"}))
    assert finding.path == "grants[0].output.kind"
    assert finding.line == 21


def test_all_schema_errors_are_reported_sorted_by_line() -> None:
    text = example_text({2: "version: 0", 12: "  from: 2026-01-01", 27: "  session_ttl: 1w"})
    report = check_charter(text, source="c.yaml")
    assert [(f.line, f.path) for f in report.errors] == [
        (2, "version"),
        (12, "valid.from"),
        (27, "limits.session_ttl"),
    ]


def test_lint_runs_only_when_the_schema_holds() -> None:
    # No daily_quota would be a warning, but the schema error comes first.
    text = example_text({2: "version: 0"}, drop=(25,))
    report = check_charter(text)
    assert report.charter is None
    assert report.warnings == ()
    assert check_charter(example_text(drop=(25,))).warnings != ()


# -- the YAML itself ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        pytest.param(
            example_text(insert={26: ["  daily_quota: 90000"]}),
            27,
            "limits.daily_quota",
            "duplicate key (YAML would keep only the last one); keep one",
            id="duplicate-nested-key",
        ),
        pytest.param(
            example_text(insert={37: ["version: 4"]}),
            38,
            "version",
            "duplicate key (YAML would keep only the last one); keep one",
            id="duplicate-top-key",
        ),
        pytest.param(
            example_text({19: "    actions: [predict, predict_encrypted"}),
            20,
            "",
            "YAML syntax error: expected ',' or ']', but got ':'",
            id="syntax",
        ),
        pytest.param(
            example_text({7: "\tid: acme"}),
            7,
            "",
            "YAML syntax error: found character '\\t' that cannot start any token",
            id="tab",
        ),
        pytest.param(
            example_text({15: "  - &p fraud-screening", 17: "  - model: *p"}),
            17,
            "",
            "anchors and aliases are not allowed in a charter; write the value out",
            id="alias",
        ),
        pytest.param(
            example_text(insert={27: ["  <<: {max_batch_rows: 10}"]}),
            28,
            "limits",
            "merge keys (<<) are not allowed in a charter; write the fields out",
            id="merge-key",
        ),
        pytest.param(
            example_text({10: "objective: !!python/object/apply:os.system [ls]"}),
            10,
            "",
            "YAML value not allowed in a charter: could not determine a constructor for the "
            "tag 'tag:yaml.org,2002:python/object/apply:os.system'",
            id="python-tag",
        ),
        pytest.param(
            example_text({10: "objective: ring \x07 bell"}),
            10,
            "",
            "YAML cannot contain the character U+0007",
            id="control-character",
        ),
        pytest.param(
            example_text(insert={25: ["  1: 2"]}),
            26,
            "limits",
            "a field name must be text, not '1'",
            id="number-as-key",
        ),
        pytest.param(
            example_text(insert={2: ["? [a, b]", ": c"]}),
            3,
            "",
            "a field name must be text, not a list or mapping",
            id="list-as-key",
        ),
        pytest.param(
            example_text({12: "  from_: 2026-01-01T00:00:00Z"}),
            12,
            "valid.from_",
            "unknown field 'from_' (not part of the charter schema); write 'from'",
            id="python-name-of-from",
        ),
        pytest.param(
            "charter: " + "[" * 5000 + "]" * 5000 + "\n",
            None,
            "",
            "the charter is nested too deeply",
            id="deep-nesting",
        ),
        pytest.param(example_text() + "---\nx: 1\n", 38, "", None, id="two-documents"),
        pytest.param("- charter: x\n", 1, "", None, id="a-list"),
        pytest.param("just words\n", 1, "", None, id="a-scalar"),
        pytest.param("", None, "", "the charter is empty", id="empty"),
        pytest.param("# nothing\n---\n", None, "", "the charter is empty", id="only-comment"),
    ],
)
def test_yaml_problems_point_at_the_line(
    text: str, line: int | None, path: str, message: str | None
) -> None:
    finding = only_error(text)
    assert (finding.line, finding.path) == (line, path)
    if message is not None:
        assert finding.message == message


def test_not_a_mapping_says_what_a_charter_is() -> None:
    assert "a charter is a YAML mapping" in only_error("- 1\n").message


def test_two_documents_are_refused() -> None:
    assert only_error(example_text() + "---\nx: 1\n").message == (
        "a charter file holds one YAML document; remove the second '---'"
    )


def test_over_256_kib_is_refused_before_parsing() -> None:
    text = example_text() + "#" * MAX_CHARTER_BYTES + "\n"
    finding = only_error(text)
    assert finding.line is None
    assert "over the 256 KiB limit" in finding.message


def test_size_limit_counts_bytes_not_characters() -> None:
    padding = "# " + "é" * (MAX_CHARTER_BYTES // 2) + "\n"  # two bytes each in UTF-8
    assert "over the 256 KiB limit" in only_error(example_text() + padding).message


def test_duplicate_keys_are_reported_alongside_schema_errors() -> None:
    text = example_text({2: "version: 0"}, insert={26: ["  daily_quota: 90000"]})
    assert [f.path for f in check_charter(text).errors] == ["version", "limits.daily_quota"]


# -- load_charter and friends -------------------------------------------------------------------


def test_load_charter_raises_with_every_error_as_a_line() -> None:
    text = example_text({12: "  from: 2026-01-01", 18: "    versions: 1.0"})
    with pytest.raises(CharterInvalid) as exc:
        load_charter(text, source="pilot.yaml")
    assert exc.value.summary == "pilot.yaml: the charter has 2 errors"
    assert exc.value.findings == (
        f"pilot.yaml:12: error: valid.from: {ZONE}",
        'pilot.yaml:18: error: grants[0].versions: quote the version pattern, e.g. "1.*"',
    )
    assert "(and 1 more)" in exc.value.diagnostics()


def test_load_charter_raises_on_a_lint_error_too() -> None:
    second = [
        "  - model: fraud-detector",
        '    versions: "1.2.0"',
        "    actions: [predict]",
        "    output: {kind: label}",
    ]
    with pytest.raises(CharterInvalid) as exc:
        load_charter(example_text(insert={22: second}), source="c.yaml")
    assert exc.value.findings[0].startswith("c.yaml:24: error: grants[1].versions: ")


def test_load_charter_accepts_warnings() -> None:
    charter = load_charter(example_text(drop=(25,)))
    assert charter.limits.daily_quota is None


def test_load_charter_never_echoes_values() -> None:
    secret = "-----BEGIN PRIVATE KEY----- MC4CAQAwBQYDK2VwBCIEIG"
    with pytest.raises(CharterInvalid) as exc:
        load_charter(example_text({5: f"  key: {secret}"}))
    assert all("PRIVATE" not in line for line in exc.value.findings)
    assert "PRIVATE" not in exc.value.diagnostics()


def test_unknown_field_name_is_shortened() -> None:
    finding = only_error(example_text(insert={1: ["x" * 100 + ": 1"]}))
    assert finding.message == "unknown field '" + "x" * 39 + "…' (not part of the charter schema)"


def test_finding_str() -> None:
    assert str(Finding("error", 3, "limits", "bad", "c.yaml")) == "c.yaml:3: error: limits: bad"
    assert str(Finding("warning", None, "", "whole", "c.yaml")) == "c.yaml: warning: whole"
    assert str(Finding("error", None, "objective", "required field missing")) == (
        "<charter>: error: objective: required field missing"
    )


def test_charter_from_document() -> None:
    document = example_document()
    assert charter_from_document(document) == load_charter(example_text())
    document["limits"]["daily_quota"] = 0
    with pytest.raises(CharterInvalid) as exc:
        charter_from_document(document, source="db")
    assert exc.value.findings == (
        "db: error: limits.daily_quota: must be greater than or equal to 1",
    )
    with pytest.raises(InvalidInput):
        charter_from_document(["not", "a", "mapping"])


def test_example_lines_match_the_numbers_tests_use() -> None:
    lines = example_lines()
    assert lines[17] == '    versions: "1.*"'
    assert lines[24] == "  daily_quota: 50000"


def test_report_accepts_a_later_error() -> None:
    report = check_charter(example_text(), source="c.yaml")
    assert not report.has_errors
    later = report.with_error("the compiled policy does not parse")
    assert later.has_errors
    assert not later.ok
    assert report.ok  # reports are values
    assert str(later.errors[0]) == "c.yaml: error: the compiled policy does not parse"
