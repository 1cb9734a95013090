"""Shared test material: fixed keys, a clean example charter, and a strategy for valid ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from modelpact.charter import (
    Action,
    Charter,
    ExtractionMonitor,
    IncidentResponse,
    Limits,
    OutputKind,
    Protections,
    Response,
    load_charter,
)
from modelpact.charter.model import JointMetric
from modelpact.crypto import SigningKey

OWNER_KEY = SigningKey.generate()
PARTNER_KEY = SigningKey.generate()
OTHER_KEYS = tuple(SigningKey.generate() for _ in range(3))
ALL_KEYS = (OWNER_KEY, PARTNER_KEY, *OTHER_KEYS)
KEY_BY_PUBLIC = {k.verify_key.encode(): k for k in ALL_KEYS}

# One field per line, so a test can change line N and expect a finding at line N.
# Clean: it passes the schema and lint with no finding at all.
_EXAMPLE = """\
charter: northwind-acme-fraud
version: 3
owner:
  name: Northwind Bank
  key: {owner}
partner:
  id: acme
  name: ACME Analytics
  key: {partner}
objective: Score ACME merchant transactions for fraud risk during the 2026 pilot.
valid:
  from: 2026-01-01T00:00:00Z
  until: 2026-06-30T00:00:00Z
purposes:
  - fraud-screening
grants:
  - model: fraud-detector
    versions: "1.*"
    actions: [predict, predict_encrypted]
    output:
      kind: scores
      decimals: 2
limits:
  requests_per_minute: 600
  daily_quota: 50000
  max_batch_rows: 256
  session_ttl: 15m
protections:
  watermark: true
  extraction_monitor:
    on_alert: throttle
    on_confirmed: suspend
incident_response:
  contacts: [security@northwind.example]
  webhook: https://hooks.northwind.example/mp
exit:
  retention_days: 30
"""


def example_lines() -> list[str]:
    """The example charter as lines; ``lines[n - 1]`` is line ``n``."""
    text = _EXAMPLE.format(
        owner=OWNER_KEY.verify_key.encode(), partner=PARTNER_KEY.verify_key.encode()
    )
    return text.splitlines()


def example_text(
    replace: dict[int, str] | None = None,
    *,
    drop: tuple[int, ...] = (),
    insert: dict[int, list[str]] | None = None,
) -> str:
    """The example with line ``n`` replaced, dropped, or lines inserted *after* line ``n``.

    Line numbers always refer to the original example.
    """
    out: list[str] = []
    for number, line in enumerate(example_lines(), start=1):
        if number not in drop:
            out.append((replace or {}).get(number, line))
        out.extend((insert or {}).get(number, []))
    return "\n".join(out) + "\n"


def example_charter() -> Charter:
    return load_charter(example_text())


def example_document() -> dict[str, Any]:
    return example_charter().to_document()


# -- hypothesis ---------------------------------------------------------------------------------

#: Property tests stay modest so the charter suite runs in seconds.
PROPERTY = settings(max_examples=40, deadline=None)

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
slugs = st.builds(str.__add__, st.sampled_from(_ALNUM), st.text(alphabet=_ALNUM + "-", max_size=20))
texts = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() != "")
zones = st.sampled_from(
    [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=zones
)
version_patterns = st.one_of(
    st.just("*"),
    st.builds(
        lambda parts, prefix: ".".join(map(str, parts)) + (".*" if prefix else ""),
        st.lists(st.integers(0, 999), min_size=1, max_size=3),
        st.booleans(),
    ),
)


@st.composite
def output_policies(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(list(OutputKind)))
    out: dict[str, Any] = {"kind": kind.value}
    if kind in (OutputKind.SCORES, OutputKind.TOP_K, OutputKind.NOISED_SCORES):
        decimals = draw(st.none() | st.integers(0, 6))
        if decimals is not None:
            out["decimals"] = decimals
    if kind is OutputKind.TOP_K:
        out["k"] = draw(st.integers(1, 1000))
    if kind is OutputKind.NOISED_SCORES:
        out["epsilon"] = draw(
            st.floats(min_value=0.001, max_value=100, allow_nan=False, allow_infinity=False)
        )
    return out


grants = st.fixed_dictionaries(
    {
        "model": slugs,
        "versions": version_patterns,
        "actions": st.lists(st.sampled_from([a.value for a in Action]), min_size=1, unique=True),
        "output": output_policies(),
    }
)


@st.composite
def charters(draw: st.DrawFn) -> Charter:
    """Valid charters (schema-valid, and without lint errors: grant models are distinct)."""
    owner, partner = draw(st.permutations(ALL_KEYS))[:2]
    start = draw(instants)
    until = draw(st.none() | st.integers(1, 10**9).map(lambda s: start + timedelta(seconds=s)))
    valid: dict[str, Any] = {"from": start}
    if until is not None:
        valid["until"] = until
    monitor = draw(
        st.none()
        | st.builds(
            ExtractionMonitor,
            on_alert=st.sampled_from(list(Response)),
            on_confirmed=st.sampled_from(list(Response)),
        )
    )
    document: dict[str, Any] = {
        "charter": draw(slugs),
        "version": draw(st.integers(1, 10_000)),
        "owner": {"name": draw(texts), "key": owner.verify_key.encode()},
        "partner": {"id": draw(slugs), "name": draw(texts), "key": partner.verify_key.encode()},
        "objective": draw(texts),
        "valid": valid,
        "purposes": draw(st.lists(slugs, min_size=1, max_size=3, unique=True)),
        "grants": draw(
            st.lists(grants, min_size=1, max_size=3, unique_by=lambda g: str(g["model"]))
        ),
        "limits": draw(
            st.builds(
                Limits,
                requests_per_minute=st.none() | st.integers(1, 1_000_000),
                daily_quota=st.none() | st.integers(1, 10**12),
                max_batch_rows=st.integers(1, 100_000),
                session_ttl=st.builds(
                    lambda n, unit: f"{n}{unit}", st.integers(1, 9999), st.sampled_from("smhd")
                ),
            )
        ),
        "protections": Protections(watermark=draw(st.booleans()), extraction_monitor=monitor),
        "exit": {"retention_days": draw(st.integers(0, 3650))},
    }
    incident = draw(
        st.none()
        | st.builds(
            IncidentResponse,
            contacts=st.lists(st.sampled_from(["a@b.example", "sec@x.example"]), max_size=2).map(
                tuple
            ),
            webhook=st.none() | st.just("https://hooks.example/mp"),
        )
    )
    if incident is not None:
        document["incident_response"] = incident
    joint = {Action.PREDICT_JOINT.value, Action.EVALUATE_JOINT.value}
    if any(joint & set(g["actions"]) for g in document["grants"]) or draw(st.booleans()):
        other = slugs.filter(lambda s: s != document["partner"]["id"])
        document["joint"] = {
            "compute_party": {"id": draw(other), "name": draw(texts)},
            "metrics": draw(st.lists(st.sampled_from(list(JointMetric)), min_size=1, unique=True)),
        }
    return Charter.model_validate(document)
