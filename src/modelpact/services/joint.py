"""Joint (MPC) runs: owner, partner and a compute party score or evaluate a linear model on
secret-shared data, so that neither side shows the other its rows or its weights.

Each party runs :mod:`modelpact.services.joint_party` (MPyC, honest majority of three,
over mutual TLS) in a child process (:mod:`modelpact.services.joint_network` starts it,
with a deadline); this module prepares each party's input and answers the owner's
party's questions.  The owner's side
(:class:`JointDesk`) is where the charter is enforced: the partner's charter must be in
force and grant ``predict_joint`` or ``evaluate_joint`` on the model version (the same
policy decision the gateway makes), name a compute party, agree to every metric asked,
and leave room in the daily quota; every run, allowed or refused, is one entry in the
audit log — with the revealed metrics for an evaluation, never a row.

What each party learns: the partner its scores (score) or the agreed metrics (evaluate);
the owner the row count and those metrics; the compute party the row count.  The hellos
also show everyone the model's interface (features, outputs, link, classes) and two
coarse magnitudes, ``ceil(log2)`` of the largest feature and of the weights' L1 norm,
which size the fixed-point comparisons.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from modelpact.audit.entries import AccessEntry
from modelpact.audit.log import append_within
from modelpact.charter import Action, Charter
from modelpact.charter.model import JointMetric
from modelpact.errors import (
    InvalidInput,
    ModelpactError,
    NotFound,
    quote_untrusted,
)
from modelpact.policy import AccessRequest
from modelpact.runtime.linear import LinearForm, Link
from modelpact.services.charters import CharterDesk
from modelpact.services.clock import system_clock
from modelpact.services.decisions import Decider
from modelpact.services.joint_network import Network, Role, Task, run_party
from modelpact.services.joint_party import BOUND, ROLES, magnitude_bits
from modelpact.services.metering import Meter
from modelpact.services.serving import ModelServer
from modelpact.services.sessions import ActiveSession
from modelpact.services.workspace import Workspace

__all__ = [
    "MAX_ROWS",
    "Evaluation",
    "JointDesk",
    "Network",
    "OwnerReport",
    "PartnerRows",
    "Role",
    "Scores",
    "Task",
    "join_as_compute",
    "join_as_partner",
    "owner_hello",
    "owner_secrets",
    "parse_rows",
    "run_party",
]

#: Most rows one joint run takes (the charter's ``max_batch_rows`` may allow fewer).
MAX_ROWS = 100_000
_ACTIONS = {"score": Action.PREDICT_JOINT, "evaluate": Action.EVALUATE_JOINT}


# ---------------------------------------------------------------------------- the partner


@dataclass(frozen=True)
class PartnerRows:
    """The partner's feature rows and, to evaluate, each row's class as written."""

    rows: list[list[float]]
    labels: list[str] | None = None


def parse_rows(text: str, *, label_column: str | None = None) -> PartnerRows:
    """Rows from CSV text with a header line: every column but ``label_column`` is a
    feature, in order.  :class:`InvalidInput` (one line, naming the line) for anything
    else; cell values never appear in a message."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise InvalidInput("the rows file is empty; it needs a header line, then rows")
    if label_column is not None and label_column not in header:
        raise InvalidInput(f"the rows file has no column {quote_untrusted(label_column)}")
    at = header.index(label_column) if label_column is not None else None
    rows: list[list[float]] = []
    labels: list[str] = []
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(header):
            raise InvalidInput(f"line {line} has {len(cells)} cells; the header has {len(header)}")
        try:
            values = [float(c) for i, c in enumerate(cells) if i != at]
        except ValueError:
            raise InvalidInput(f"line {line} holds a cell that is not a number") from None
        if not all(math.isfinite(v) and abs(v) <= BOUND for v in values):
            raise InvalidInput(
                f"line {line} holds a value that is not finite or beyond ±2^20",
                hint="joint runs compute in fixed point; rescale the column",
            )
        rows.append(values)
        if at is not None:
            labels.append(cells[at].strip())
        if len(rows) > MAX_ROWS:
            raise InvalidInput(f"more than {MAX_ROWS} rows; split them into several runs")
    if not rows:
        raise InvalidInput("the rows file holds no rows")
    if not rows[0]:
        raise InvalidInput("the rows file holds no feature column")
    return PartnerRows(rows, labels if at is not None else None)


@dataclass(frozen=True)
class Scores:
    """What a joint scoring gives the partner: the model's scores on its rows, and how
    to turn them into outputs (the link and the classes)."""

    model: str
    version: str
    charter: str
    link: Link
    labels: tuple[str | int, ...] | None
    scores: list[list[float]]
    transcript: str  # the run's id, as the owner's audit entry names it

    def outputs(self) -> list[list[float]]:
        """The link applied: class probabilities, or the regressor's values."""
        if self.link is Link.IDENTITY:
            return [list(row) for row in self.scores]
        if self.link is Link.SIGMOID:
            return [[1.0 - _sigmoid(r[0]), _sigmoid(r[0])] for r in self.scores]
        out: list[list[float]] = []
        for row in self.scores:
            top = max(row)
            e = [math.exp(v - top) for v in row]
            out.append([v / sum(e) for v in e])
        return out


def _sigmoid(value: float) -> float:
    if value >= 0:
        return 1.0 / (1.0 + math.exp(-value))
    e = math.exp(value)
    return e / (1.0 + e)


@dataclass(frozen=True)
class Evaluation:
    """What a joint evaluation reveals to owner and partner: the agreed metrics."""

    model: str
    version: str
    charter: str
    rows: int
    metrics: dict[str, float]
    transcript: str


def join_as_partner(
    network: Network,
    *,
    charter: str,
    task: Task,
    rows: PartnerRows,
    metrics: Sequence[JointMetric] = (),
) -> Scores | Evaluation:
    """Take part as the partner: the rows are secret-shared, never sent."""
    network.check(Role.PARTNER, system_clock())
    if task is Task.EVALUATE:
        if rows.labels is None:
            raise InvalidInput("an evaluation needs the labels column (--labels)")
        if not metrics:
            raise InvalidInput("an evaluation needs at least one metric (--metrics)")
        if JointMetric.AUC in metrics and len(set(rows.labels)) < 2:
            raise InvalidInput("AUC needs rows of both classes; these labels hold one")
    hello = {
        "charter": charter,
        "rows": len(rows.rows),
        "features": len(rows.rows[0]),
        "row_bits": magnitude_bits([v for row in rows.rows for v in row]),
        "metrics": [m.value for m in metrics] if task is Task.EVALUATE else [],
    }
    secrets: dict[str, Any] = {"rows": rows.rows}
    if task is Task.EVALUATE:
        secrets["labels"] = rows.labels
    result = run_party(Role.PARTNER, task, network, hello=hello, secrets=secrets)
    owner = result["owner"]
    if task is Task.SCORE:
        labels = owner.get("labels")
        return Scores(
            model=str(owner["model"]),
            version=str(owner["version"]),
            charter=str(owner["charter"]),
            link=Link(owner["link"]),
            labels=tuple(labels) if labels else None,
            scores=result["scores"],
            transcript=result["transcript"],
        )
    return Evaluation(
        model=str(owner["model"]),
        version=str(owner["version"]),
        charter=str(owner["charter"]),
        rows=int(result["rows"]),
        metrics=dict(result["metrics"]),
        transcript=result["transcript"],
    )


def join_as_compute(network: Network, *, task: Task) -> int:
    """Take part as the compute party; returns the row count, all it learns."""
    network.check(Role.COMPUTE, system_clock())
    result = run_party(Role.COMPUTE, task, network, hello={}, secrets={})
    return int(result["rows"])


# ---------------------------------------------------------------------------- the owner


@dataclass(frozen=True)
class OwnerReport:
    """A joint run as the owner saw it, and its audit entry's log index."""

    partner: str
    charter: str
    model: str
    version: str
    rows: int
    metrics: dict[str, float]
    transcript: str
    audit_index: int


class _Refused(Exception):
    """A run the owner's side refuses, with the reason the other parties are told."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def owner_hello(
    form: LinearForm | None, *, charter: str, model: str, version: str
) -> dict[str, Any]:
    """What the owner's party tells the others (public): the model's interface and the
    coarse magnitude of its weights; ``form`` None: an owner that will refuse the run."""
    if form is None:
        return {"charter": charter, "model": model, "version": version, "features": 0,
                "outputs": 0, "link": "none", "labels": [], "weight_bits": 0}  # fmt: skip
    l1 = [
        sum(abs(float(w)) for w in row) + abs(float(b))
        for row, b in zip(form.weights, form.bias, strict=True)
    ]
    return {
        "charter": charter,
        "model": model,
        "version": version,
        "features": form.width,
        "outputs": int(form.weights.shape[0]),
        "link": form.link.value,
        "labels": list(form.labels) if form.labels is not None else [],
        "weight_bits": magnitude_bits(l1),
    }


def owner_secrets(form: LinearForm) -> dict[str, Any]:
    """The owner party's secret input: the affine part, for the child's stdin only."""
    return {"weights": form.weights.tolist(), "bias": form.bias.tolist()}


class JointDesk:
    """The owner's side of joint runs: charter, quota and audit around the owner's party."""

    def __init__(self, workspace: Workspace) -> None:
        self._ws = workspace

    def run(
        self,
        network: Network,
        *,
        charter: str,
        model: str,
        version: str | None,
        task: Task,
        purpose: str | None = None,
    ) -> OwnerReport:
        """Take part as the owner; :class:`Denied` (audited) for a run the charter does not
        allow, the partner does not go on with, or that fails once admitted."""
        network.check(Role.OWNER, system_clock())  # OpenSSL checks against the host's clock
        _, terms = CharterDesk(self._ws).get(charter)
        run = _OwnerRun(self._ws, terms, model, version, task, purpose)
        try:
            result = run_party(
                Role.OWNER,
                task,
                network,
                hello=run.hello(),
                secrets=run.secrets(),
                on_ask=run.answer,
            )
        except ModelpactError as error:
            if run.admitted and run.audit_index is None:  # failed after go: still one entry
                run.record(False, (f"the joint run failed: {error.summary}"[:500],))
            raise
        assert run.audit_index is not None
        return OwnerReport(
            partner=terms.partner.id,
            charter=charter,
            model=model,
            version=run.version,
            rows=run.rows,
            metrics=run.metrics,
            transcript=str(result["transcript"]),
            audit_index=run.audit_index,
        )


class _OwnerRun:
    """One run's state on the owner's side: the model's affine part, and the answers to the
    party process's two questions (admit, then release the metrics)."""

    def __init__(
        self,
        ws: Workspace,
        charter: Charter,
        model: str,
        version: str | None,
        task: Task,
        purpose: str | None,
    ) -> None:
        self._ws = ws
        self.charter = charter
        self.model = model
        self.version = version or "served"
        self.task = task
        self.purpose = purpose
        self.form: LinearForm | None = None
        self.problem: str | None = None  # why this owner cannot run it, told at admit
        self.admitted = False
        self.audit_index: int | None = None
        self.rows = 0
        self.metrics: dict[str, float] = {}
        self.transcript = "unknown"
        server = ModelServer(ws)
        try:
            self.version = server.resolve(model, version)
            self.form = server.linear(model, self.version)
            magnitudes = [abs(v) for v in self.form.weights.ravel()]
            magnitudes += [abs(v) for v in self.form.bias.ravel()]
            if not all(math.isfinite(v) and v <= BOUND for v in magnitudes):
                self.problem = f"{model} {self.version} has weights beyond the joint range ±2^20"
        except (NotFound, InvalidInput) as error:
            self.problem = error.summary

    def hello(self) -> dict[str, Any]:
        form = None if self.problem is not None else self.form
        return owner_hello(form, charter=self.charter.charter, model=self.model,
                           version=self.version)  # fmt: skip

    def secrets(self) -> dict[str, Any]:
        if self.form is None or self.problem is not None:
            return {}
        return owner_secrets(self.form)

    # -- the party process's questions ------------------------------------------------------

    def answer(self, question: dict[str, Any]) -> dict[str, Any]:
        try:
            if question.get("step") == "admit":
                self.admit(question)
            elif question.get("step") == "release":
                self.release(question.get("metrics") or {})
            else:
                raise _Refused("the party process asked an unknown question")
        except _Refused as refusal:
            if self.audit_index is None:
                self.record(False, (refusal.reason[:500],))
            return {"go": False, "reason": refusal.reason}
        except ModelpactError as error:  # the audit log or the database: fail closed
            return {"go": False, "reason": f"the owner cannot go on: {error.summary}"}
        return {"go": True}

    def admit(self, question: dict[str, Any]) -> None:
        self.transcript = str(question.get("transcript") or "unknown")
        hellos = question.get("hellos") or []
        partner = hellos[1] if len(hellos) == 3 else {}
        rows = partner.get("rows")
        self.rows = rows if isinstance(rows, int) and rows > 0 else 0
        if self.problem is not None:
            raise _Refused(self.problem)
        if question.get("problem"):
            raise _Refused(str(question["problem"]))
        for role, ready in zip(ROLES[1:], question.get("ready") or [], strict=False):
            if not ready.get("ready"):
                raise _Refused(f"the {role} does not go on: {ready.get('reason')}")
        assert self.form is not None
        if not 0 < self.rows <= MAX_ROWS:
            raise _Refused(f"a joint run takes 1 to {MAX_ROWS} rows")
        if partner.get("features") != self.form.width:
            raise _Refused(f"the rows have {partner.get('features')} features, not "
                           f"{self.form.width}")  # fmt: skip
        self._decide(self._metrics_asked(partner.get("metrics")))
        self.admitted = True
        if self.task is Task.SCORE:
            self.record(True, ("admitted by the charter", "scores revealed to the partner only"))

    def _metrics_asked(self, asked: Any) -> tuple[JointMetric, ...]:
        if self.task is Task.SCORE:
            return ()
        names = asked if isinstance(asked, list) else []
        try:
            metrics = tuple(JointMetric(str(m)) for m in names)
        except ValueError:
            raise _Refused("the partner asked for a metric that does not exist") from None
        if not metrics or len(set(metrics)) != len(metrics):
            raise _Refused("an evaluation asks for one or more distinct metrics")
        assert self.form is not None
        if self.form.link is Link.IDENTITY:
            raise _Refused("joint evaluation measures classifiers; this model is a regressor")
        classes = len(self.form.labels or ())
        if JointMetric.AUC in metrics and classes != 2:
            raise _Refused(f"auc applies to binary classifiers; this model has {classes} classes")
        return metrics

    def _decide(self, metrics: tuple[JointMetric, ...]) -> None:
        charter, ws = self.charter, self._ws
        purpose = self._purpose()
        request = AccessRequest(
            partner=charter.partner.id,
            charter=charter.charter,
            purpose=purpose,
            action=_ACTIONS[self.task.value],
            model=self.model,
            version=self.version,
            at=ws.clock(),
        )
        decision = Decider(ws).decide(request)
        if not decision.allowed:
            raise _Refused(
                f"the charter does not allow {request.action.value} on {self.model} "
                f"{self.version}: " + "; ".join(decision.reasons)
            )
        if charter.joint is None:
            raise _Refused(f"{charter.ref} names no joint compute party")
        refused = [m.value for m in metrics if m not in charter.joint.metrics]
        if refused:
            raise _Refused(f"{charter.ref} does not agree to reveal {', '.join(refused)}")
        if self.rows > charter.limits.max_batch_rows:
            raise _Refused(
                f"{self.rows} rows is more than the {charter.limits.max_batch_rows} "
                f"rows per request {charter.ref} allows"
            )
        # The quota counts rows per partner and charter; the meter takes them as a session's.
        run = ActiveSession(
            token_id=self.transcript,
            partner=charter.partner.id,
            charter=charter.charter,
            charter_version=charter.version,
            purpose=purpose,
            expires_at=ws.clock(),
        )
        try:
            Meter(ws).count(run, charter.limits, self.rows)
        except ModelpactError as error:
            raise _Refused(error.summary) from None

    def _purpose(self) -> str:
        purposes = self.charter.purposes
        if self.purpose is not None:
            return self.purpose
        if len(purposes) == 1:
            return purposes[0]
        raise _Refused(f"{self.charter.ref} names several purposes; the owner must pick one")

    def release(self, metrics: dict[str, Any]) -> None:
        if not self.admitted or self.task is not Task.EVALUATE:
            raise _Refused("metrics came before the run was admitted")
        self.metrics = {str(k): float(v) for k, v in metrics.items()}
        shown = tuple(f"revealed {k} = {v:.6f}" for k, v in sorted(self.metrics.items()))
        self.record(True, ("admitted by the charter", *shown))

    def record(self, allowed: bool, reasons: tuple[str, ...]) -> None:
        """The run's one audit entry (the transaction holds it durably, or raises)."""
        now = self._ws.clock()
        entry = AccessEntry(
            time=now,
            actor=self.charter.partner.id,
            subject=self.transcript,
            charter=self.charter.charter,
            purpose=self.purpose or self.charter.purposes[0],
            action=_ACTIONS[self.task.value].value,
            model=self.model,
            version=self.version,
            decision="allow" if allowed else "deny",
            reasons=reasons,
            rows=self.rows,
        )
        with self._ws.store.unit_of_work() as uow:
            (receipt,) = append_within(uow, [entry], now=now)
        self.audit_index = receipt.index
