"""Drive the real CLI in-process (``modelpact.cli.main.main``) against real workspaces."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from modelpact.cli.main import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


Cli = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def assert_one_line_error(result: Result, *fragments: str) -> None:
    """A failed command: non-zero exit, exactly one line on stderr, no traceback."""
    assert result.code != 0, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("modelpact: error: "), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def tree_digest(root: Path) -> str:
    """Everything a command could have changed in a workspace, as one digest.

    Files are hashed byte for byte, except the SQLite database, whose *contents*
    are hashed (a dump through SQLite itself, which reads the WAL too): a
    checkpoint may rewrite its pages without changing a single row.
    """
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith("modelpact.db"):
            continue
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    connection = sqlite3.connect(root / "modelpact.db")
    try:
        for line in connection.iterdump():
            digest.update(line.encode())
    finally:
        connection.close()
    return digest.hexdigest()


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from modelpact.runtime import export_sklearn

    features, labels = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(features, labels)
    path = tmp_path_factory.mktemp("model") / "cancer.onnx"
    path.write_bytes(export_sklearn(model))
    return path


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    from modelpact.runtime import export_sklearn

    features, labels = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    path = tmp_path_factory.mktemp("model") / "digits.onnx"
    path.write_bytes(export_sklearn(model))
    return path


def render_charter(
    path: Path,
    *,
    owner_key: str,
    partner_key: str,
    start: datetime | None = None,
    until: datetime | None = None,
    version: int = 1,
    extra: str = "",
) -> Path:
    now = datetime.now(UTC).replace(microsecond=0)
    text = (
        (EXAMPLES / "charter.yaml")
        .read_text()
        .replace("@OWNER_KEY@", owner_key)
        .replace("@PARTNER_KEY@", partner_key)
        .replace("@FROM@", (start or now - timedelta(days=1)).isoformat())
        .replace("@UNTIL@", (until or now + timedelta(days=30)).isoformat())
        .replace("version: 1\n", f"version: {version}\n", 1)
    )
    path.write_text(text + extra)
    return path


@dataclass(frozen=True)
class Setup:
    root: Path
    workspace: Path
    owner_key: str
    partner_key: str
    partner_key_file: Path


@pytest.fixture
def setup(
    cli: Cli,
    tmp_path: Path,
    onnx_model: Path,
    digits_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Setup:
    """A workspace with models cancer-screen, cancer-screen-mlp and digits 1.0.0 (the demo
    charter grants them) and partner acme enrolled (no charter yet)."""
    workspace = tmp_path / "owner"
    assert cli("init", workspace).code == 0
    monkeypatch.setenv("MODELPACT_WORKSPACE", str(workspace))
    assert cli("model", "add", "cancer-screen", onnx_model, "--version", "1.0.0").code == 0
    assert cli("model", "add", "cancer-screen-mlp", onnx_model, "--version", "1.0.0").code == 0
    assert cli("model", "add", "digits", digits_model, "--version", "1.0.0").code == 0
    keygen = cli("partner", "keygen", "--out", tmp_path / "acme.key")
    assert keygen.code == 0
    partner_key = keygen.out.strip()
    assert cli("partner", "add", "acme", "--public-key", partner_key).code == 0
    owner_key = (workspace / "keys" / "owner-ed25519.pub").read_text().strip()
    return Setup(tmp_path, workspace, owner_key, partner_key, tmp_path / "acme.key")


def signed_charter(cli: Cli, setup: Setup, name: str = "charter", **kwargs: object) -> Path:
    """Render, sign and countersign a charter; return the envelope path."""
    source = render_charter(
        setup.root / f"{name}.yaml",
        owner_key=setup.owner_key,
        partner_key=setup.partner_key,
        **kwargs,  # type: ignore[arg-type]
    )
    envelope = setup.root / f"{name}.signed.json"
    assert cli("charter", "sign", source, "--out", envelope).code == 0
    assert cli("charter", "countersign", envelope, "--key", setup.partner_key_file).code == 0
    return envelope
