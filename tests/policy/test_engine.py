"""Decisions: default deny, forbid over permit, and no grant ever reaching past its scope."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelpact.charter import Action
from modelpact.errors import InvalidInput
from modelpact.policy import AccessRequest, PolicyEngine, compile_charter
from tests.factories import FROM, INSIDE, UNTIL, make_charter

ENGINE = PolicyEngine([compile_charter(make_charter())])
GOOD = AccessRequest(
    partner="acme",
    charter="northwind-acme",
    purpose="fraud-screening",
    action=Action.PREDICT,
    model="fraud-detector",
    version="1.4.2",
    at=INSIDE,
)
slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{0,12}", fullmatch=True)
versions = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}", fullmatch=True)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def test_the_granted_request_is_allowed_with_the_grant_as_reason() -> None:
    decision = ENGINE.decide(GOOD, partner_status="active")
    assert decision.allowed
    assert decision.policy_ids == ("northwind-acme@v1/grant/0",)
    assert "grant 0 of northwind-acme@v1" in decision.reasons[0]


@settings(max_examples=60, deadline=None)
@given(
    partner=slugs,
    charter=slugs,
    purpose=slugs,
    model=slugs,
    version=versions,
    at=instants,
    action=st.sampled_from(list(Action)),
)
def test_an_empty_policy_set_denies_everything(
    partner: str,
    charter: str,
    purpose: str,
    model: str,
    version: str,
    at: datetime,
    action: Action,
) -> None:
    request = AccessRequest(
        partner=partner,
        charter=charter,
        purpose=purpose,
        action=action,
        model=model,
        version=version,
        at=at,
    )
    decision = PolicyEngine().decide(request, partner_status="active")
    assert not decision.allowed
    assert decision.reasons


@settings(max_examples=60, deadline=None)
@given(partner=slugs, model=slugs, version=versions, purpose=slugs, charter=slugs)
def test_a_grant_never_reaches_another_partner_model_version_purpose_or_charter(
    partner: str, model: str, version: str, purpose: str, charter: str
) -> None:
    changes = []
    if partner != "acme":
        changes.append({"partner": partner})
    if model != "fraud-detector":
        changes.append({"model": model})
    if not version.startswith("1."):
        changes.append({"version": version})
    if purpose != "fraud-screening":
        changes.append({"purpose": purpose})
    if charter != "northwind-acme":
        changes.append({"charter": charter})
    for change in changes:
        decision = ENGINE.decide(replace(GOOD, **change), partner_status="active")
        assert not decision.allowed, change


@settings(max_examples=60, deadline=None)
@given(at=instants)
def test_outside_the_validity_window_denies_with_the_window_as_reason(at: datetime) -> None:
    decision = ENGINE.decide(replace(GOOD, at=at), partner_status="active")
    inside = FROM <= at < UNTIL
    assert decision.allowed is inside
    if not inside:
        assert decision.policy_ids == ("northwind-acme@v1/window",)


def test_window_edges_are_half_open() -> None:
    assert ENGINE.decide(replace(GOOD, at=FROM), partner_status="active").allowed
    before = replace(GOOD, at=FROM - timedelta(seconds=1))
    assert not ENGINE.decide(before, partner_status="active").allowed
    assert not ENGINE.decide(replace(GOOD, at=UNTIL), partner_status="active").allowed


def test_forbid_overrides_permit_for_a_suspended_partner() -> None:
    for status in ("suspended", "revoked", "unknown"):
        decision = ENGINE.decide(GOOD, partner_status=status)
        assert not decision.allowed
        assert decision.policy_ids == ("partner-not-active",)


def test_actions_not_granted_are_denied() -> None:
    for action in set(Action) - {Action.PREDICT}:
        decision = ENGINE.decide(replace(GOOD, action=action), partner_status="active")
        assert not decision.allowed
        assert decision.reasons == (
            f"no grant in northwind-acme@v1 allows {action.value} on fraud-detector version 1.4.2",
        )


def test_charters_of_one_partner_do_not_bleed_into_each_other() -> None:
    expired = make_charter(
        "old-deal", valid={"from": "2020-01-01T00:00:00Z", "until": "2021-01-01T00:00:00Z"}
    )
    broad = make_charter(
        "research",
        purposes=("research",),
        grants=(
            {
                "model": "other",
                "versions": "*",
                "actions": ["predict"],
                "output": {"kind": "label"},
            },
        ),
    )
    engine = PolicyEngine(compile_charter(c) for c in (make_charter(), expired, broad))
    assert engine.decide(GOOD, partner_status="active").allowed
    assert not engine.decide(replace(GOOD, charter="old-deal"), partner_status="active").allowed
    # The research charter's purpose does not unlock the fraud charter, nor its model.
    assert not engine.decide(replace(GOOD, purpose="research"), partner_status="active").allowed
    other = replace(GOOD, charter="research", purpose="research", model="fraud-detector")
    assert not engine.decide(other, partner_status="active").allowed
    ok = replace(GOOD, charter="research", purpose="research", model="other", version="9")
    assert engine.decide(ok, partner_status="active").allowed


def test_another_partners_charter_is_not_usable() -> None:
    engine = PolicyEngine(
        [compile_charter(make_charter()), compile_charter(make_charter("g", partner="globex"))]
    )
    stolen = replace(GOOD, partner="globex")
    decision = engine.decide(stolen, partner_status="active")
    assert not decision.allowed
    assert "northwind-acme@v1/partner" in decision.policy_ids


@settings(max_examples=40, deadline=None)
@given(version=versions)
def test_version_patterns_match_like_the_grant_says(version: str) -> None:
    for pattern in ("1.*", "*", "1.4.2"):
        charter = make_charter(
            grants=(
                {
                    "model": "fraud-detector",
                    "versions": pattern,
                    "actions": ["predict"],
                    "output": {"kind": "label"},
                },
            )
        )
        engine = PolicyEngine([compile_charter(charter)])
        allowed = engine.decide(replace(GOOD, version=version), partner_status="active").allowed
        assert allowed is charter.grants[0].covers_version(version)


def test_sub_second_window_edges_are_exact() -> None:
    start = datetime(2026, 1, 1, 0, 0, 0, 900_000, tzinfo=UTC)
    until = datetime(2026, 2, 1, 0, 0, 0, 250_000, tzinfo=UTC)
    charter = make_charter(valid={"from": start.isoformat(), "until": until.isoformat()})
    engine = PolicyEngine([compile_charter(charter)])
    for at in (
        start - timedelta(microseconds=1),
        start.replace(microsecond=500_000),
        until,
        until + timedelta(microseconds=1),
    ):
        assert not engine.decide(replace(GOOD, at=at), partner_status="active").allowed, at
        assert not charter.valid.contains(at)
    for at in (start, until - timedelta(microseconds=1)):
        assert engine.decide(replace(GOOD, at=at), partner_status="active").allowed, at
        assert charter.valid.contains(at)


def test_a_request_without_a_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput):
        replace(GOOD, at=datetime(2026, 3, 1, 12))


def test_every_time_a_compiled_policy_reads_is_among_its_instants() -> None:
    import re

    compiled = compile_charter(make_charter())
    read = {int(t) for t in re.findall(r"context\.now\s*(?:<|>=)\s*(-?\d+)", compiled.text)}
    assert compiled.text.count("context.now") == len(re.findall(r"context\.now", compiled.text))
    assert read == set(compiled.instants)
    assert compiled.text.count("context.now") == len(
        re.findall(r"context\.now\s*(?:<|>=)\s*-?\d+", compiled.text)
    )  # no other use of the time, which the kept decisions rely on


_near_edges = st.sampled_from([FROM, UNTIL]).flatmap(
    lambda edge: st.integers(-3, 3).map(lambda us: edge + timedelta(microseconds=us))
)


@settings(max_examples=200, deadline=None)
@given(
    asks=st.lists(
        st.tuples(
            st.sampled_from(["acme", "globex"]),
            st.sampled_from(["fraud-screening", "marketing"]),
            st.sampled_from(list(Action)),
            st.sampled_from(["1.4.2", "2.0.0"]),
            st.sampled_from(["active", "suspended"]),
            _near_edges | instants,
        ),
        min_size=1,
        max_size=12,
    )
)
def test_kept_decisions_are_cedars_answers(
    asks: list[tuple[str, str, Action, str, str, datetime]],
) -> None:
    engine = PolicyEngine([compile_charter(make_charter())])
    for partner, purpose, action, version, status, at in asks:
        request = replace(
            GOOD, partner=partner, purpose=purpose, action=action, version=version, at=at
        )
        assert engine.decide(request, partner_status=status) == engine.evaluate(
            request, partner_status=status
        )
