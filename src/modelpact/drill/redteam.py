"""The red team: extraction attacks through a real gateway, measured against the monitor.

:func:`run_redteam` takes a model version and a charter from the owner's workspace and,
in a scratch workspace of its own (so the real log, partners and quotas are left
alone), registers the same artifact with the same training summary, enrols a red-team
partner, and for each output policy the grant could use (the grant's own, exact
scores, scores to 2 decimals, labels) applies a copy of the charter with that policy.
A real gateway serves it over TLS on 127.0.0.1, and each attack of
:mod:`modelpact.redteam` spends its query budget through the partner SDK with the
red-team partner's key, as a partner would.

The copy's monitor only *alerts* (so an attack runs to its whole budget and its
curve is complete); where the real charter's ladder would have throttled, hardened
and suspended is measured alongside, by the same detectors and ladder the gateway
runs (:class:`~modelpact.monitor.Watch`, :class:`~modelpact.monitor.Ladder`) fed the
same batches.  The report gives, per attack and policy, fidelity (agreement with the
real model on held-out rows the attacks never see) against queries, the query at
which the gateway logged its first incident, and where each response would have hit.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from modelpact.charter import Charter, OutputKind, OutputPolicy, to_yaml
from modelpact.client import PartnerClient
from modelpact.crypto import SigningKey
from modelpact.errors import InvalidInput, NotFound
from modelpact.gateway.app import Gateway, create_app
from modelpact.monitor import Ladder, Watch, margins
from modelpact.redteam import Answers, Step, adaptive_labels, equation_solving, fidelity, knockoff
from modelpact.runtime import Predictor
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, Workspace
from modelpact.services.monitoring import Monitor, ProtectionDesk, watched_label
from modelpact.services.workspace import init_workspace

__all__ = ["ATTACKS", "Curve", "Report", "run_redteam", "split_data"]

ATTACKS = ("equation-solving", "adaptive", "knockoff")
_PARTNER = "redteam"
_TARGET = 0.95  # the fidelity the measured goal is about


@dataclass
class Curve:
    """One attack under one output policy: fidelity after each step, and the monitor's marks."""

    attack: str
    policy: str
    points: list[tuple[int, float]] = field(default_factory=list)  # (queries, fidelity)
    marks: list[tuple[int, str, str]] = field(default_factory=list)  # (queries, response, detector)
    logged: int | None = None  # queries spent when the gateway logged its first incident
    failure: str | None = None

    def queries_to(self, level: float) -> int | None:
        """The first query count at which fidelity reached ``level``, if it did."""
        return next((q for q, f in self.points if f >= level), None)

    def first(self, response: str | None = None) -> int | None:
        """Queries spent when the charter's ladder took its first step (of ``response``)."""
        return next((q for q, r, _ in self.marks if response is None or r == response), None)

    @property
    def flagged_in_time(self) -> bool | None:
        """Whether the first step came before the surrogate reached 95% fidelity (None: it
        never reached it)."""
        reached = self.queries_to(_TARGET)
        if reached is None:
            return None
        first = self.first()
        # Strictly before: an alarm raised on the batch that got there came too late.
        return first is not None and first < reached

    def as_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "policy": self.policy,
            "points": self.points,
            "marks": self.marks,
            "logged": self.logged,
            "failure": self.failure,
        }


@dataclass
class Report:
    model: str
    version: str
    charter: str
    budget: int
    attack_rows: int
    eval_rows: int
    ladder: tuple[str, ...]  # the real charter's responses, mildest first; () if monitor off
    curves: list[Curve]

    def rows(self) -> list[dict[str, str]]:
        """The table: one row per attack and policy."""
        table = []
        for c in self.curves:
            final = c.points[-1] if c.points else None
            table.append(
                {
                    "attack": c.attack,
                    "output": c.policy,
                    "queries": str(final[0]) if final else "-",
                    "fidelity": f"{final[1]:.3f}" if final else "-",
                    "95% at": _count(c.queries_to(_TARGET)),
                    "first alarm": _count(c.first()),
                    "logged at": _count(c.logged),
                    **{r: _count(c.first(r)) for r in self.ladder[1:]},
                    "in time": {True: "yes", False: "NO", None: "-"}[c.flagged_in_time],
                    "note": c.failure or "",
                }
            )
        return table

    def markdown(self) -> str:
        rows = self.rows()
        header = list(rows[0]) if rows else ["attack"]
        lines = [
            f"# Red team: {self.model} {self.version} under {self.charter}",
            "",
            f"Budget {self.budget} queries per attack; attacker's natural rows "
            f"{self.attack_rows}, held-out evaluation rows {self.eval_rows}.  Ladder: "
            f"{' -> '.join(self.ladder) if self.ladder else 'monitor off'}.  "
            "'first alarm' and the response columns: queries spent when the charter's ladder "
            "would have taken that step; 'logged at': when the gateway's log held its first "
            "incident; 'in time': the first step came before 95% fidelity.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "version": self.version,
                "charter": self.charter,
                "budget": self.budget,
                "attack_rows": self.attack_rows,
                "eval_rows": self.eval_rows,
                "ladder": self.ladder,
                "curves": [c.as_dict() for c in self.curves],
            },
            indent=2,
        )

    def plot(self, path: Path) -> None:
        """Fidelity against queries, one panel per attack, the ladder's steps marked."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        attacks = list(dict.fromkeys(c.attack for c in self.curves))
        figure, axes = plt.subplots(
            1, len(attacks), figsize=(5.5 * len(attacks), 4.2), squeeze=False
        )
        colours = {"alert": "tab:blue", "throttle": "tab:orange", "harden": "tab:purple"}
        colours |= {"suspend": "tab:red", "revoke": "black"}
        for ax, attack in zip(axes[0], attacks, strict=True):
            for curve in (c for c in self.curves if c.attack == attack):
                if not curve.points:
                    continue
                queries, values = zip(*curve.points, strict=True)
                (line,) = ax.plot(queries, values, marker="o", markersize=3, label=curve.policy)
                for q, response, _ in curve.marks:
                    ax.axvline(q, color=colours.get(response, "grey"), linestyle="--", alpha=0.6)
                    ax.annotate(
                        response, (q, 0.02), rotation=90, fontsize=7, color=line.get_color()
                    )
            ax.axhline(_TARGET, color="grey", linewidth=0.8)
            ax.set_title(attack)
            ax.set_xlabel("queries")
            ax.set_ylim(0, 1.02)
            ax.legend(fontsize=7, loc="lower right")
        axes[0][0].set_ylabel("fidelity (agreement on held-out rows)")
        figure.suptitle(f"{self.model} {self.version}: extraction vs the monitor ({self.charter})")
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _describe(policy: OutputPolicy) -> str:
    if policy.kind is OutputKind.SCORES:
        return "scores" if policy.decimals is None else f"scores/{policy.decimals}dp"
    if policy.kind is OutputKind.TOP_K:
        return f"top-{policy.k}" + ("" if policy.decimals is None else f"/{policy.decimals}dp")
    return policy.kind.value


def _variants(grant: OutputPolicy) -> list[tuple[str, OutputPolicy]]:
    """The grant's own policy first, then exact scores, 2-decimal scores and labels."""
    found: list[tuple[str, OutputPolicy]] = [(_describe(grant) + " (grant)", grant)]
    for policy in (
        OutputPolicy(kind=OutputKind.SCORES),
        OutputPolicy(kind=OutputKind.SCORES, decimals=2),
        OutputPolicy(kind=OutputKind.LABEL),
    ):
        if all(policy != p for _, p in found):
            found.append((_describe(policy), policy))
    return found


class _Reference:
    """The real model, in this process, for fidelity: its labels."""

    def __init__(self, onnx: bytes) -> None:
        self._predictor = Predictor.from_bytes(onnx, source="reference.onnx")
        single = self._predictor.summary.inputs[0].elem_type == "float"
        self._dtype = np.float32 if single else np.float64

    def margins(self, rows: Any) -> list[float] | None:
        """The model's margins, as the gateway hands them to its monitor."""
        raw = self._predictor.predict(np.asarray(rows, dtype=self._dtype))
        scores = raw.get("probabilities")
        return None if scores is None else margins(scores).tolist()

    def predict(self, rows: Any) -> npt.NDArray[Any]:
        raw = self._predictor.predict(np.asarray(rows, dtype=self._dtype))
        if "label" in raw:
            return np.asarray(raw["label"]).reshape(-1)
        chosen: npt.NDArray[Any] = np.argmax(np.asarray(raw["probabilities"]), axis=1)
        return chosen


class _Oracle:
    """The partner's view through the gateway, and the monitor's view of the same batches."""

    def __init__(
        self,
        sdk: PartnerClient,
        *,
        model: str,
        max_rows: int,
        gateway: Gateway,
        sandbox: Workspace,
        charter_id: str,
        shadow: tuple[Watch, Ladder] | None,
        curve: Curve,
        reference: _Reference,
    ) -> None:
        self.sdk, self.model, self.max_rows = sdk, model, max_rows
        self.reference = reference
        self.gateway, self.sandbox, self.charter_id = gateway, sandbox, charter_id
        self.shadow, self.curve = shadow, curve
        self.queries = 0

    def __call__(self, rows: npt.NDArray[np.float64]) -> Answers:
        labels: list[Any] = []
        scores: list[list[float]] | None = []
        for start in range(0, len(rows), self.max_rows):
            batch = np.asarray(rows[start : start + self.max_rows], dtype=np.float64)
            outputs = self.sdk.predict(self.model, batch).outputs
            shown = [watched_label(o) for o in outputs]
            labels.extend(shown)
            if scores is not None and all("scores" in o for o in outputs):
                scores.extend([float(s["score"]) for s in o["scores"]] for o in outputs)
            else:
                scores = None
            self.queries += len(batch)
            self._watch(batch, shown)
        return Answers(np.asarray(labels), None if scores is None else np.asarray(scores))

    def _watch(self, batch: npt.NDArray[np.float64], shown: list[Any]) -> None:
        if self.shadow is not None:
            watch, ladder = self.shadow
            alarms = watch.observe(
                batch.tolist(), shown, datetime.now(UTC).date(), self.reference.margins(batch)
            )
            step = ladder.next_step(watch.step, watch.since_step, bool(alarms))
            if step is not None:
                watch.stepped(step)
                self.curve.marks.append(
                    (self.queries, ladder.response(step).value, alarms[0].detector)
                )
        if self.curve.logged is None:
            self.gateway.monitor.flush()
            if any(p.charter_id == self.charter_id for p in ProtectionDesk(self.sandbox).all()):
                self.curve.logged = self.queries


def split_data(rows: npt.NDArray[np.float64], seed: int) -> tuple[Any, Any]:
    """The attacker's half of ``rows`` and the half that measures fidelity."""
    order = np.random.default_rng(seed).permutation(len(rows))
    half = len(rows) // 2
    return rows[order[:half]], rows[order[half:]]


def _attack(
    name: str, oracle: _Oracle, natural: Any, budget: int, surrogate: str, seed: int
) -> Any:
    if name == "equation-solving":
        return equation_solving(oracle, natural, budget=budget, seed=seed)
    if name == "adaptive":
        return adaptive_labels(oracle, natural, budget=budget, surrogate=surrogate, seed=seed)
    return knockoff(oracle, natural, budget=budget, surrogate=surrogate, seed=seed)


def run_redteam(
    ws: Workspace,
    *,
    charter: str,
    model: str,
    data: Sequence[Sequence[float]],
    attacks: Sequence[str] = ATTACKS,
    budget: int = 1000,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Run ``attacks`` against ``model`` as ``charter``'s partner would see it (see module).

    ``data``: natural rows of the model's input distribution that were not used to
    train it; half go to the attacker, half measure fidelity.
    """
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise InvalidInput(
            f"unknown attack {unknown[0] if unknown else '(none)'}; "
            f"choose from {', '.join(ATTACKS)}"
        )
    if budget < 10:
        raise InvalidInput("a budget of at least 10 queries")
    rows = np.asarray(data, dtype=np.float64)
    if rows.ndim != 2 or len(rows) < 20:
        raise InvalidInput("--data needs at least 20 rows of numbers")
    _, real = CharterDesk(ws).get(charter)
    grant = next((g for g in real.grants if g.model == model), None)
    if grant is None:
        raise NotFound(f"charter {charter} grants nothing on model {model}")
    registry = ModelRegistry(ws)
    version = registry.served(model)
    if not grant.covers_version(version):
        raise InvalidInput(f"{model} serves {version}, which {charter} does not grant")
    registry.verify(model, version)
    onnx = registry.decrypt(model, version)
    summary = registry.training_summary(model, version)
    reference = _Reference(onnx)
    natural, held_out = split_data(rows, seed)
    classes = len(np.unique(reference.predict(rows)))
    surrogate = "logistic" if classes <= 2 else "mlp"
    settings = real.protections.extraction_monitor
    ladder = None if settings is None else Ladder.of(settings)
    report = Report(
        model=model,
        version=version,
        charter=charter,
        budget=budget,
        attack_rows=len(natural),
        eval_rows=len(held_out),
        ladder=() if ladder is None else tuple(r.value for r in ladder.steps),
        curves=[],
    )
    with tempfile.TemporaryDirectory(prefix="modelpact-redteam-") as scratch:
        sandbox = init_workspace(Path(scratch) / "ws", name="redteam")
        try:
            ModelRegistry(sandbox).add(model, onnx, version=version, source=f"{model}.onnx")
            if summary is not None:
                ModelRegistry(sandbox).set_training_summary(model, version, summary)
            key = SigningKey.generate()
            PartnerDirectory(sandbox).enrol(_PARTNER, key.verify_key.encode(), name="Red team")
            variants = _variants(grant.output)
            # One charter per attack and policy: each run starts with a fresh watch.
            runs = [
                (f"redteam-{v}-{a}", label, policy, attack)
                for v, (label, policy) in enumerate(variants)
                for a, attack in enumerate(attacks)
            ]
            for charter_id, _, policy, _ in runs:
                _apply(sandbox, real, key, charter_id, model, version, policy)
            gateway = Gateway(sandbox, monitor=Monitor(sandbox))
            try:
                with _served(sandbox, gateway) as url:
                    for charter_id, label, _, attack in runs:
                        progress(f"{attack} on {label}")
                        curve = Curve(attack, label)
                        report.curves.append(curve)
                        shadow = None
                        if ladder is not None and summary is not None:
                            shadow = (Watch(summary, summary.width), ladder)
                        with PartnerClient(
                            url,
                            partner=_PARTNER,
                            key=key,
                            charter=charter_id,
                            purpose=real.purposes[0],
                            owner_key=sandbox.owner_verify_key,
                            verify=sandbox.ca_cert_path,
                        ) as sdk:
                            oracle = _Oracle(
                                sdk,
                                model=model,
                                max_rows=real.limits.max_batch_rows,
                                gateway=gateway,
                                sandbox=sandbox,
                                charter_id=charter_id,
                                shadow=shadow,
                                curve=curve,
                                reference=reference,
                            )
                            _measure(
                                curve,
                                _attack(attack, oracle, natural, budget, surrogate, seed),
                                reference,
                                held_out,
                            )
            finally:
                gateway.close()
        finally:
            sandbox.close()
    if summary is None:
        for curve in report.curves:
            curve.failure = (curve.failure or "") + " no training summary: volume only"
    return report


def _measure(curve: Curve, steps: Any, reference: _Reference, held_out: Any) -> None:
    try:
        for step in steps:
            assert isinstance(step, Step)
            curve.points.append((step.queries, fidelity(step.surrogate, reference, held_out)))
    except InvalidInput as error:  # the attack cannot work under this output policy
        curve.failure = error.summary


def _apply(
    sandbox: Workspace,
    real: Charter,
    key: SigningKey,
    charter_id: str,
    model: str,
    version: str,
    policy: OutputPolicy,
) -> None:
    """A copy of ``real`` for the red-team partner: one grant with ``policy``, no rate or
    quota (the budget is what is measured), and a monitor that only alerts."""
    now = datetime.now(UTC).replace(microsecond=0)
    document = real.to_document()
    document.update(
        charter=charter_id,
        version=1,
        owner={"name": "Red team owner", "key": sandbox.owner_verify_key.encode()},
        partner={"id": _PARTNER, "name": "Red team", "key": key.verify_key.encode()},
        valid={
            "from": (now - timedelta(days=1)).isoformat(),
            "until": (now + timedelta(days=1)).isoformat(),
        },
        purposes=[real.purposes[0]],
        grants=[
            {
                "model": model,
                "versions": version,
                "actions": ["predict"],
                "output": policy.model_dump(mode="json", exclude_none=True),
            }
        ],
        limits={"max_batch_rows": real.limits.max_batch_rows, "session_ttl": "15m"},
        protections={
            "watermark": real.protections.watermark,
            "extraction_monitor": {"on_alert": "alert", "on_confirmed": "alert"},
        },
    )
    for optional in ("incident_response", "attestation"):
        document.pop(optional, None)
    copy = Charter.model_validate(document)
    desk = CharterDesk(sandbox)
    signed = desk.sign(to_yaml(copy), source=f"{charter_id}.yaml").countersign(key)
    desk.apply(signed.to_json(), source=f"{charter_id}.json")


def _served(sandbox: Workspace, gateway: Gateway) -> Any:
    from modelpact.drill.loopback import serving

    sandbox.ensure_tls(["127.0.0.1"])
    return serving(
        create_app(sandbox, gateway=gateway),
        certfile=sandbox.server_cert_path,
        keyfile=sandbox.server_key_path,
    )
