"""``modelpact review`` and ``review decide`` from the CLI, over a workspace whose audit log
holds real access and incident entries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from modelpact.audit.entries import AccessEntry, AdminEntry, IncidentEntry, decode_entry
from modelpact.audit.log import AuditLog
from modelpact.services import open_workspace
from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter

CHARTER = "northwind-acme-screening"


def append(setup: Setup, *entries: AccessEntry | IncidentEntry) -> None:
    with open_workspace(setup.workspace) as ws:
        log = AuditLog(ws.store, key=ws.owner_key(), origin=ws.log_origin, clock=ws.clock)
        try:
            for entry in entries:
                log.append(entry)
        finally:
            log.close()


def log(setup: Setup) -> list[Any]:
    with open_workspace(setup.workspace) as ws, ws.store.unit_of_work() as uow:
        return [decode_entry(r.entry) for r in uow.audit.entries(0, uow.audit.size())]


def use(at: datetime, model: str, rows: int) -> AccessEntry:
    return AccessEntry(
        action="predict",
        actor="acme",
        charter=CHARTER,
        decision="allow",
        model=model,
        purpose="diagnostic-research",
        reasons=("grant 0",),
        rows=rows,
        subject=f"{model}@1.0.0",
        time=at,
        version="1.0.0",
    )


def alarm(at: datetime, model: str) -> IncidentEntry:
    return IncidentEntry(
        actor="acme",
        charter=CHARTER,
        detail="queries far from the training data",
        detector="prada",
        model=model,
        response="throttle",
        severity="warning",
        statistic="0.81",
        step=1,
        subject=f"acme/{CHARTER}/{model}",
        threshold="0.9",
        time=at,
        window=100,
    )


def applied(cli: Cli, setup: Setup) -> datetime:
    assert cli("charter", "apply", signed_charter(cli, setup)).code == 0
    now = datetime.now(UTC).replace(microsecond=0)
    append(
        setup,
        use(now - timedelta(days=2), "cancer-screen", 10),
        use(now - timedelta(hours=1), "cancer-screen", 5),
        alarm(now - timedelta(minutes=30), "digits"),
    )
    return now


def test_review_lists_every_grant_in_a_table_and_as_json(cli: Cli, setup: Setup) -> None:
    empty = cli("review")
    assert empty.code == 0 and "no grants in force" in empty.out
    now = applied(cli, setup)
    table = cli("review")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    (screen,) = [line for line in lines if "cancer-screen@1.*" in line]
    assert f"{CHARTER} v1" in screen and "15/15" in screen and "2/2" in screen
    assert "predict,predict_encrypted → scores" in screen
    assert (now - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M") in screen
    (mlp,) = [line for line in lines if "cancer-screen-mlp@1.*" in line]
    assert "never" in mlp and "predict → label" in mlp
    assert "3 grants, 0 flagged (unused 30d, expiring 14d)" in table.out

    result = cli("review", "--json", "--expiring-days", "31")
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["expiring_days"] == 31 and document["log"]["complete"] is True
    grants = {g["model"]: g for g in document["grants"]}
    assert set(grants) == {"cancer-screen", "cancer-screen-mlp", "digits"}
    screen_grant = grants["cancer-screen"]
    assert screen_grant["charter"] == CHARTER and screen_grant["version"] == 1
    assert screen_grant["partner"] == "acme" and screen_grant["output"] == "scores"
    assert screen_grant["actions"] == ["predict", "predict_encrypted"]
    assert screen_grant["last_use"] == (now - timedelta(hours=1)).isoformat()
    assert screen_grant["window"] == {"rows": 15, "requests": 2, "denied": 0}
    assert screen_grant["total"] == {"rows": 15, "requests": 2}
    assert grants["digits"]["incidents"] == 1 and screen_grant["incidents"] == 0
    assert grants["cancer-screen-mlp"]["last_use"] is None
    # The charter ends in 30 days: inside a 31-day horizon, for every grant.
    assert all(g["flags"] == ["expiring"] for g in grants.values())
    assert all(g["days_left"] in (29, 30) for g in grants.values())


def test_decide_keep_records_and_suspend_acts(cli: Cli, setup: Setup) -> None:
    applied(cli, setup)
    kept = cli(
        "review", "decide", "--charter", CHARTER, "--model", "cancer-screen",
        "--decision", "keep", "--reason", "in weekly use", "--reviewer", "Ada",
    )  # fmt: skip
    assert kept.code == 0, kept.err
    assert f"recorded keep on acme/{CHARTER} v1/cancer-screen" in kept.out
    narrowed = cli(
        "review", "decide", "--charter", CHARTER, "--model", "digits",
        "--decision", "narrow", "--reason", "labels are enough",
    )  # fmt: skip
    assert narrowed.code == 0, narrowed.err
    assert "amend the charter" in narrowed.out
    suspended = cli(
        "review", "decide", "--charter", CHARTER, "--model", "cancer-screen-mlp",
        "--decision", "suspend", "--reason", "never used",
    )  # fmt: skip
    assert suspended.code == 0, suspended.err
    assert "partner acme is now suspended" in suspended.out
    admin = [e for e in log(setup) if isinstance(e, AdminEntry)]
    decisions = [e for e in admin if e.action == "review.decision"]
    assert [(e.detail["model"], e.detail["decision"]) for e in decisions] == [
        ("cancer-screen", "keep"),
        ("digits", "narrow"),
        ("cancer-screen-mlp", "suspend"),
    ]
    assert decisions[0].actor == "Ada" and decisions[0].detail["reason"] == "in weekly use"
    assert decisions[1].detail["reviewer"] == "owner"
    assert all(e.detail["charter"] == CHARTER and e.detail["version"] == 1 for e in decisions)
    (change,) = [e for e in admin if e.action == "partner.suspend"]
    assert change.subject == "acme" and change.detail["reason"] == "access review: never used"
    with open_workspace(setup.workspace) as ws, ws.store.unit_of_work() as uow:
        assert uow.partners.get("acme").status == "suspended"
    listed = json.loads(cli("review", "--json").out)
    assert {g["partner_status"] for g in listed["grants"]} == {"suspended"}


def test_bad_decisions_are_one_line_errors_and_record_nothing(cli: Cli, setup: Setup) -> None:
    applied(cli, setup)
    before = len(log(setup))
    bad = cli(
        "review", "decide", "--charter", CHARTER, "--model", "digits",
        "--decision", "pause", "--reason", "x",
    )  # fmt: skip
    assert_one_line_error(bad, "unknown decision 'pause'", "keep, narrow, suspend, revoke")
    missing = cli(
        "review", "decide", "--charter", CHARTER, "--model", "fraud",
        "--decision", "revoke", "--reason", "x",
    )  # fmt: skip
    assert_one_line_error(missing, f"charter {CHARTER} v1 grants no model fraud")
    nowhere = cli(
        "review", "decide", "--charter", "nowhere", "--model", "digits",
        "--decision", "keep", "--reason", "x",
    )  # fmt: skip
    assert_one_line_error(nowhere, "no charter named nowhere")
    negative = cli("review", "--unused-days", "-1")
    assert_one_line_error(negative, "--unused-days")
    assert len(log(setup)) == before
    with open_workspace(setup.workspace) as ws, ws.store.unit_of_work() as uow:
        assert uow.partners.get("acme").status == "active"
