"""Lint: each rule fires on the risk it names, at the line to change, and nowhere else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelpact.charter import RULES, Charter, Concern, Finding, check_charter, lint_charter

from .examples import example_charter, example_text


def findings(text: str) -> list[tuple[str, int | None, str]]:
    report = check_charter(text, source="c.yaml")
    assert report.charter is not None, [str(f) for f in report.findings]
    return [(f.severity, f.line, f.path) for f in report.findings]


def messages(text: str) -> list[str]:
    return [f.message for f in check_charter(text).findings]


def second_grant(versions: str, model: str = "fraud-detector") -> dict[int, list[str]]:
    return {
        22: [
            f"  - model: {model}",
            f'    versions: "{versions}"',
            "    actions: [predict]",
            "    output: {kind: label}",
        ]
    }


def test_the_clean_example_raises_nothing() -> None:
    assert lint_charter(example_charter()) == ()


def test_no_expiry() -> None:
    text = example_text(drop=(13,))
    assert findings(text) == [("warning", 11, "valid.until")]
    assert messages(text)[0].startswith("no expiry date")


@pytest.mark.parametrize(
    ("until", "expected"),
    [
        ("2027-01-01T00:00:00Z", []),
        ("2027-01-01T00:00:01Z", [("warning", 13, "valid.until")]),
        ("2030-01-01T00:00:00Z", [("warning", 13, "valid.until")]),
    ],
)
def test_validity_over_a_year(until: str, expected: list[tuple[str, int, str]]) -> None:
    assert findings(example_text({13: f"  until: {until}"})) == expected


def test_validity_over_a_year_from_29_february() -> None:
    text = example_text({12: "  from: 2028-02-29T00:00:00Z", 13: "  until: 2029-02-28T00:00:00Z"})
    assert findings(text) == []
    text = example_text({12: "  from: 2028-02-29T00:00:00Z", 13: "  until: 2029-03-01T00:00:00Z"})
    assert messages(text) == [
        "valid for 366 days (over a year): a shorter charter forces a periodic review"
    ]


@pytest.mark.parametrize(
    "output",
    ["{kind: scores}", "{kind: top_k, k: 3}", "{kind: noised_scores, epsilon: 1.0, budget: 9}"],
)
def test_unrounded_scores(output: str) -> None:
    text = example_text({20: f"    output: {output}"}, drop=(21, 22))
    assert findings(text) == [("warning", 20, "grants[0].output.decimals")]
    assert messages(text)[0].startswith("scores exposed unrounded")


@pytest.mark.parametrize("output", ["{kind: label}", "{kind: embedding}"])
def test_outputs_without_scores_need_no_rounding(output: str) -> None:
    assert findings(example_text({20: f"    output: {output}"}, drop=(21, 22))) == []


def test_weak_privacy_budget() -> None:
    text = example_text(
        {21: "      kind: noised_scores", 22: "      epsilon: 50"},
        insert={22: ["      decimals: 2", "      budget: 500"]},
    )
    assert findings(text) == [("warning", 22, "grants[0].output.epsilon")]
    assert messages(text)[0].startswith("epsilon 50 is over 10")


def test_unbounded_privacy() -> None:
    text = example_text(
        {21: "      kind: noised_scores", 22: "      epsilon: 1"},
        insert={22: ["      decimals: 2"]},
    )
    assert findings(text) == [("warning", 21, "grants[0].output.kind")]
    assert "without a budget" in messages(text)[0]


def test_no_daily_quota_also_flags_uninspectable_actions() -> None:
    text = example_text(drop=(25,))
    assert findings(text) == [
        ("warning", 19, "grants[0].actions[1]"),
        ("warning", 23, "limits.daily_quota"),
    ]
    why = messages(text)[0]
    assert why.startswith("predict_encrypted without limits.daily_quota")
    assert "can't be inspected" in why
    assert "volume is the only brake" in why


@pytest.mark.parametrize("action", ["predict_joint", "evaluate_joint"])
def test_joint_actions_without_quota(action: str) -> None:
    text = example_text({19: f"    actions: [predict, {action}]"}, drop=(25,))
    assert ("warning", 19, "grants[0].actions[1]") in findings(text)


def test_plain_predict_without_quota_is_only_the_quota_warning() -> None:
    text = example_text({19: "    actions: [predict]"}, drop=(25,))
    assert findings(text) == [("warning", 23, "limits.daily_quota")]


def test_no_rate_limit() -> None:
    assert findings(example_text(drop=(24,))) == [("warning", 23, "limits.requests_per_minute")]


@pytest.mark.parametrize(("ttl", "warned"), [("1h", False), ("60m", False), ("61m", True)])
def test_session_over_an_hour(ttl: str, warned: bool) -> None:
    got = findings(example_text({27: f"  session_ttl: {ttl}"}))
    assert got == ([("warning", 27, "limits.session_ttl")] if warned else [])


def test_watermark_off() -> None:
    text = example_text({29: "  watermark: false"})
    assert findings(text) == [("warning", 29, "protections.watermark")]


def test_extraction_monitor_off() -> None:
    text = example_text({30: "  extraction_monitor: null"}, drop=(31, 32))
    assert findings(text) == [("warning", 30, "protections.extraction_monitor")]


def test_all_versions() -> None:
    text = example_text({18: '    versions: "*"'})
    assert findings(text) == [("warning", 18, "grants[0].versions")]
    assert "future version" in messages(text)[0]


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("1.*", "1.2.0", True),
        ("1.*", "1.*", True),
        ("1.*", "1.2.*", True),
        ("1.2.*", "1.*", True),
        ("1.2.0", "1.2.0", True),
        ("1.*", "10.0", False),
        ("1.*", "2.*", False),
        ("1.2.0", "1.2.1", False),
        ("1.2.*", "1.3.0", False),
        ("1.*", "*", True),
    ],
)
def test_overlapping_grants(first: str, second: str, overlap: bool) -> None:
    text = example_text({18: f'    versions: "{first}"'}, insert=second_grant(second))
    errors = [f for f in findings(text) if f[0] == "error"]
    assert errors == ([("error", 24, "grants[1].versions")] if overlap else [])


def test_grants_of_different_models_never_overlap() -> None:
    text = example_text(insert=second_grant("1.*", model="churn"))
    assert [f for f in findings(text) if f[0] == "error"] == []


def test_overlap_message_names_both_grants() -> None:
    text = example_text(insert=second_grant("1.0"))
    assert messages(text)[0] == (
        "grants[0] and grants[1] both cover versions of fraud-detector ('1.*' and '1.0'): "
        "which actions and output policy apply would be ambiguous; merge them or make the "
        "version patterns disjoint"
    )


def test_nobody_told_points_at_the_trigger_when_incident_response_is_missing() -> None:
    text = example_text(drop=(33, 34, 35))
    assert findings(text) == [("warning", 32, "incident_response.contacts")]
    assert messages(text)[0].startswith("the extraction monitor may suspend this partner")


def test_nobody_told_with_empty_contacts() -> None:
    text = example_text({34: "  contacts: []"})
    assert findings(text) == [("warning", 34, "incident_response.contacts")]


def test_nobody_told_for_revoke_on_alert() -> None:
    text = example_text(
        {31: "    on_alert: revoke", 32: "    on_confirmed: alert"}, drop=(33, 34, 35)
    )
    assert findings(text) == [("warning", 31, "incident_response.contacts")]


def test_nobody_told_only_when_something_stops_the_partner() -> None:
    text = example_text({32: "    on_confirmed: harden"}, drop=(33, 34, 35))
    assert findings(text) == []


def test_nobody_told_uses_the_default_monitor_when_not_written() -> None:
    # The default monitor suspends on a confirmed extraction.
    text = example_text(drop=(30, 31, 32, 33, 34, 35))
    assert findings(text) == [("warning", 28, "incident_response.contacts")]


def test_marks_not_replayable() -> None:
    text = example_text({37: "  retention_days: 0"})
    assert findings(text) == [("warning", 37, "exit.retention_days")]
    assert "marks cannot be replayed after exit" in messages(text)[0]
    assert findings(example_text({37: "  retention_days: 0", 29: "  watermark: false"})) == [
        ("warning", 29, "protections.watermark")
    ]


def test_lint_without_lines_and_with_own_rules() -> None:
    charter = example_charter()

    def always(c: Charter) -> Iterator[Concern]:
        yield Concern("warning", ("limits", "max_batch_rows"), f"{c.ref} batches")

    assert lint_charter(charter, rules=[always], source="s") == (
        Finding("warning", None, "limits.max_batch_rows", "northwind-acme-fraud@v3 batches", "s"),
    )


def test_rules_are_named_functions() -> None:
    names = [rule.__name__ for rule in RULES]
    assert len(set(names)) == len(names) == 18
    assert "overlapping_grants" in names


JOINT = ["joint:", "  compute_party: {id: tallyhall, name: Tally Hall}", "  metrics: [accuracy]"]


def test_a_joint_action_needs_the_joint_section() -> None:
    text = example_text({19: "    actions: [predict, predict_joint]"})
    assert findings(text) == [("error", 19, "grants[0].actions[1]")]
    assert messages(text)[0].startswith("predict_joint needs a joint section")
    with_terms = example_text({19: "    actions: [predict, predict_joint]"}, insert={37: JOINT})
    assert findings(with_terms) == []


def test_an_evaluation_must_be_able_to_reveal_a_metric() -> None:
    terms = [*JOINT[:2], "  metrics: []"]
    text = example_text({19: "    actions: [evaluate_joint]"}, insert={37: terms})
    assert findings(text) == [("error", 38, "grants[0].actions[0]")]
    assert "could reveal nothing" in messages(text)[0]


def test_joint_terms_without_a_joint_grant_are_flagged() -> None:
    text = example_text(insert={37: JOINT})
    assert findings(text) == [("warning", 38, "joint")]
