"""The audit package's public surface, and its promise to run without the server installed."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import modelpact.audit

PURE_MODULES = ["tree", "note", "checkpoint", "witness"]
SERVER_ONLY = ["sqlalchemy", "fastapi", "httpx", "cedarpy", "onnx", "onnxruntime", "alembic"]
SERVER_PACKAGES = ["store", "services", "policy", "runtime", "charter", "cli"]


def test_public_names_are_exported_and_documented() -> None:
    mine = {
        "EMPTY_ROOT",
        "HASH_SIZE",
        "MAX_NOTE_BYTES",
        "MAX_SIGNATURES",
        "MAX_TREE_SIZE",
        "Checkpoint",
        "Frontier",
        "NodeId",
        "NodeReader",
        "Witness",
        "consistency_proof",
        "inclusion_proof",
        "key_id",
        "leaf_hash",
        "node_hash",
        "open_checkpoint",
        "open_note",
        "parse_verifier_key",
        "root_node_ids",
        "sign_checkpoint",
        "sign_note",
        "tree_root",
        "verifier_key",
        "verify_consistency",
        "verify_inclusion",
    }
    assert mine <= set(modelpact.audit.__all__)
    for name in modelpact.audit.__all__:
        assert hasattr(modelpact.audit, name), name


@pytest.mark.parametrize("name", PURE_MODULES)
def test_each_module_says_why_and_what_it_exports(name: str) -> None:
    module = importlib.import_module(f"modelpact.audit.{name}")
    assert module.__doc__
    assert "why it exists" in module.__doc__.lower()
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.{exported}"


def test_the_pure_modules_import_nothing_of_the_server() -> None:
    # A fresh interpreter: what importing the verifier side pulls in, and nothing else.
    imports = "; ".join(f"import modelpact.audit.{name}" for name in PURE_MODULES)
    code = f"import sys; {imports}; print('\\n'.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    forbidden = {m for m in loaded if m.split(".")[0] in SERVER_ONLY}
    forbidden |= {
        m for m in loaded if m.startswith("modelpact.") and m.split(".")[1] in SERVER_PACKAGES
    }
    assert not forbidden, f"the audit verifier side imports server parts: {sorted(forbidden)}"
