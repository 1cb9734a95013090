"""Which partner's answers trained a suspect model?  Two tests per partner, each a p-value.

- **Swaps** (:func:`modelpact.marks.flip_test`): the queries the partner's watermark
  marked on the model are given to the suspect (an ONNX file, checked like any model before
  it runs, or a black box: :mod:`modelpact.services.suspects`); how often it answers with
  the partner's swapped label is compared with how often it disagrees, on probe rows, with
  what that partner was shown there (the model's labels, tilted by the partner's key).
- **Tilt** (:func:`modelpact.marks.tilt_test`), where the gateway serves one (a binary
  model registered with its training summary) and the suspect shows class scores: the
  direction in which the suspect's log-odds deviate from the model's on the probe rows,
  against the partner's keyed direction.  A linear copy, which learns no swaps, carries it.

A partner is named only when a test is too unlikely to be chance: p below ``threshold``
(1e-6 by default) Bonferroni-corrected for every test run (partners x tests).  Probe rows
are the owner's natural rows (``probe``) or, by default, rows drawn from the training
summary registered with the model version (its mean and correlation, within its ranges).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelpact.errors import InvalidInput, NotFound
from modelpact.marks import (
    Evidence,
    KeyedRotation,
    TiltProbe,
    Watermark,
    chance_rate,
    flip_test,
    rotation_test,
    tilt_basis,
)
from modelpact.services.registry import ModelRegistry
from modelpact.services.serving import class_labels
from modelpact.services.suspects import OnnxSuspect, Suspect
from modelpact.services.watermarking import WatermarkDesk
from modelpact.services.workspace import Workspace

__all__ = ["Attribution", "attribute", "attribute_embeddings"]


@dataclass(frozen=True)
class Attribution:
    model: str
    threshold: float
    partners: int
    probe_rows: int
    evidence: list[Evidence]

    @property
    def tests(self) -> int:
        return len(self.evidence)

    @property
    def named(self) -> list[Evidence]:
        """The tests by which the suspect is too close to a partner's marks to be chance."""
        return [e for e in self.evidence if e.p_value * self.tests < self.threshold]

    def explain(self) -> str:
        kinds = sorted({e.test for e in self.evidence})
        if kinds == ["rotation"]:
            how = (
                f"The leaked vectors were compared with the model's own vectors for the same "
                f"{self.probe_rows} inputs, turned by each partner's rotation. A partner is "
                f"named when p x {self.tests} partners < {self.threshold:g}."
            )
            named = "; ".join(e.explain() for e in self.named)
            return how + (f" Named: {named}" if named else " No partner is named.")
        how = (
            f"Each partner's marked queries were replayed to the suspect (chance measured as "
            f"its disagreement, on {self.probe_rows} probe rows, with what the partner was "
            f"shown)"
            + (
                "; its deviation from the model was compared with each partner's tilt"
                if "tilt" in kinds
                else ""
            )
            + f". A partner is named when p x {self.tests} tests ({self.partners} partners) "
            f"< {self.threshold:g}."
        )
        if not self.named:
            return how + " No partner is named."
        return how + " Named: " + "; ".join(e.explain() for e in self.named)


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


def attribute(
    ws: Workspace,
    suspect: bytes | Suspect,
    *,
    model: str,
    probe: Any = None,
    threshold: float = 1e-6,
    query_budget: int | None = None,
) -> Attribution:
    """Test ``suspect`` (ONNX bytes, or a :class:`~modelpact.services.suspects.Suspect`)
    against every partner's watermark on the version ``model`` serves.  ``query_budget``: the
    most rows the suspect may be asked about; the marked queries come first, the probe rows
    get what is left."""
    if not 0 < threshold < 1:
        raise InvalidInput("the threshold must be between 0 and 1")
    runner: Suspect = (
        OnnxSuspect.from_bytes(suspect, source="suspect.onnx")
        if isinstance(suspect, bytes)
        else suspect
    )
    registry = ModelRegistry(ws)
    version = registry.served(model)
    registry.verify(model, version)
    data = registry.decrypt(model, version)
    original = OnnxSuspect.from_bytes(data, source=model)
    summary = registry.training_summary(model, version)
    desk = WatermarkDesk(ws)
    # Every partner with a key: its tilt is tested even where none of its answers was swapped.
    marks = {p: [m for m in desk.marks(p, model)] for p in desk.partners()}
    if not any(marks.values()) and summary is None:
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
    replies: dict[str, tuple[Any, Any]] = {}
    for partner, found in sorted(marks.items()):  # the marks first: they carry the evidence
        replay = [row for m in found for row in m.rows]
        answers = runner.ask(replay).labels if replay else []
        replies[partner] = (answers, [label for m in found for label in m.labels])
    theirs, ours = runner.ask(rows), original.ask(rows)
    columns = class_labels(data)
    if summary is not None and summary.width != rows.shape[1]:
        summary = None  # as the gateway does: no tilt was served against other rows
    basis = None
    if summary is not None and ours.scores is not None and ours.scores.shape[1] > 2:
        try:
            basis = tilt_basis(summary)
        except InvalidInput:  # as the gateway does: no multiclass tilt was served
            summary = None
    evidence = []
    fitted: TiltProbe | None = None  # the same for every partner: fitted once
    for partner, (answers, given) in replies.items():
        swapped = np.asarray(given)
        shown, mark = ours.labels, None
        if ours.scores is not None and ours.scores.shape[1] >= 2:
            mark = Watermark.served(
                desk.keys(partner).prf, f"{model}@{version}",
                classes=int(ours.scores.shape[1]), summary=summary, basis=basis,
            )  # fmt: skip
            picked = np.argmax(mark.shown(rows, ours.scores), axis=1)
            shown = np.asarray(columns)[picked] if columns is not None else picked
        if len(swapped):
            chance = chance_rate(np.asarray(theirs.labels).astype(swapped.dtype), shown)
            evidence.append(
                flip_test(partner, np.asarray(answers).astype(swapped.dtype), swapped, chance)
            )
        if mark is not None and mark.tilt > 0:
            fitted = fitted or TiltProbe.fit(mark, rows, theirs.scores, ours.scores)
            if fitted is not None:
                evidence.append(fitted.test(partner, mark))
    if not evidence:
        raise NotFound(
            f"no partner's watermark has marked any answer of {model}, and the suspect shows "
            "no class scores to test a tilt on"
        )
    return Attribution(model, threshold, len(marks), len(rows), evidence)


def attribute_embeddings(
    ws: Workspace,
    inputs: Any,
    vectors: Any,
    *,
    model: str,
    version: str | None = None,
    threshold: float = 1e-6,
) -> Attribution:
    """Whose rotation do leaked embedding ``vectors`` carry?  ``inputs``: the rows they
    embed, one each; ``version``: the model version they came from (default: served)."""
    if not 0 < threshold < 1:
        raise InvalidInput("the threshold must be between 0 and 1")
    rows = np.asarray(inputs, dtype=np.float64)
    leaked = np.asarray(vectors, dtype=np.float64)
    if rows.ndim != 2 or leaked.ndim != 2 or len(rows) != len(leaked) or len(rows) < 2:
        raise InvalidInput("give at least two inputs and one leaked vector per input")
    registry = ModelRegistry(ws)
    version = version or registry.served(model)
    registry.verify(model, version)
    original = OnnxSuspect.from_bytes(registry.decrypt(model, version), source=model)
    raw = original.predictor.predict(np.asarray(rows, dtype=original.dtype))
    if len(raw) != 1:
        raise InvalidInput(f"{model} {version} is not an embedding model (one output)")
    (own,) = (np.asarray(v, dtype=np.float64) for v in raw.values())
    if own.shape != leaked.shape:
        raise InvalidInput(
            f"{model} {version} embeds in {own.shape[-1]} dimensions; the leak has "
            f"{leaked.shape[1]}"
        )
    desk = WatermarkDesk(ws)
    partners = desk.partners()
    if not partners:
        raise NotFound("no partner has a key to have turned these vectors with")
    evidence = [
        rotation_test(
            p, leaked, own, KeyedRotation(desk.keys(p).prf, f"{model}@{version}", own.shape[1])
        )
        for p in partners
    ]
    return Attribution(model, threshold, len(partners), len(rows), evidence)
