"""The public surface of modelpact.runtime, and the rules each of its modules keeps."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import modelpact.runtime

PUBLIC = {
    "ALLOWED_OPERATORS",
    "DEFAULT_LIMITS",
    "INPUT_NAME",
    "MAX_CARD_BYTES",
    "GraphLimits",
    "ModelCard",
    "ModelSummary",
    "PredictionFailed",
    "Predictor",
    "TensorInfo",
    "card_to_json",
    "export_sklearn",
    "inspect_model",
    "shape_outputs",
    "load_card",
    "refuse_pickle_family",
}

_MODULES = [
    info.name for info in pkgutil.iter_modules(modelpact.runtime.__path__, "modelpact.runtime.")
]
# The charter domain too: output shaping reads a grant's output policy.
_ALLOWED_IMPORTS = (
    "modelpact.errors",
    "modelpact.crypto",
    "modelpact.runtime",
    "modelpact.charter",
)


def test_public_names() -> None:
    assert set(modelpact.runtime.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(modelpact.runtime, name) is not None


def test_every_module_has_a_docstring_and_all() -> None:
    assert _MODULES
    for name in _MODULES:
        module = importlib.import_module(name)
        assert module.__doc__, name
        exported = module.__all__
        assert exported, name
        for item in exported:
            assert hasattr(module, item), f"{name}.{item}"


def test_runtime_imports_only_errors_crypto_and_itself() -> None:
    root = Path(modelpact.runtime.__file__).parent
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("modelpact"):
                    assert name.startswith(_ALLOWED_IMPORTS), f"{path.name} imports {name}"
                assert name.split(".")[0] not in {
                    "pickle",
                    "joblib",
                    "dill",
                    "cloudpickle",
                    "torch",
                }, f"{path.name} imports {name}"
