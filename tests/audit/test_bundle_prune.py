"""The verifier explains a pruned entry only by the retention of the charter it belonged to.

A ``log.prune`` entry hides payloads; an auditor holding nothing but the export must be
able to tell a prune the retention policy allows (one charter, terminated earlier in the
log, by that partner, no sooner than its retention days after, counted per kind and in
full) from an owner hiding an entry it would rather nobody saw.  Each test builds a small
signed log by hand, so the one thing wrong with it is the thing under test.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelpact.audit.bundle import PRUNED_KINDS, build_export, verify_export
from modelpact.audit.checkpoint import Checkpoint, sign_checkpoint
from modelpact.audit.entries import (
    AccessEntry,
    AdminEntry,
    AuditEntry,
    OutputEntry,
    PrunedEntry,
    SessionEntry,
    encode_entry,
)
from modelpact.audit.tree import Frontier, leaf_hash
from modelpact.crypto import SigningKey

ORIGIN = "modelpact.test/log"
CHARTER, PARTNER = "northwind-acme", "acme"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
ENDED = T0 + timedelta(days=10)  # the termination
DAYS = 30
PRUNED_AT = ENDED + timedelta(days=DAYS, seconds=5)
DIGEST = "sha256:" + "ab" * 32
KEY = SigningKey.generate()


def access(actor: str = PARTNER, charter: str = CHARTER) -> AccessEntry:
    return AccessEntry(
        action="predict", actor=actor, charter=charter, decision="allow", model="fraud",
        purpose="fraud", reasons=("granted",), subject="fraud@1", time=T0, version="1",
    )  # fmt: skip


def output(request: int) -> OutputEntry:
    return OutputEntry(
        actor=PARTNER, output_digest=DIGEST, request=request, subject="fraud@1", time=T0,
        transformations=("round",),
    )  # fmt: skip


def admin(action: str, subject: str, time: datetime, **detail: Any) -> AdminEntry:
    return AdminEntry(action=action, actor="owner", subject=subject, time=time, detail=detail)


def terminate(charter: str = CHARTER, *, at: datetime = ENDED, days: int = DAYS) -> AdminEntry:
    return admin(
        "charter.terminate", f"{charter}@v1", at,
        reason="pilot over", partner=PARTNER, sessions_revoked=0, retention_days=days,
    )  # fmt: skip


def prune(charter: str = CHARTER, *, at: datetime = PRUNED_AT, **detail: Any) -> AdminEntry:
    declared: dict[str, Any] = {
        "charter": charter, "partner": PARTNER, "terminated_at": ENDED.isoformat(),
        "retention_days": DAYS, "access": 1, "output": 1, "entries": 2, "first": 0, "last": 1,
    }  # fmt: skip
    declared.update(detail)
    return admin("log.prune", charter, at, **{k: v for k, v in declared.items() if v is not None})


def marker(
    at: int, *, actor: str = PARTNER, charter: str = CHARTER, time: datetime = PRUNED_AT
) -> PrunedEntry:
    return PrunedEntry(actor=actor, charter=charter, prune=at, time=time)


Log = list[AuditEntry | tuple[AuditEntry, PrunedEntry]]


def export(log: Log) -> str:
    """A signed export of ``log``: (original, marker) pairs stand pruned."""
    rows, frontier = [], Frontier()
    for index, item in enumerate(log):
        original, shown = item if isinstance(item, tuple) else (item, item)
        leaf = leaf_hash(encode_entry(original))
        frontier.append(leaf)
        rows.append((index, leaf, encode_entry(shown)))
    note = sign_checkpoint(
        Checkpoint(origin=ORIGIN, size=len(log), root=frontier.root()), KEY, name=ORIGIN
    )
    return build_export(
        origin=ORIGIN, public_key=KEY.verify_key, entries=rows, checkpoints=[note], consistency=[]
    )


def problems(log: Log) -> list[str]:
    return verify_export(export(log), KEY.verify_key).problems


def sound(**changes: Any) -> Log:
    """The partner's request and its answer, terminated, then pruned after the retention."""
    log: Log = [
        (access(), marker(4)),
        (output(0), marker(4)),
        admin("model.export", "fraud@1", T0, note="the owner's own business"),
        terminate(),
        prune(),
    ]
    for index, value in changes.items():
        log[int(index.removeprefix("at"))] = value
    return log


def test_a_prune_the_retention_allows_verifies() -> None:
    report = verify_export(export(sound()), KEY.verify_key)
    assert report.ok, report.problems
    assert report.pruned == 2


def test_the_reviewers_reproducer_is_refused() -> None:
    """An owner entry hidden by a log.prune of a charter that never existed, its marker
    naming a third charter: every lie is named."""
    log: Log = [
        access(),
        output(0),
        (admin("model.export", "secret-1", T0, note="incriminating"), marker(3, actor="owner",
                                                                            charter="other")),
        prune("never-existed", access=0, output=0, entries=1, first=2, last=2),
    ]  # fmt: skip
    found = problems(log)
    assert any("entry 2 is pruned, but its marker does not match" in p for p in found), found
    assert any("never-existed, which the log never terminated" in p for p in found), found


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"at0": (access(), marker(4, charter="northwind-globex"))}, "marker does not match"),
        ({"at0": (access(), marker(4, actor="owner"))}, "marker does not match"),
        ({"at0": (access(), marker(4, time=PRUNED_AT - timedelta(days=1)))}, "does not match"),
        ({"at3": admin("charter.apply", f"{CHARTER}@v1", ENDED)}, "never terminated before it"),
        ({"at3": terminate("northwind-globex")}, "never terminated before it"),
        ({"at3": terminate(days=60)}, "does not match the termination"),
        ({"at4": prune(at=ENDED + timedelta(days=DAYS - 1))}, "before its retention"),
        ({"at4": prune(retention_days=1, at=ENDED + timedelta(days=2))}, "does not match"),
        ({"at4": prune(terminated_at=T0.isoformat())}, "does not match the termination"),
        ({"at4": prune(terminated_at=None)}, "does not match the termination"),
        ({"at4": prune(partner="globex")}, "does not match the termination"),
        ({"at4": prune(entries=3, access=2)}, "says it pruned 3 entries, but 2 point at it"),
        ({"at4": prune(access=2)}, "per-kind counts do not add up"),
        ({"at4": prune(access=None, output=None)}, "per-kind counts do not add up"),
        ({"at4": prune(admin=1, access=0)}, "declares what no prune records: admin"),
        ({"at4": prune(first=0, last=2)}, "names a range its entries do not span"),
    ],
)
def test_a_prune_the_retention_does_not_allow_is_a_problem(
    changes: dict[str, Any], expected: str
) -> None:
    found = problems(sound(**changes))
    assert any(expected in p for p in found), found


def test_a_prune_naming_its_charter_twice_must_agree() -> None:
    entry = prune().model_copy(update={"subject": "northwind-globex"})
    found = problems(sound(at4=entry))
    assert any("does not name one charter" in p for p in found), found


def test_a_termination_after_the_prune_does_not_explain_it() -> None:
    log = sound()
    log[3] = admin("charter.apply", f"{CHARTER}@v1", T0)
    log.append(terminate())
    found = problems(log)
    assert any("never terminated before it" in p for p in found), found


def test_a_charter_is_pruned_once() -> None:
    """A second log.prune of the same charter (the refusals logged after the first one)
    is a problem, even when it is sound on its own."""
    log = sound()
    log.append((access(), marker(6)))
    log.append(prune(at=PRUNED_AT, access=1, output=0, entries=1, first=5, last=5))
    found = problems(log)
    assert any("prunes northwind-acme again (after log.prune entry 4)" in p for p in found), found


def test_a_prune_pointed_at_by_fewer_entries_than_it_says_is_a_problem() -> None:
    """Markers hidden back as whole entries with the prune's count left: an unexplained gap."""
    log = sound()
    log[1] = output(0)
    found = problems(log)
    assert any("says it pruned 2 entries, but 1 point at it" in p for p in found), found


def test_a_prune_with_nothing_left_to_prune_verifies() -> None:
    log: Log = [terminate(), prune(access=None, output=None, entries=0, first=None, last=None)]
    assert problems(log) == []


def test_the_kinds_are_what_retention_prunes() -> None:
    assert set(PRUNED_KINDS) == {"access", "output", "session", "incident"}
    assert {SessionEntry.model_fields["type"].default, access().type, output(0).type} <= set(
        PRUNED_KINDS
    )
