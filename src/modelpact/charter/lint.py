"""Lint: risks in a charter that the schema accepts.

The schema says what a charter *can* say; lint says what it probably should not.
Each rule is a small named function from a :class:`Charter` to the
:class:`Concern` s it raises, so a rule is added by writing one function and
listing it in :data:`RULES`.  Most concerns are warnings (the owner may accept
the risk knowingly); a few are errors because the charter would be ambiguous.
:func:`lint_charter` turns concerns into findings pointing at a line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from modelpact.charter.findings import FieldPath, Finding, LineMap, Severity, format_path
from modelpact.charter.model import Action, Charter, Grant, OutputKind, Response

__all__ = [
    "MAX_SENSIBLE_EPSILON",
    "RULES",
    "Concern",
    "LintRule",
    "all_versions",
    "evaluation_reveals_nothing",
    "extraction_monitor_off",
    "joint_terms_unused",
    "joint_without_terms",
    "lint_charter",
    "marks_not_replayable",
    "no_daily_quota",
    "no_expiry",
    "no_rate_limit",
    "nobody_told",
    "overlapping_grants",
    "session_over_an_hour",
    "unbounded_privacy",
    "uninspectable_volume",
    "unrounded_scores",
    "validity_over_a_year",
    "watermark_off",
    "weak_privacy_budget",
]


@dataclass(frozen=True, slots=True)
class Concern:
    """What one rule found: about ``path``, shown at the line of ``at`` (default ``path``)."""

    severity: Severity
    path: FieldPath
    message: str
    at: FieldPath | None = None


LintRule = Callable[[Charter], Iterable[Concern]]

_BLIND_ACTIONS = {
    Action.PREDICT_ENCRYPTED: "encrypted queries",
    Action.PREDICT_JOINT: "joint (secret-shared) queries",
    Action.EVALUATE_JOINT: "joint (secret-shared) evaluations",
}
_JOINT_ACTIONS = (Action.PREDICT_JOINT, Action.EVALUATE_JOINT)
_SCORE_KINDS = (OutputKind.SCORES, OutputKind.NOISED_SCORES, OutputKind.TOP_K)
_STOPS = (Response.SUSPEND, Response.REVOKE)
#: Above this epsilon, noised scores protect next to nothing.
MAX_SENSIBLE_EPSILON = 10.0


def no_expiry(charter: Charter) -> Iterator[Concern]:
    if charter.valid.until is None:
        yield Concern(
            "warning",
            ("valid", "until"),
            "no expiry date: the charter stays active until someone revokes it; "
            "set valid.until so access ends on its own",
        )


def validity_over_a_year(charter: Charter) -> Iterator[Concern]:
    until = charter.valid.until
    if until is not None and until > _one_year_after(charter.valid.from_):
        days = (until - charter.valid.from_).days
        yield Concern(
            "warning",
            ("valid", "until"),
            f"valid for {days} days (over a year): a shorter charter forces a periodic review",
        )


def unrounded_scores(charter: Charter) -> Iterator[Concern]:
    for index, grant in enumerate(charter.grants):
        if grant.output.kind in _SCORE_KINDS and grant.output.decimals is None:
            yield Concern(
                "warning",
                ("grants", index, "output", "decimals"),
                f"scores exposed unrounded ({grant.output.kind.value}): full-precision scores "
                "make copying the model by queries much easier; set decimals (e.g. 2)",
            )


def no_daily_quota(charter: Charter) -> Iterator[Concern]:
    if charter.limits.daily_quota is None:
        yield Concern(
            "warning",
            ("limits", "daily_quota"),
            "no daily_quota: nothing caps how many predictions a day the partner can "
            "collect to copy the model",
        )


def no_rate_limit(charter: Charter) -> Iterator[Concern]:
    if charter.limits.requests_per_minute is None:
        yield Concern(
            "warning",
            ("limits", "requests_per_minute"),
            "no requests_per_minute: a burst of queries is not slowed down",
        )


def session_over_an_hour(charter: Charter) -> Iterator[Concern]:
    if charter.limits.session_ttl_seconds > 3600:
        yield Concern(
            "warning",
            ("limits", "session_ttl"),
            f"sessions last {charter.limits.session_ttl} (over an hour): a stolen session "
            "token stays usable that long; 15m is usual",
        )


def watermark_off(charter: Charter) -> Iterator[Concern]:
    if not charter.protections.watermark:
        yield Concern(
            "warning",
            ("protections", "watermark"),
            "watermark is off: a model copied from this partner's answers cannot be "
            "traced back to it",
        )


def extraction_monitor_off(charter: Charter) -> Iterator[Concern]:
    if charter.protections.extraction_monitor is None:
        yield Concern(
            "warning",
            ("protections", "extraction_monitor"),
            "extraction monitor is off: query patterns that copy the model raise no alert",
        )


def uninspectable_volume(charter: Charter) -> Iterator[Concern]:
    if charter.limits.daily_quota is not None:
        return
    for index, grant in enumerate(charter.grants):
        for position, action in enumerate(grant.actions):
            what = _BLIND_ACTIONS.get(action)
            if what is not None:
                yield Concern(
                    "warning",
                    ("grants", index, "actions", position),
                    f"{action.value} without limits.daily_quota: {what} can't be inspected "
                    "by the extraction monitor, so volume is the only brake; set a daily_quota",
                )


def all_versions(charter: Charter) -> Iterator[Concern]:
    for index, grant in enumerate(charter.grants):
        if grant.versions == "*":
            yield Concern(
                "warning",
                ("grants", index, "versions"),
                f'versions "*": every future version of {grant.model} is included '
                'automatically; name a major version (e.g. "1.*") instead',
            )


def overlapping_grants(charter: Charter) -> Iterator[Concern]:
    grants = charter.grants
    for later in range(len(grants)):
        for earlier in range(later):
            first, second = grants[earlier], grants[later]
            if first.model == second.model and _overlap(first, second):
                yield Concern(
                    "error",
                    ("grants", later, "versions"),
                    f"grants[{earlier}] and grants[{later}] both cover versions of "
                    f"{first.model} ({first.versions!r} and {second.versions!r}): which "
                    "actions and output policy apply would be ambiguous; merge them or make "
                    "the version patterns disjoint",
                )


def nobody_told(charter: Charter) -> Iterator[Concern]:
    monitor = charter.protections.extraction_monitor
    if monitor is None:
        return
    trigger = next(
        (
            (field, response)
            for field, response in (
                ("on_alert", monitor.on_alert),
                ("on_confirmed", monitor.on_confirmed),
            )
            if response in _STOPS
        ),
        None,
    )
    if trigger is None:
        return
    field, response = trigger
    incident = charter.incident_response
    if incident is not None and incident.contacts:
        return
    yield Concern(
        "warning",
        ("incident_response", "contacts"),
        f"the extraction monitor may {response.value} this partner on its own "
        f"(protections.extraction_monitor.{field}) but no incident_response.contacts "
        "are named to be told",
        at=None if incident is not None else ("protections", "extraction_monitor", field),
    )


def marks_not_replayable(charter: Charter) -> Iterator[Concern]:
    if charter.exit.retention_days == 0 and charter.protections.watermark:
        yield Concern(
            "warning",
            ("exit", "retention_days"),
            "retention_days 0 with watermark on: watermark keys and replay inputs are "
            "destroyed at exit, so marks cannot be replayed after exit to name a leak",
        )


def weak_privacy_budget(charter: Charter) -> Iterator[Concern]:
    for index, grant in enumerate(charter.grants):
        epsilon = grant.output.epsilon
        if epsilon is not None and epsilon > MAX_SENSIBLE_EPSILON:
            yield Concern(
                "warning",
                ("grants", index, "output", "epsilon"),
                f"epsilon {epsilon:g} is over {MAX_SENSIBLE_EPSILON:g}: the noise hides "
                "next to nothing; use a smaller privacy budget or round the scores",
            )


def unbounded_privacy(charter: Charter) -> Iterator[Concern]:
    for index, grant in enumerate(charter.grants):
        if grant.output.kind is OutputKind.NOISED_SCORES and grant.output.budget is None:
            yield Concern(
                "warning",
                ("grants", index, "output", "kind"),
                "noised_scores without a budget: every answer leaks a little more, without "
                "end; set output.budget",
            )


def joint_without_terms(charter: Charter) -> Iterator[Concern]:
    if charter.joint is not None:
        return
    for index, grant in enumerate(charter.grants):
        for position, action in enumerate(grant.actions):
            if action in _JOINT_ACTIONS:
                yield Concern(
                    "error",
                    ("grants", index, "actions", position),
                    f"{action.value} needs a joint section naming the third compute party "
                    "(joint.compute_party): a joint run cannot start without one",
                )


def evaluation_reveals_nothing(charter: Charter) -> Iterator[Concern]:
    if charter.joint is None or charter.joint.metrics:
        return
    for index, grant in enumerate(charter.grants):
        if Action.EVALUATE_JOINT in grant.actions:
            position = grant.actions.index(Action.EVALUATE_JOINT)
            yield Concern(
                "error",
                ("grants", index, "actions", position),
                "evaluate_joint with no joint.metrics: an evaluation may reveal only the "
                "metrics listed there, so it could reveal nothing; list accuracy and/or auc",
                at=("joint",),
            )


def joint_terms_unused(charter: Charter) -> Iterator[Concern]:
    if charter.joint is None:
        return
    if not any(a in _JOINT_ACTIONS for grant in charter.grants for a in grant.actions):
        yield Concern(
            "warning",
            ("joint",),
            "a joint section but no grant of predict_joint or evaluate_joint: it names a "
            "compute party for nothing; remove it or grant a joint action",
        )


#: Every rule, in the order their findings are listed for the same line.
RULES: tuple[LintRule, ...] = (
    no_expiry,
    validity_over_a_year,
    unrounded_scores,
    weak_privacy_budget,
    unbounded_privacy,
    all_versions,
    overlapping_grants,
    uninspectable_volume,
    no_daily_quota,
    no_rate_limit,
    session_over_an_hour,
    watermark_off,
    extraction_monitor_off,
    nobody_told,
    marks_not_replayable,
    joint_without_terms,
    evaluation_reveals_nothing,
    joint_terms_unused,
)


def lint_charter(
    charter: Charter,
    *,
    lines: LineMap | None = None,
    source: str = "<charter>",
    rules: Iterable[LintRule] = RULES,
) -> tuple[Finding, ...]:
    """Run ``rules`` over ``charter``; findings carry the line from ``lines`` where known."""
    where = lines if lines is not None else LineMap()
    findings = [
        Finding(
            concern.severity,
            where.line_of(concern.at if concern.at is not None else concern.path),
            format_path(concern.path),
            concern.message,
            source,
        )
        for rule in rules
        for concern in rule(charter)
    ]
    return tuple(sorted(findings, key=lambda f: f.line or 0))


def _one_year_after(start: datetime) -> datetime:
    try:
        return start.replace(year=start.year + 1)
    except ValueError:  # 29 February
        return start.replace(year=start.year + 1, day=28)


def _overlap(first: Grant, second: Grant) -> bool:
    """True when some version string matches both grants' patterns."""
    a, b = first.versions, second.versions
    if a == "*" or b == "*":
        return True
    a_prefix, b_prefix = a.endswith(".*"), b.endswith(".*")
    if a_prefix and b_prefix:
        return a[:-1].startswith(b[:-1]) or b[:-1].startswith(a[:-1])
    if a_prefix:
        return first.covers_version(b)
    if b_prefix:
        return second.covers_version(a)
    return a == b
