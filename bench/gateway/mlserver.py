"""The peer line: Seldon's MLServer serving the same classifier over its V2 protocol.

MLServer runs from its own virtualenv, ``.bench-venvs/mlserver`` (made by
``scripts/bench-mlserver-venv.sh``), because ``mlserver-sklearn`` pins its own scikit-learn
and numpy.  Its scikit-learn runtime loads models with joblib (pickle), so the model is
rebuilt and saved *inside that venv's Python*: this process hands over the fitted
coefficients as JSON, and never writes or reads a pickle itself.

Settings: MLServer's defaults (``parallel_workers`` 1, so inference runs in one pool process
beside the server; Prometheus metrics on their own port; uvloop, which MLServer installs)
except loopback addresses, free ports and ``debug: false``, which turns its access log off
as it is off for the other two servers.  ``--mlserver-workers 0`` runs inference inside the
server process instead.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bench.gateway.workspace import MODEL, BenchModel

__all__ = ["VENV", "available", "command", "infer_path", "prepare", "ready_path", "request_body"]

VENV = Path(__file__).resolve().parents[2] / ".bench-venvs" / "mlserver"

_PREPARE = """
import json, sys
from importlib.metadata import version

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

spec = json.load(sys.stdin)
model = LogisticRegression(max_iter=5000)
model.coef_ = np.asarray(spec["coef"], dtype=np.float64)
model.intercept_ = np.asarray(spec["intercept"], dtype=np.float64)
model.classes_ = np.asarray(spec["classes"])
model.n_features_in_ = model.coef_.shape[1]
joblib.dump(model, spec["path"])
names = ("mlserver", "mlserver-sklearn", "scikit-learn", "numpy", "uvicorn", "uvloop")
print(json.dumps({name: version(name) for name in names}))
"""


def available() -> bool:
    return (VENV / "bin" / "mlserver").is_file()


def prepare(
    folder: Path,
    model: BenchModel,
    *,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    workers: int,
) -> dict[str, str]:
    """A model repository in ``folder``; returns the versions MLServer's venv runs."""
    model_dir = folder / MODEL
    model_dir.mkdir(parents=True)
    settings: dict[str, Any] = {
        "debug": False,
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": workers,
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    spec = {
        "coef": model.coef,
        "intercept": model.intercept,
        "classes": model.classes,
        "path": str(model_dir / "model.joblib"),
    }
    done = subprocess.run(
        [str(VENV / "bin" / "python"), "-c", _PREPARE],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"preparing the MLServer model failed:\n{done.stderr[-2000:]}")
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def command(folder: Path) -> list[str]:
    return [str(VENV / "bin" / "mlserver"), "start", str(folder)]


def infer_path() -> str:
    return f"/v2/models/{MODEL}/infer"


def ready_path() -> str:
    return f"/v2/models/{MODEL}/ready"


def request_body(rows: list[list[float]]) -> str:
    """A V2 inference request for class probabilities (``predict_proba``)."""
    width = len(rows[0])
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), width],
                    "datatype": "FP64",
                    "data": [value for row in rows for value in row],
                }
            ],
            "outputs": [{"name": "predict_proba"}],
        }
    )


def positive_scores(response: bytes) -> list[float]:
    """P(class 1) per row from a V2 response."""
    outputs = json.loads(response)["outputs"]
    (proba,) = [o for o in outputs if o["name"] == "predict_proba"]
    width = proba["shape"][1]
    data = proba["data"]
    return [float(data[i + 1]) for i in range(0, len(data), width)]
