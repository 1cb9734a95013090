"""Every command, given bad input, answers one line, exits non-zero and changes nothing."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from modelpact.crypto import SigningKey
from tests.cli.conftest import (
    Cli,
    Setup,
    assert_one_line_error,
    render_charter,
    signed_charter,
    tree_digest,
)


@pytest.fixture
def unchanged(setup: Setup):  # type: ignore[no-untyped-def]
    before = tree_digest(setup.workspace)
    yield
    assert tree_digest(setup.workspace) == before, "a failed command changed the workspace"


def test_no_workspace(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELPACT_WORKSPACE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli("model", "list"), "no workspace given")
    assert_one_line_error(cli("-w", tmp_path / "nope", "model", "list"), "no modelpact workspace")


def test_init_refuses_a_non_empty_folder(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "file").write_text("keep me")
    assert_one_line_error(cli("init", tmp_path / "x"), "not an empty folder")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["file"]


def test_init_twice_is_refused(cli: Cli, setup: Setup, unchanged: None) -> None:
    assert_one_line_error(cli("init", setup.workspace), "already a modelpact workspace")


def test_loose_key_permissions_are_refused_with_the_fix(cli: Cli, setup: Setup) -> None:
    kek = setup.workspace / "keys" / "kek.key"
    kek.chmod(0o644)
    assert_one_line_error(cli("model", "list"), "chmod 600")


@pytest.mark.usefixtures("unchanged")
class TestModelCommands:
    def test_missing_file(self, cli: Cli, setup: Setup) -> None:
        result = cli("model", "add", "m", setup.root / "absent.onnx", "--version", "1")
        assert_one_line_error(result, "does not exist")

    def test_pickle_is_refused_with_why_and_how(self, cli: Cli, setup: Setup) -> None:
        path = setup.root / "model.pkl"
        path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
        result = cli("model", "add", "m", path, "--version", "1")
        assert_one_line_error(result, "arbitrary code")
        assert "ONNX" in result.err

    def test_corrupt_onnx(self, cli: Cli, setup: Setup) -> None:
        path = setup.root / "junk.onnx"
        path.write_bytes(b"\x00garbage" * 10)
        assert_one_line_error(cli("model", "add", "m", path, "--version", "1"))

    def test_version_is_immutable(self, cli: Cli, setup: Setup, onnx_model: Path) -> None:
        result = cli("model", "add", "cancer-screen", onnx_model, "--version", "1.0.0")
        assert_one_line_error(result, "already registered")

    def test_bad_names(self, cli: Cli, setup: Setup, onnx_model: Path) -> None:
        assert_one_line_error(cli("model", "add", "Bad Name", onnx_model, "--version", "1"))
        assert_one_line_error(cli("model", "add", "ok", onnx_model, "--version", "1/../2"))

    def test_corrupt_card(self, cli: Cli, setup: Setup, onnx_model: Path) -> None:
        card = setup.root / "card.yaml"
        card.write_text("description: x\nsecret_field: 1\n")
        result = cli("model", "add", "m", onnx_model, "--version", "1", "--card", card)
        assert_one_line_error(result, "secret_field")

    def test_unknown_model_and_version(self, cli: Cli, setup: Setup) -> None:
        assert_one_line_error(cli("model", "show", "nope"))
        assert_one_line_error(cli("model", "verify", "cancer-screen", "--version", "9"))
        assert_one_line_error(cli("model", "rollback", "cancer-screen", "--to", "9"))


class TestTamperedArtifacts:
    def artifact(self, setup: Setup) -> Path:
        return next((setup.workspace / "artifacts").rglob("artifact.enc"))

    def test_flipped_byte_in_ciphertext_is_named(self, cli: Cli, setup: Setup) -> None:
        path = self.artifact(setup)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        assert_one_line_error(cli("model", "verify", "cancer-screen"), "artifact file", "modified")

    def test_missing_artifact_is_named(self, cli: Cli, setup: Setup) -> None:
        self.artifact(setup).unlink()
        assert_one_line_error(cli("model", "verify", "cancer-screen"), "missing")

    def test_artifact_swapped_between_versions_is_caught(
        self, cli: Cli, setup: Setup, onnx_model: Path
    ) -> None:
        assert cli("model", "add", "cancer-screen", onnx_model, "--version", "2.0.0").code == 0
        root = setup.workspace / "artifacts" / "models" / "cancer-screen"
        (root / "1.0.0" / "artifact.enc").write_bytes(
            (root / "2.0.0" / "artifact.enc").read_bytes()
        )
        result = cli("model", "verify", "cancer-screen", "--version", "1.0.0")
        assert_one_line_error(result, "artifact file", "modified")

    def test_replaced_kek_is_named(self, cli: Cli, setup: Setup) -> None:
        kek = setup.workspace / "keys" / "kek.key"
        kek.unlink()
        from modelpact.crypto import KeyEncryptionKey

        KeyEncryptionKey.generate().save(kek)
        assert_one_line_error(cli("model", "verify", "cancer-screen"), "wrapped data key")


@pytest.mark.usefixtures("unchanged")
class TestPartnerCommands:
    def test_bad_public_key(self, cli: Cli, setup: Setup) -> None:
        assert_one_line_error(cli("partner", "add", "x", "--public-key", "ed25519:abc"))
        assert_one_line_error(cli("partner", "add", "x", "--public-key", "hello"))

    def test_duplicate_partner_and_duplicate_key(self, cli: Cli, setup: Setup) -> None:
        other = SigningKey.generate().verify_key.encode()
        assert_one_line_error(cli("partner", "add", "acme", "--public-key", other))
        assert_one_line_error(
            cli("partner", "add", "acme2", "--public-key", setup.partner_key), "already enrolled"
        )

    def test_owner_key_is_not_a_partner_key(self, cli: Cli, setup: Setup) -> None:
        assert_one_line_error(cli("partner", "add", "me", "--public-key", setup.owner_key))

    def test_unknown_partner_and_bad_transition(self, cli: Cli, setup: Setup) -> None:
        assert_one_line_error(cli("partner", "suspend", "nobody"))
        assert_one_line_error(cli("partner", "resume", "acme"), "is active")

    def test_keygen_never_overwrites(self, cli: Cli, setup: Setup) -> None:
        before = setup.partner_key_file.read_bytes()
        assert_one_line_error(cli("partner", "keygen", "--out", setup.partner_key_file))
        assert setup.partner_key_file.read_bytes() == before


@pytest.mark.usefixtures("unchanged")
class TestCharterCommands:
    def test_missing_and_corrupt_charter(self, cli: Cli, setup: Setup) -> None:
        assert_one_line_error(cli("charter", "check", setup.root / "absent.yaml"), "does not exist")
        bad = setup.root / "bad.yaml"
        bad.write_text("charter: [unclosed\n")
        checked = cli("charter", "check", bad)
        assert checked.code != 0
        assert f"{bad}:2: error" in checked.out
        assert_one_line_error(cli("charter", "sign", bad))
        assert_one_line_error(cli("charter", "apply", bad))

    def test_check_reports_line_numbers(self, cli: Cli, setup: Setup) -> None:
        source = render_charter(
            setup.root / "c.yaml",
            owner_key=setup.owner_key,
            partner_key=setup.partner_key,
            extra="surprise: true\n",
        )
        result = cli("charter", "check", source)
        assert result.code != 0
        line = len(source.read_text().splitlines())
        assert f"{source}:{line}: error" in result.out
        assert "surprise" in result.out

    def test_apply_without_countersignature(self, cli: Cli, setup: Setup) -> None:
        source = render_charter(
            setup.root / "c.yaml", owner_key=setup.owner_key, partner_key=setup.partner_key
        )
        envelope = setup.root / "c.signed.json"
        assert cli("charter", "sign", source, "--out", envelope).code == 0
        assert_one_line_error(cli("charter", "apply", envelope), "partner")

    def test_countersign_with_the_wrong_key(self, cli: Cli, setup: Setup) -> None:
        source = render_charter(
            setup.root / "c.yaml", owner_key=setup.owner_key, partner_key=setup.partner_key
        )
        envelope = setup.root / "c.signed.json"
        assert cli("charter", "sign", source, "--out", envelope).code == 0
        before = envelope.read_text()
        stranger = setup.root / "stranger.key"
        SigningKey.generate().save(stranger)
        assert_one_line_error(
            cli("charter", "countersign", envelope, "--key", stranger), "wrong party"
        )
        assert envelope.read_text() == before

    def test_signing_a_charter_naming_another_owner(self, cli: Cli, setup: Setup) -> None:
        source = render_charter(
            setup.root / "c.yaml",
            owner_key=SigningKey.generate().verify_key.encode(),
            partner_key=setup.partner_key,
        )
        assert_one_line_error(
            cli("charter", "sign", source, "--out", setup.root / "o.json"), "wrong party"
        )
        assert not (setup.root / "o.json").exists()

    def test_tampered_envelope(self, cli: Cli, setup: Setup) -> None:
        envelope = signed_charter(cli, setup)
        document = json.loads(envelope.read_text())
        document["charter"]["limits"]["daily_quota"] = 10**9
        envelope.write_text(json.dumps(document))
        assert_one_line_error(cli("charter", "apply", envelope))

    def test_expired_charter(self, cli: Cli, setup: Setup) -> None:
        from datetime import UTC, datetime

        envelope = signed_charter(
            cli,
            setup,
            start=datetime(2020, 1, 1, tzinfo=UTC),
            until=datetime(2021, 1, 1, tzinfo=UTC),
        )
        assert_one_line_error(cli("charter", "apply", envelope), "not valid now")

    def test_charter_for_an_unregistered_model(self, cli: Cli, setup: Setup) -> None:
        source = render_charter(
            setup.root / "c.yaml", owner_key=setup.owner_key, partner_key=setup.partner_key
        )
        source.write_text(source.read_text().replace("cancer-screen", "absent-model"))
        envelope = setup.root / "c.signed.json"
        assert cli("charter", "sign", source, "--out", envelope).code == 0
        assert cli("charter", "countersign", envelope, "--key", setup.partner_key_file).code == 0
        assert_one_line_error(cli("charter", "apply", envelope), "not registered")

    def test_partner_key_not_the_enrolled_one(self, cli: Cli, setup: Setup) -> None:
        impostor = SigningKey.generate()
        impostor_file = setup.root / "impostor.key"
        impostor.save(impostor_file)
        source = render_charter(
            setup.root / "i.yaml",
            owner_key=setup.owner_key,
            partner_key=impostor.verify_key.encode(),
        )
        envelope = setup.root / "i.signed.json"
        assert cli("charter", "sign", source, "--out", envelope).code == 0
        assert cli("charter", "countersign", envelope, "--key", impostor_file).code == 0
        assert_one_line_error(cli("charter", "apply", envelope), "not the enrolled one")


def test_same_version_twice_is_refused_and_changes_nothing(cli: Cli, setup: Setup) -> None:
    envelope = signed_charter(cli, setup)
    assert cli("charter", "apply", envelope).code == 0
    before = tree_digest(setup.workspace)
    assert_one_line_error(cli("charter", "apply", envelope), "cannot be applied")
    assert tree_digest(setup.workspace) == before


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("nosuch",), "No such command"),
        (("model", "add", "x"), "Missing argument"),
        (("charter", "show", "x", "--version", "abc"), "Invalid value"),
        (("charter", "diff", "x", "0", "1"), "Invalid value"),
        (("charter", "show", "x", "--version", str(2**80)), "Invalid value"),
        (("model", "list", "--bogus"), "No such option"),
    ],
)
def test_usage_errors_are_one_line(cli: Cli, args: tuple[str, ...], fragment: str) -> None:
    result = cli(*args)
    assert result.code == 2
    assert_one_line_error(result, fragment)


def test_no_arguments_prints_help(cli: Cli) -> None:
    result = cli()
    assert result.code == 2
    assert "Usage" in result.out
    assert result.err == ""


def test_newlines_in_paths_stay_on_one_line(cli: Cli, tmp_path: Path) -> None:
    assert_one_line_error(cli("charter", "check", tmp_path / "no\nsuch.yaml"), "does not exist")


def test_model_file_that_is_not_a_regular_file(cli: Cli, setup: Setup) -> None:
    assert_one_line_error(
        cli("model", "add", "m", "/dev/zero", "--version", "1"), "not a regular file"
    )


def test_markup_in_names_is_printed_as_text(cli: Cli, setup: Setup) -> None:
    other = SigningKey.generate().verify_key.encode()
    assert cli("partner", "add", "odd", "--public-key", other, "--name", "[/bold] x").code == 0
    listed = cli("partner", "list")
    assert listed.code == 0
    assert "[/bold] x" in listed.out
    source = render_charter(
        setup.root / "c.yaml",
        owner_key=setup.owner_key,
        partner_key=setup.partner_key,
        extra='"[/x]": 1\n',
    )
    checked = cli("charter", "check", source)
    assert checked.code == 1
    assert "[/x]" in checked.out
    assert_one_line_error(
        cli(
            "partner",
            "add",
            "bad",
            "--public-key",
            SigningKey.generate().verify_key.encode(),
            "--name",
            "two\nlines",
        ),
        "printable",
    )


def test_decide_rejects_bad_arguments(cli: Cli, setup: Setup) -> None:
    base = (
        "policy",
        "decide",
        "--partner",
        "acme",
        "--charter",
        "c",
        "--purpose",
        "p",
        "--model",
        "cancer-screen",
        "--version",
        "1.0.0",
    )
    assert_one_line_error(cli(*base, "--action", "steal"), "unknown action")
    assert_one_line_error(cli(*base, "--at", "yesterday"), "ISO 8601")
    assert_one_line_error(cli(*base, "--at", "2026-01-01T00:00:00"), "explicit zone")
