"""The signed charter: who may sign, what breaks a signature, and a strict envelope."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelpact.charter import (
    SIGNED_CHARTER_FORMAT,
    Charter,
    SignedCharter,
    charter_bytes,
    charter_digest,
    check_charter,
    load_charter,
)
from modelpact.crypto import SigningKey
from modelpact.errors import (
    AlreadyExists,
    CharterInvalid,
    InvalidInput,
    SignatureInvalid,
    Tampered,
)

from .examples import (
    ALL_KEYS,
    KEY_BY_PUBLIC,
    OTHER_KEYS,
    OWNER_KEY,
    PARTNER_KEY,
    PROPERTY,
    charters,
    example_charter,
    example_text,
)


def owner_signed() -> SignedCharter:
    return SignedCharter.sign_by_owner(example_charter(), OWNER_KEY)


def both_signed() -> SignedCharter:
    return owner_signed().countersign(PARTNER_KEY)


def envelope(signed: SignedCharter | None = None) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((signed or both_signed()).to_json())
    return loaded


def from_envelope(value: Any) -> SignedCharter:
    return SignedCharter.from_json(json.dumps(value), source="s.json")


# -- signing ------------------------------------------------------------------------------------


def test_sign_then_countersign() -> None:
    first = owner_signed()
    first.verify_owner()
    assert not first.is_countersigned
    second = first.countersign(PARTNER_KEY)
    assert second.is_countersigned
    second.verify_complete()
    assert second.charter == first.charter
    assert second.digest == charter_digest(first.charter)
    assert first.partner_signature is None  # countersigning made a new value


def test_signatures_are_over_exactly_the_charter_bytes() -> None:
    signed = both_signed()
    data = charter_bytes(signed.charter)
    assert signed.signed_bytes == data
    OWNER_KEY.verify_key.verify(signed.owner_signature, data)
    assert signed.partner_signature is not None
    PARTNER_KEY.verify_key.verify(signed.partner_signature, data)


@pytest.mark.parametrize("key", [PARTNER_KEY, *OTHER_KEYS])
def test_only_the_owner_key_signs_first(key: SigningKey) -> None:
    with pytest.raises(SignatureInvalid, match="signed by the wrong party"):
        SignedCharter.sign_by_owner(example_charter(), key)


@pytest.mark.parametrize("key", [OWNER_KEY, *OTHER_KEYS])
def test_only_the_partner_key_countersigns(key: SigningKey) -> None:
    with pytest.raises(SignatureInvalid, match="signed by the wrong party"):
        owner_signed().countersign(key)


def test_countersign_checks_the_owner_signature_first() -> None:
    forged = SignedCharter(example_charter(), OTHER_KEYS[0].sign(charter_bytes(example_charter())))
    with pytest.raises(SignatureInvalid, match=r"owner's signature on .* does not verify"):
        forged.countersign(PARTNER_KEY)


def test_countersign_refuses_a_second_time() -> None:
    with pytest.raises(AlreadyExists, match="already countersigned"):
        both_signed().countersign(PARTNER_KEY)


def test_a_charter_with_lint_errors_is_not_signed() -> None:
    second = [
        "  - model: fraud-detector",
        '    versions: "1.0"',
        "    actions: [predict]",
        "    output: {kind: label}",
    ]
    text = example_text(insert={22: second})
    charter = check_charter(text).charter
    assert charter is not None
    with pytest.raises(CharterInvalid, match="must not be signed") as exc:
        SignedCharter.sign_by_owner(charter, OWNER_KEY)
    assert "grants[1].versions" in exc.value.findings[0]


def test_verify_names_the_missing_party() -> None:
    with pytest.raises(SignatureInvalid, match="missing the partner's signature"):
        owner_signed().verify_partner()
    with pytest.raises(SignatureInvalid, match="missing the partner's signature"):
        owner_signed().verify_complete()


def test_verify_names_the_bad_party() -> None:
    good = both_signed()
    assert good.partner_signature is not None
    swapped = SignedCharter(good.charter, good.partner_signature, good.owner_signature)
    with pytest.raises(SignatureInvalid, match="owner's signature"):
        swapped.verify_complete()
    bad_partner = SignedCharter(good.charter, good.owner_signature, good.owner_signature)
    bad_partner.verify_owner()
    with pytest.raises(SignatureInvalid, match="partner's signature"):
        bad_partner.verify_partner()


def test_signed_charter_is_immutable() -> None:
    signed = both_signed()
    with pytest.raises(AttributeError):
        signed.partner_signature = None  # type: ignore[misc]


# -- the envelope -------------------------------------------------------------------------------


def test_envelope_shape() -> None:
    value = envelope()
    assert list(value) == ["format", "charter", "digest", "signatures"]
    assert value["format"] == SIGNED_CHARTER_FORMAT
    assert value["charter"] == example_charter().to_document()
    assert value["digest"] == charter_digest(example_charter())
    assert [s["role"] for s in value["signatures"]] == ["owner", "partner"]
    assert value["signatures"][0]["key"] == OWNER_KEY.verify_key.encode()
    assert value["signatures"][1]["key"] == PARTNER_KEY.verify_key.encode()
    assert len(base64.b64decode(value["signatures"][0]["signature"])) == 64


def test_json_round_trip_is_stable() -> None:
    for signed in (owner_signed(), both_signed()):
        text = signed.to_json()
        assert text.endswith("}\n")
        assert text == signed.to_json()
        again = SignedCharter.from_json(text)
        assert again == signed
        assert again.to_json() == text


def test_changed_body_is_tampered() -> None:
    value = envelope()
    value["charter"]["limits"]["daily_quota"] = 500000
    with pytest.raises(Tampered, match=r"changed after signing \(digest mismatch\)"):
        from_envelope(value)


def test_changed_body_with_recomputed_digest_fails_the_signatures() -> None:
    value = envelope()
    value["charter"]["limits"]["daily_quota"] = 500000
    value["digest"] = charter_digest(Charter.model_validate(value["charter"]))
    signed = from_envelope(value)
    with pytest.raises(SignatureInvalid, match="owner's signature"):
        signed.verify_complete()


def test_changed_digest_is_tampered() -> None:
    value = envelope()
    value["digest"] = "sha256:" + "0" * 64
    with pytest.raises(Tampered, match="digest mismatch"):
        from_envelope(value)


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda c: c["valid"].update({"from": "2026-01-01T01:00:00+01:00"}), id="tz"),
        pytest.param(lambda c: c["limits"].pop("max_batch_rows"), id="default-left-out"),
        pytest.param(lambda c: c.update({"objective": " " + c["objective"]}), id="whitespace"),
    ],
)
def test_body_must_be_the_signed_normal_form(edit: Any) -> None:
    # Same meaning, different bytes: what a human reads must be what was signed.
    value = envelope()
    edit(value["charter"])
    with pytest.raises(Tampered, match="digest mismatch"):
        from_envelope(value)


def test_invalid_charter_body_is_charter_invalid() -> None:
    value = envelope()
    value["charter"]["limits"]["session_ttl"] = "forever"
    with pytest.raises(CharterInvalid) as exc:
        from_envelope(value)
    assert exc.value.findings == (
        "s.json charter: error: limits.session_ttl: must be a duration such as 90s, 15m, 1h or 1d",
    )


def _edit(value: dict[str, Any], path: tuple[Any, ...], new: Any) -> dict[str, Any]:
    node = value
    for part in path[:-1]:
        node = node[part]
    if new is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = new
    return value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "new", "message"),
    [
        (("extra",), 1, "unknown field 'extra' in the envelope"),
        (("digest",), _DELETE, "field 'digest' is missing"),
        (("format",), "modelpact-signed-charter/v2", "is not a modelpact signed charter"),
        (("format",), 1, "is not a modelpact signed charter"),
        (("digest",), 7, "digest must be a string"),
        (("signatures",), {}, "signatures must be a list"),
        (("signatures", 0), "sig", r"signatures\[0\] must be an object"),
        (("signatures", 0, "when"), "now", "unknown field 'when'"),
        (("signatures", 0, "signature"), _DELETE, "field 'signature' is missing"),
        (("signatures", 0, "role"), "auditor", "role must be 'owner' or 'partner'"),
        (("signatures", 1, "role"), "owner", "a second owner signature"),
        (("signatures", 0, "signature"), "not base64!", "not valid base64"),
        (("signatures", 0, "signature"), 12, "must be a base64 string"),
        (("signatures", 0, "signature"), base64.b64encode(b"x" * 63).decode(), "64 bytes"),
        (("signatures", 0, "signature"), "A" * 85 + "=", "not valid base64|64 bytes"),
        (("signatures", 0, "key"), "ed25519:abc", r"signatures\[0\]: public key is not valid"),
        (("signatures", 0, "key"), None, "key must be a string"),
        (("signatures",), [], "has no owner signature"),
    ],
)
def test_malformed_envelopes_are_refused(path: tuple[Any, ...], new: Any, message: str) -> None:
    value = _edit(envelope(), path, new)
    with pytest.raises(InvalidInput, match=message):
        from_envelope(value)


def test_partner_only_envelope_is_refused() -> None:
    value = envelope()
    value["signatures"] = value["signatures"][1:]
    with pytest.raises(InvalidInput, match="has no owner signature"):
        from_envelope(value)


def test_signature_by_another_key_is_the_wrong_party() -> None:
    value = envelope()
    other = OTHER_KEYS[0]
    value["signatures"][1]["key"] = other.verify_key.encode()
    value["signatures"][1]["signature"] = base64.b64encode(
        other.sign(charter_bytes(example_charter()))
    ).decode()
    with pytest.raises(SignatureInvalid, match="signed by the wrong party"):
        from_envelope(value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"format": 1, "format": 2}', "duplicate JSON key 'format'"),
        ('{"x": NaN}', "NaN is not a JSON number"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply|is over"),
        (" " * (1024 * 1024 + 1), "is over 1024 KiB"),
    ],
)
def test_unreadable_json(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        SignedCharter.from_json(text)


def test_wrong_party_message_names_public_keys_only() -> None:
    with pytest.raises(SignatureInvalid) as exc:
        SignedCharter.sign_by_owner(example_charter(), PARTNER_KEY)
    text = exc.value.diagnostics()
    assert PARTNER_KEY.verify_key.encode() in text
    assert "PRIVATE" not in text


# -- properties ---------------------------------------------------------------------------------


def _mutations(charter: Charter) -> list[dict[str, Any]]:
    """Documents that differ from ``charter`` in exactly one field, all still valid."""
    doc = charter.to_document

    def with_(path: tuple[Any, ...], new: Any) -> dict[str, Any]:
        return _edit(doc(), path, new)

    out = [
        with_(("version",), charter.version + 1),
        with_(("objective",), charter.objective + "!"),
        with_(("purposes",), [*charter.purposes, "zz-extra-purpose"]),
        with_(("grants", 0, "model"), charter.grants[0].model + "x"),
        with_(("limits", "max_batch_rows"), charter.limits.max_batch_rows % 100_000 + 1),
        with_(("protections", "watermark"), not charter.protections.watermark),
        with_(("exit", "retention_days"), (charter.exit.retention_days + 1) % 3651),
        with_(("partner", "id"), charter.partner.id + "x"),
        with_(("charter",), charter.charter + "x"),
    ]
    shifted = charter.valid.from_.replace(microsecond=(charter.valid.from_.microsecond + 1) % 10**6)
    if charter.valid.until is None or shifted < charter.valid.until:
        out.append(with_(("valid", "from"), shifted.isoformat()))
    return out


@PROPERTY
@given(charters(), st.data())
def test_a_signature_fails_for_any_charter_differing_in_one_field(
    charter: Charter, data: st.DataObject
) -> None:
    owner = KEY_BY_PUBLIC[charter.owner.key]
    partner = KEY_BY_PUBLIC[charter.partner.key]
    signed = SignedCharter.sign_by_owner(charter, owner).countersign(partner)
    signed.verify_complete()
    document = data.draw(st.sampled_from(_mutations(charter)))
    other = Charter.model_validate(document)
    assert other != charter
    moved = SignedCharter(other, signed.owner_signature, signed.partner_signature)
    with pytest.raises(SignatureInvalid):
        moved.verify_owner()
    with pytest.raises(SignatureInvalid):
        moved.verify_partner()


@PROPERTY
@given(charters(), st.sampled_from(ALL_KEYS))
def test_countersign_succeeds_only_with_the_partner_key(charter: Charter, key: SigningKey) -> None:
    signed = SignedCharter.sign_by_owner(charter, KEY_BY_PUBLIC[charter.owner.key])
    if key.verify_key == charter.partner.verify_key:
        signed.countersign(key).verify_complete()
    else:
        with pytest.raises(SignatureInvalid, match="wrong party"):
            signed.countersign(key)


@PROPERTY
@given(charters())
def test_envelope_round_trip(charter: Charter) -> None:
    signed = SignedCharter.sign_by_owner(charter, KEY_BY_PUBLIC[charter.owner.key])
    again = SignedCharter.from_json(signed.to_json())
    assert again == signed
    again.verify_owner()


def test_loaded_example_signs() -> None:
    charter = load_charter(example_text())
    SignedCharter.sign_by_owner(charter, OWNER_KEY).countersign(PARTNER_KEY).verify_complete()
