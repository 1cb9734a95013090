"""The partner commands run without any server dependency installed.

A child interpreter is given an import hook that makes every server package
unimportable, exactly as on a partner's plain ``pip install modelpact``; the
partner then makes its key, lints a charter and countersigns it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.cli.conftest import Cli, Setup, render_charter

SERVER_PACKAGES = [
    "sqlalchemy",
    "alembic",
    "psycopg",
    "cedarpy",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "sklearn",
    "model_signing",
    "OpenSSL",
    "numpy",
]

CHILD = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = set(json.loads(sys.argv[1]))

    class NoServer(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r} (partner install)")
            return None

    sys.meta_path.insert(0, NoServer())
    from modelpact.cli.main import main

    code = main(sys.argv[2:])
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print("LEAKED", json.dumps(leaked))
    sys.exit(code)
    """
)


def partner(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(SERVER_PACKAGES), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_partner_keygen_check_and_countersign_need_no_server(
    cli: Cli, setup: Setup, tmp_path: Path
) -> None:
    keygen = partner("partner", "keygen", "--out", tmp_path / "p.key")
    assert keygen.returncode == 0, keygen.stderr
    assert keygen.stdout.startswith("ed25519:")
    assert "LEAKED []" in keygen.stdout

    source = render_charter(
        tmp_path / "c.yaml", owner_key=setup.owner_key, partner_key=setup.partner_key
    )
    check = partner("charter", "check", source)
    assert check.returncode == 0, check.stderr
    assert "policy compilation skipped" in check.stdout

    envelope = tmp_path / "c.signed.json"
    assert cli("charter", "sign", source, "--out", envelope).code == 0  # owner side
    countersign = partner("charter", "countersign", envelope, "--key", setup.partner_key_file)
    assert countersign.returncode == 0, countersign.stderr
    assert "LEAKED []" in countersign.stdout
    assert cli("charter", "apply", envelope).code == 0  # owner accepts it


def test_partner_reviews_an_envelope_without_a_workspace(
    cli: Cli, setup: Setup, tmp_path: Path
) -> None:
    source = render_charter(
        tmp_path / "c.yaml", owner_key=setup.owner_key, partner_key=setup.partner_key
    )
    envelope = tmp_path / "c.signed.json"
    assert cli("charter", "sign", source, "--out", envelope).code == 0
    shown = partner("charter", "show", "--file", envelope)
    assert shown.returncode == 0, shown.stderr
    assert "signed by the owner only; owner signature valid" in shown.stdout
    assert "diagnostic-research" in shown.stdout


def test_owner_commands_say_plainly_that_the_server_extra_is_missing(tmp_path: Path) -> None:
    result = partner("init", tmp_path / "ws")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "server" in result.stderr
