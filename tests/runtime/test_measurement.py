"""The software measurement: any change to a serving file changes it; nothing else does."""

from __future__ import annotations

import shutil
from pathlib import Path

import modelpact
from modelpact.runtime.measurement import measure, measure_code, measure_dependencies

PACKAGE = Path(modelpact.__file__).parent


def copy(tmp_path: Path) -> Path:
    target = tmp_path / "modelpact"
    shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_a_copy_measures_the_same_and_caches_do_not_count(tmp_path: Path) -> None:
    target = copy(tmp_path)
    assert measure_code(target) == measure_code(PACKAGE)
    cache = target / "gateway" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "app.cpython-311.pyc").write_bytes(b"compiled")
    assert measure_code(target) == measure_code(PACKAGE)


def test_a_changed_added_or_removed_serving_file_changes_the_measurement(tmp_path: Path) -> None:
    target = copy(tmp_path)
    before, files = measure_code(target)
    app = target / "gateway" / "app.py"
    app.write_bytes(app.read_bytes() + b"\n# changed\n")
    changed, _ = measure_code(target)
    assert changed != before
    (target / "gateway" / "extra.py").write_text("x = 1\n")
    added, more = measure_code(target)
    assert added not in (before, changed) and more == files + 1
    (target / "gateway" / "extra.py").unlink()
    app.unlink()
    removed, fewer = measure_code(target)
    assert removed not in (before, changed, added) and fewer == files - 1


def test_a_renamed_file_changes_the_measurement(tmp_path: Path) -> None:
    target = copy(tmp_path)
    before, _ = measure_code(target)
    (target / "wire.py").rename(target / "wire2.py")
    assert measure_code(target)[0] != before


def test_the_dependency_set_is_what_serving_needs() -> None:
    digest, count = measure_dependencies()
    assert digest == measure_dependencies()[0]
    assert digest.startswith("sha256:") and count >= 10  # fastapi, uvicorn, onnxruntime...
    without_server, fewer = measure_dependencies(extras=frozenset())
    assert without_server != digest and fewer < count
    whole = measure()
    assert (whole.code, whole.dependencies) == (measure_code()[0], digest)
