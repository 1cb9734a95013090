"""Which partner's answers trained a suspect model?  Replays each partner's marks to it.

For every partner with a watermark key, the queries its watermark marked on the model
are given to the suspect (an ONNX file, checked like any model before it runs); how often
the suspect answers with the partner's swapped label is compared with how often it
disagrees with the original model at all, on probe rows (:func:`modelpact.marks.flip_test`).
A partner is named only when that is too many to be chance: p below ``threshold``
(1e-6 by default), Bonferroni-corrected for the number of partners tested.  Probe rows
are the owner's natural rows (``probe``) or, by default, rows drawn from the training
summary registered with the model version (its mean and correlation, within its ranges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from modelpact.errors import InvalidInput, NotFound
from modelpact.marks import Evidence, chance_rate, flip_test
from modelpact.runtime import Predictor
from modelpact.services.registry import ModelRegistry
from modelpact.services.watermarking import WatermarkDesk
from modelpact.services.workspace import Workspace

__all__ = ["Attribution", "Suspect", "attribute"]


@dataclass(frozen=True)
class Attribution:
    model: str
    threshold: float
    partners: int
    probe_rows: int
    evidence: list[Evidence]

    @property
    def named(self) -> list[Evidence]:
        """The partners whose marks the suspect reproduces beyond chance."""
        return [e for e in self.evidence if e.p_value * self.partners < self.threshold]

    def explain(self) -> str:
        how = (
            f"Each partner's marked queries were replayed to the suspect; a partner is named "
            f"when p x {self.partners} partners < {self.threshold:g} (chance measured as the "
            f"suspect's disagreement with {self.model} on {self.probe_rows} probe rows)."
        )
        if not self.named:
            return how + " No partner is named."
        return how + " Named: " + "; ".join(e.explain() for e in self.named)


class _Runner:
    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        single = predictor.summary.inputs[0].elem_type == "float"
        self.dtype = np.float32 if single else np.float64

    def labels(self, rows: Any) -> Any:
        raw = self.predictor.predict(np.asarray(rows, dtype=self.dtype))
        if "label" in raw:
            return np.asarray(raw["label"]).reshape(-1)
        if "probabilities" in raw:
            return np.argmax(np.asarray(raw["probabilities"]), axis=1)
        raise InvalidInput("the suspect model has neither a label nor class scores output")


def _synthetic_probe(registry: ModelRegistry, model: str, version: str) -> Any:
    """2,000 rows drawn from the training summary's mean and correlation: where a model that
    never saw anyone's answers disagrees with the original about as often as anywhere."""
    summary = registry.training_summary(model, version)
    if summary is None:
        raise InvalidInput(
            f"{model} {version} was registered without reference rows",
            hint="pass --probe FILE: natural rows to measure chance agreement on",
        )
    correlation = np.linalg.inv(summary.precision)
    z = np.random.default_rng(0).multivariate_normal(
        np.zeros(summary.width), correlation, size=2000, check_valid="ignore"
    )
    return np.clip(summary.mean + z * summary.std, summary.low, summary.high)


class Suspect(Protocol):
    """Anything that labels rows: an ONNX file run here, or an endpoint asked over HTTP."""

    def labels(self, rows: Any) -> Any: ...


def attribute(
    ws: Workspace,
    suspect: bytes | Suspect,
    *,
    model: str,
    probe: Any = None,
    threshold: float = 1e-6,
    query_budget: int | None = None,
) -> Attribution:
    """Test ``suspect`` (ONNX bytes, or a :class:`Suspect`) against every partner's watermark
    on ``model``.  ``query_budget``: the most rows the suspect may be asked about; the marked
    queries come first, the probe rows get what is left."""
    if not 0 < threshold < 1:
        raise InvalidInput("the threshold must be between 0 and 1")
    runner: Suspect = (
        _Runner(Predictor.from_bytes(suspect, source="suspect.onnx"))
        if isinstance(suspect, bytes)
        else suspect
    )
    registry = ModelRegistry(ws)
    version = registry.served(model)
    registry.verify(model, version)
    original = _Runner(Predictor.from_bytes(registry.decrypt(model, version), source=model))
    desk = WatermarkDesk(ws)
    marks = {p: [m for m in desk.marks(p, model)] for p in desk.partners()}
    marks = {p: found for p, found in marks.items() if found}
    if not marks:
        raise NotFound(f"no partner's watermark has marked any answer of {model}")
    if probe is None:
        probe = _synthetic_probe(registry, model, version)
    rows = np.asarray(probe, dtype=np.float64)
    if query_budget is not None:
        marked = sum(len(m.rows) for found in marks.values() for m in found)
        if marked >= query_budget:
            raise InvalidInput(
                f"a query budget of {query_budget} rows does not cover the {marked} marked "
                "queries and a probe",
                hint="raise --budget",
            )
        rows = rows[: query_budget - marked]
    if rows.ndim != 2 or len(rows) < 10:
        raise InvalidInput(
            "attribution needs at least 10 probe rows (pass --probe FILE, or a larger --budget)"
        )
    evidence = []
    replies = {}
    for partner, found in sorted(marks.items()):  # the marks first: they carry the evidence
        replay = [row for m in found for row in m.rows]
        replies[partner] = (runner.labels(replay), [label for m in found for label in m.labels])
    chance = chance_rate(runner.labels(rows), original.labels(rows))
    for partner, (answers, given) in replies.items():
        swapped = np.asarray(given)
        evidence.append(
            flip_test(partner, np.asarray(answers).astype(swapped.dtype), swapped, chance)
        )
    return Attribution(model, threshold, len(marks), len(rows), evidence)
