"""``charter rollback``: an earlier applied version back in force, with the change shown."""

from __future__ import annotations

from tests.cli.conftest import Cli, Setup, assert_one_line_error, signed_charter

CHARTER = "northwind-acme-screening"


def test_rollback_shows_the_change_and_refuses_in_one_line(cli: Cli, setup: Setup) -> None:
    assert cli("charter", "apply", signed_charter(cli, setup)).code == 0
    assert cli("charter", "apply", signed_charter(cli, setup, "v2", version=2)).code == 0
    done = cli("charter", "rollback", CHARTER, "--to", "1", "--reason", "v2 was premature")
    assert done.code == 0, done.err
    assert f"{CHARTER}@v1 is in force again (v2 superseded); logged" in done.out
    assert "~ version: 2 -> 1" in done.out
    shown = cli("charter", "show", CHARTER)
    assert shown.code == 0 and shown.out.startswith(f"# {CHARTER}@v1 — active")

    assert_one_line_error(
        cli("charter", "rollback", CHARTER, "--to", "1", "--reason", "again"),
        "v1 is already in force",
    )
    assert_one_line_error(
        cli("charter", "rollback", CHARTER, "--to", "9", "--reason", "r"), "has no version 9"
    )
    assert_one_line_error(
        cli("charter", "rollback", CHARTER, "--to", "2", "--reason", " "), "say why"
    )
    assert_one_line_error(
        cli("charter", "rollback", "nobody", "--to", "1", "--reason", "r"), "no charter nobody"
    )
