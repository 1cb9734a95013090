"""The diff both parties read before signing a new charter version."""

from __future__ import annotations

from hypothesis import given

from modelpact.charter import Charter, diff_charters, diff_documents, load_charter

from .examples import PROPERTY, charters, example_charter, example_text


def test_equal_charters_have_no_diff() -> None:
    assert diff_charters(example_charter(), example_charter()) == ()


def test_changed_value() -> None:
    new = load_charter(example_text({2: "version: 4", 25: "  daily_quota: 60000"}))
    assert diff_charters(example_charter(), new) == (
        "~ version: 3 -> 4",
        "~ limits.daily_quota: 50000 -> 60000",
    )


def test_added_and_removed_fields() -> None:
    new = load_charter(example_text(drop=(13,)))
    assert diff_charters(example_charter(), new) == ("- valid.until: 2026-06-30T00:00:00Z",)
    assert diff_charters(new, example_charter()) == ("+ valid.until: 2026-06-30T00:00:00Z",)


def test_added_grant_is_one_line() -> None:
    grant = [
        "  - model: churn",
        '    versions: "2.*"',
        "    actions: [predict]",
        "    output: {kind: top_k, k: 3, decimals: 1}",
    ]
    new = load_charter(example_text(insert={22: grant}))
    assert diff_charters(example_charter(), new) == (
        "+ grants[1]: {model: churn, versions: 2.*, actions: [predict], "
        "output: {kind: top_k, decimals: 1, k: 3}}",
    )


def test_removed_first_purpose_is_one_line() -> None:
    old = load_charter(example_text(insert={15: ["  - research", "  - audit"]}))
    new = load_charter(example_text({15: "  - research"}, insert={15: ["  - audit"]}))
    assert diff_charters(old, new) == ("- purposes[0]: fraud-screening",)
    assert diff_charters(new, old) == ("+ purposes[0]: fraud-screening",)


def test_removed_last_purpose() -> None:
    old = load_charter(example_text(insert={15: ["  - research"]}))
    assert diff_charters(old, example_charter()) == ("- purposes[1]: research",)


def test_change_inside_a_grant_is_shown_by_field() -> None:
    new = load_charter(example_text({22: "      decimals: 3", 19: "    actions: [predict]"}))
    assert diff_charters(example_charter(), new) == (
        "- grants[0].actions[1]: predict_encrypted",
        "~ grants[0].output.decimals: 2 -> 3",
    )


def test_monitor_turned_off() -> None:
    new = load_charter(example_text({30: "  extraction_monitor: null"}, drop=(31, 32)))
    assert diff_charters(example_charter(), new) == (
        "~ protections.extraction_monitor: {on_alert: throttle, on_confirmed: suspend} -> null",
    )


def test_values_that_need_quotes_are_quoted() -> None:
    assert diff_documents({"objective": "a, b"}, {"objective": "a"}) == (
        '~ objective: "a, b" -> a',
    )
    assert diff_documents({"x": True}, {"x": "true"}) == ('~ x: true -> "true"',)


@PROPERTY
@given(charters(), charters())
def test_diff_is_empty_exactly_when_equal(old: Charter, new: Charter) -> None:
    assert (diff_charters(old, new) == ()) == (old == new)
    assert diff_charters(old, old) == ()
