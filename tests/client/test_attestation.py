"""The SDK's attestation check, without a gateway: every field it holds the document to."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelpact.charter import AttestationPins
from modelpact.client import check_attestation
from modelpact.crypto import SigningKey
from modelpact.errors import AttestationFailed
from modelpact.wire import (
    AttestationDocument,
    AttestedCharter,
    AttestedModel,
    ServingMeasurement,
    SignedAttestation,
    attestation_message,
    instant,
)
from tests.factories import make_charter

OWNER = SigningKey.generate()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NONCE = "n" * 43
CODE = "sha256:" + "c" * 64
DEPS = "sha256:" + "d" * 64
ARTIFACT = "sha256:" + "a" * 64
CHARTER = make_charter()


def signed(key: SigningKey = OWNER, **changes: Any) -> SignedAttestation:
    from modelpact.charter import charter_digest

    fields: dict[str, Any] = {
        "nonce": NONCE,
        "issued_at": instant(NOW),
        "measurement": ServingMeasurement(code=CODE, dependencies=DEPS, python="3.11.7"),
        "charter": AttestedCharter(
            charter=CHARTER.charter, version=CHARTER.version, digest=charter_digest(CHARTER)
        ),
        "models": (
            AttestedModel(
                model="fraud-detector", version="1.4.2", artifact=ARTIFACT, manifest=ARTIFACT
            ),
        ),
        "isolation": {"model_runtime": "in-process"},
    }
    document = AttestationDocument(**(fields | changes))
    signature = base64.b64encode(key.sign(attestation_message(document))).decode()
    return SignedAttestation(document=document, signature=signature)


def check(attestation: SignedAttestation, **options: Any) -> AttestationDocument:
    arguments: dict[str, Any] = {
        "nonce": NONCE,
        "owner_key": OWNER.verify_key,
        "charter_id": CHARTER.charter,
        "now": NOW,
    }
    return check_attestation(attestation, **(arguments | options))


PINS = AttestationPins(code=CODE, dependencies=DEPS, models={"fraud-detector@1.4.2": ARTIFACT})


def test_a_document_that_holds_is_returned() -> None:
    document = check(signed(), countersigned=CHARTER, pins=PINS)
    assert document.provider == "software" and document.models[0].artifact == ARTIFACT


@pytest.mark.parametrize(
    ("attestation", "options", "message"),
    [
        (signed(SigningKey.generate()), {}, "not signed by the owner"),
        (signed(), {"nonce": "m" * 43}, "another nonce"),
        (signed(), {"now": NOW + timedelta(minutes=3)}, "more than 120 s"),
        (signed(), {"now": NOW - timedelta(minutes=3)}, "more than 120 s"),
        (signed(), {"charter_id": "other-charter"}, "not other-charter"),
        (signed(), {"pins": PINS.model_copy(update={"code": DEPS})}, "serving code measures"),
        (signed(), {"pins": PINS.model_copy(update={"dependencies": CODE})}, "dependency set"),
        (
            signed(),
            {"pins": PINS.model_copy(update={"models": {"fraud-detector@1.4.2": CODE}})},
            "a swapped artifact",
        ),
        (
            signed(),
            {"pins": PINS.model_copy(update={"models": {"fraud-detector@1.4.1": ARTIFACT}})},
            "does not pin",
        ),
        (
            signed(charter=AttestedCharter(charter=CHARTER.charter, version=1, digest=CODE)),
            {"countersigned": CHARTER},
            "not the charter this partner countersigned",
        ),
    ],
)
def test_each_mismatch_is_refused_by_name(
    attestation: SignedAttestation, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(AttestationFailed, match=message):
        check(attestation, **options)


def test_a_document_changed_after_signing_is_refused() -> None:
    original = signed()
    forged = original.model_copy(
        update={"document": original.document.model_copy(update={"models": ()})}
    )
    with pytest.raises(AttestationFailed, match="not signed"):
        check(forged)
    with pytest.raises(AttestationFailed, match="not signed"):
        check(original.model_copy(update={"signature": "AAAA"}))


def test_models_the_pins_do_not_name_are_not_held_to_them() -> None:
    pins = AttestationPins(models={"other-model@1.0.0": CODE})
    assert check(signed(), pins=pins).models[0].model == "fraud-detector"


def test_the_countersigned_charters_pins_apply_by_default() -> None:
    pinned = CHARTER.model_copy(update={"attestation": PINS.model_copy(update={"code": DEPS})})
    from modelpact.charter import charter_digest

    attestation = signed(
        charter=AttestedCharter(
            charter=pinned.charter, version=pinned.version, digest=charter_digest(pinned)
        )
    )
    with pytest.raises(AttestationFailed, match="serving code"):
        check(attestation, countersigned=pinned)
