from __future__ import annotations

import pytest

from modelpact.crypto import SigningKey
from modelpact.errors import AlreadyExists, InvalidInput, NotFound
from modelpact.services import PartnerDirectory, Workspace
from tests.services.conftest import admin_actions


def test_status_transitions_and_events(workspace: Workspace) -> None:
    directory = PartnerDirectory(workspace)
    directory.enrol("acme", SigningKey.generate().verify_key.encode(), name="ACME")
    assert directory.change_status("acme", "suspend").status == "suspended"
    with pytest.raises(InvalidInput):
        directory.change_status("acme", "suspend")
    assert directory.change_status("acme", "resume").status == "active"
    assert directory.change_status("acme", "revoke").status == "revoked"
    for verb in ("resume", "suspend", "revoke"):
        with pytest.raises(InvalidInput, match="revoked"):
            directory.change_status("acme", verb)
    assert admin_actions(workspace, "acme") == [
        "partner.add",
        "partner.suspend",
        "partner.resume",
        "partner.revoke",
    ]


def test_enrolment_is_checked(workspace: Workspace) -> None:
    directory = PartnerDirectory(workspace)
    key = SigningKey.generate().verify_key.encode()
    directory.enrol("acme", key)
    with pytest.raises(AlreadyExists):
        directory.enrol("other", key)
    with pytest.raises(AlreadyExists):
        directory.enrol("acme", SigningKey.generate().verify_key.encode())
    with pytest.raises(InvalidInput):
        directory.enrol("Not A Slug", SigningKey.generate().verify_key.encode())
    with pytest.raises(InvalidInput):
        directory.enrol("me", workspace.owner_verify_key.encode())
    with pytest.raises(NotFound):
        directory.require("nobody")
    with pytest.raises(InvalidInput):
        directory.change_status("acme", "delete")
