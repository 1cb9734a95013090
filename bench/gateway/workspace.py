"""The benchmark's model and workspace, built as the gateway's end-to-end tests build theirs.

One scikit-learn LogisticRegression fitted on the breast-cancer data set (shipped with
scikit-learn), exported to ONNX with :func:`modelpact.runtime.export_sklearn`; a workspace on
SQLite (the embedded default) holding that model (with its training rows as the extraction
monitor's reference), one enrolled partner and one charter signed by the owner, countersigned
by the partner and applied, with limits that never throttle the load
(``requests_per_minute`` 1,000,000, no daily quota) and the default extraction monitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from modelpact.charter import Charter, to_yaml
from modelpact.crypto import SigningKey
from modelpact.runtime import export_sklearn
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, init_workspace

__all__ = ["CHARTER", "MODEL", "PARTNER", "PURPOSE", "BenchModel", "build_workspace", "fit_model"]

MODEL = "breast-cancer"
PARTNER = "bench-partner"
CHARTER = "owner-bench-partner"
PURPOSE = "benchmark"
MAX_BATCH_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class BenchModel:
    """The fitted classifier's parameters, its ONNX export and the data set's rows."""

    onnx: bytes
    coef: list[list[float]]
    intercept: list[float]
    classes: list[int]
    features: list[list[float]]

    def rows(self, count: int) -> list[list[float]]:
        """The first ``count`` rows of the data set, cycled if it has fewer."""
        return [self.features[i % len(self.features)] for i in range(count)]


def fit_model() -> BenchModel:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    features, labels = load_breast_cancer(return_X_y=True)
    estimator = LogisticRegression(max_iter=5000).fit(features, labels)
    return BenchModel(
        onnx=export_sklearn(estimator),
        coef=estimator.coef_.tolist(),
        intercept=estimator.intercept_.tolist(),
        classes=[int(c) for c in estimator.classes_],
        features=features.tolist(),
    )


def _charter(owner: str, partner: str, now: Any, *, monitored: bool) -> Charter:
    protections = {} if monitored else {"protections": {"extraction_monitor": None}}
    return Charter.model_validate(
        {
            "charter": CHARTER,
            "version": 1,
            "owner": {"name": "Bench owner", "key": owner},
            "partner": {"id": PARTNER, "name": "Bench partner", "key": partner},
            "objective": "Measure the secure path against an unprotected endpoint.",
            "valid": {
                "from": (now - timedelta(days=1)).isoformat(),
                "until": (now + timedelta(days=30)).isoformat(),
            },
            "purposes": [PURPOSE],
            "grants": [
                {
                    "model": MODEL,
                    "versions": "1.*",
                    "actions": ["predict"],
                    "output": {"kind": "scores"},
                }
            ],
            "limits": {
                "requests_per_minute": 1_000_000,
                "max_batch_rows": MAX_BATCH_ROWS,
                "session_ttl": "1h",
            },
            **protections,
        }
    )


def build_workspace(
    root: Path, model: BenchModel, partner_key: SigningKey, *, monitored: bool = True
) -> None:
    """A workspace in ``root`` (new) with the model, the partner and its charter applied.

    ``monitored``: the model is registered with its training rows as the reference (every
    extraction detector runs) and the charter keeps the default extraction monitor; else
    no reference and ``extraction_monitor: null`` (the monitor sees nothing).
    """
    with init_workspace(root) as ws:  # SQLite inside the workspace, the embedded default
        ModelRegistry(ws).add(
            MODEL,
            model.onnx,
            version="1.0.0",
            source="breast-cancer.onnx",
            reference=model.features if monitored else None,
        )
        PartnerDirectory(ws).enrol(PARTNER, partner_key.verify_key.encode())
        desk = CharterDesk(ws)
        charter = _charter(
            ws.owner_verify_key.encode(),
            partner_key.verify_key.encode(),
            ws.clock(),
            monitored=monitored,
        )
        signed = desk.sign(to_yaml(charter), source="bench-charter.yaml")
        desk.apply(signed.countersign(partner_key).to_json(), source="bench-charter.json")
