"""The extraction defence's measured goal: attacks flagged in time, benign traffic left alone.

    python -m bench.extraction [--partners 200] [--days 30] [--out docs/redteam]

1. **Attacks** — ``modelpact redteam``'s drill (:func:`modelpact.drill.redteam.run_redteam`)
   against the demo's two models, registered through the normal path with their training
   rows as reference: the breast-cancer logistic regression (every attack, 600 queries) and
   the digits MLP (adaptive and knockoff, 2,000 queries; equation solving needs a binary
   model).  Each runs through a real gateway over TLS with a partner's credentials, for each
   output policy the grant could use.  Reported per attack and policy: the query at which the
   surrogate first reached 95% fidelity, and the query at which the default ladder (throttle,
   harden, suspend) took its first step.
2. **Benign replay** — ``--partners`` simulated partners over ``--days`` days each send
   held-out rows (never the training rows) in random order: each partner has its own
   typical daily volume (log-normal around 100 rows), weekends are quieter, days vary as
   Poisson counts, batches hold 1-16 rows.  Every batch goes through the same detectors and
   ladder the gateway runs (:class:`~modelpact.monitor.Watch`, with the training summary the
   registry keeps).  Reported: the share of partner-days with any alarm, and with a step.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.charter import ExtractionMonitor
from modelpact.crypto import SigningKey
from modelpact.drill.redteam import run_redteam
from modelpact.monitor import Ladder, Watch, margins
from modelpact.runtime import export_sklearn
from modelpact.services import CharterDesk, ModelRegistry, PartnerDirectory, init_workspace

REPO = Path(__file__).resolve().parents[1]
CHARTER = "northwind-acme-screening"


def datasets() -> dict[str, tuple[Any, Any, Any, Any]]:
    """Per model: the estimator fitted on the training split, the training and held-out rows,
    and the held-out rows' true labels."""
    x, y = load_breast_cancer(return_X_y=True)
    xa, xb, ya, yb = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    cancer = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(xa, ya)
    x, y = load_digits(return_X_y=True)
    da, db, dya, dyb = train_test_split(x, y, test_size=0.5, random_state=0, stratify=y)
    digits = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=1000, random_state=0)
    ).fit(da, dya)
    return {"cancer-screen": (cancer, xa, xb, yb), "digits": (digits, da, db, dyb)}


def workspace(root: Path, models: dict[str, Any]) -> tuple[Any, SigningKey]:
    ws = init_workspace(root / "owner", name="northwind")
    registry = ModelRegistry(ws)
    for name, (estimator, train, _held, _labels) in models.items():
        registry.add(name, export_sklearn(estimator), version="1.0.0", source=name, reference=train)
    registry.add(
        "cancer-screen-mlp",
        export_sklearn(models["cancer-screen"][0]),
        version="1.0.0",
        source="mlp",
    )
    key = SigningKey.generate()
    PartnerDirectory(ws).enrol("acme", key.verify_key.encode())
    now = ws.clock()
    text = (
        (REPO / "examples" / "charter.yaml")
        .read_text()
        .replace("@OWNER_KEY@", ws.owner_verify_key.encode())
        .replace("@PARTNER_KEY@", key.verify_key.encode())
        .replace("@FROM@", (now - timedelta(days=1)).isoformat())
        .replace("@UNTIL@", (now + timedelta(days=30)).isoformat())
    )
    desk = CharterDesk(ws)
    signed = desk.sign(text, source="charter.yaml").countersign(key)
    desk.apply(signed.to_json(), source="charter.json")
    return ws, key


def attacks(ws: Any, models: dict[str, Any], out: Path) -> None:
    plan = {
        "cancer-screen": (("equation-solving", "adaptive", "knockoff"), 600),
        "digits": (("adaptive", "knockoff"), 2000),
    }
    for name, (chosen, budget) in plan.items():
        estimator, _, held, truth = models[name]
        started = time.monotonic()
        report = run_redteam(
            ws, charter=CHARTER, model=name, data=held, attacks=chosen, budget=budget
        )
        elapsed = time.monotonic() - started
        target = out / name
        target.mkdir(parents=True, exist_ok=True)
        (target / "report.md").write_text(report.markdown())
        (target / "report.json").write_text(report.to_json())
        report.plot(target / "fidelity.png")
        print(f"\n## {name}: {', '.join(chosen)}, {budget} queries each ({elapsed:.0f} s)\n")
        print(f"zero-query baseline: {baseline(estimator, held, truth):.3f}\n")
        print("| attack | output | 95% fidelity at | first step at | in time |")
        print("|---|---|---|---|---|")
        for curve in report.curves:
            reached, first = curve.queries_to(0.95), curve.first()
            verdict = {True: "yes", False: "NO", None: "never reached 95%"}[curve.flagged_in_time]
            note = f" ({curve.failure})" if curve.failure else ""
            final = curve.points[-1][1] if curve.points else float("nan")
            print(
                f"| {curve.attack} | {curve.policy} | {reached or '-'} (final {final:.3f}) | "
                f"{first or '-'} | {verdict}{note} |"
            )


def baseline(estimator: Any, held: Any, truth: Any, seed: int = 0) -> float:
    """Fidelity of a copy made with no queries at all: the same kind of surrogate the
    attacks fit, trained on the attacker's half of the rows with their *true* labels."""
    order = np.random.default_rng(seed).permutation(len(held))  # as split_data splits
    half = len(held) // 2
    mine, theirs = order[:half], order[half:]
    kind = (
        LogisticRegression(max_iter=2000)
        if len(np.unique(truth)) == 2
        else MLPClassifier(hidden_layer_sizes=(64,), max_iter=500, random_state=seed)
    )
    copy = make_pipeline(StandardScaler(), kind).fit(held[mine], truth[mine])
    return float(np.mean(copy.predict(held[theirs]) == estimator.predict(held[theirs])))


def benign(ws: Any, models: dict[str, Any], partners: int, days: int, seed: int) -> None:
    ladder = Ladder.of(ExtractionMonitor())
    registry = ModelRegistry(ws)
    print(f"\n## benign replay: {partners} partners x {days} days per model\n")
    print("| model | rows sent | partner-days | with an alarm | with a step | detectors |")
    print("|---|---|---|---|---|---|")
    for name, (estimator, _train, held, _labels) in models.items():
        summary = registry.training_summary(name, "1.0.0")
        assert summary is not None
        rng = np.random.default_rng(seed)
        alarm_days = step_days = sent = 0
        fired: dict[str, int] = {}
        started = time.monotonic()
        for _ in range(partners):
            watch = Watch(summary, summary.width)
            typical = rng.lognormal(np.log(100), 0.7)
            for day_index in range(days):
                day = date(2026, 1, 5) + timedelta(days=day_index)
                volume = rng.poisson(typical * (0.3 if day.weekday() >= 5 else 1.0))
                alarmed = stepped = False
                left = volume
                while left > 0:
                    size = min(left, int(rng.integers(1, 17)))
                    left -= size
                    rows = held[rng.integers(0, len(held), size)]
                    scores = estimator.predict_proba(rows)
                    labels = estimator.classes_[scores.argmax(axis=1)].tolist()
                    alarms = watch.observe(rows, labels, day, margins(scores).tolist())
                    sent += size
                    if alarms:
                        alarmed = True
                        for alarm in alarms:
                            fired[alarm.detector] = fired.get(alarm.detector, 0) + 1
                    step = ladder.next_step(watch.step, watch.since_step, bool(alarms))
                    if step is not None:
                        watch.stepped(step)
                        stepped = True
                alarm_days += alarmed
                step_days += stepped
        total = partners * days
        detectors = ", ".join(f"{k} {v}" for k, v in sorted(fired.items())) or "none"
        print(
            f"| {name} | {sent:,} | {total:,} | {alarm_days} ({alarm_days / total:.2%}) | "
            f"{step_days} ({step_days / total:.2%}) | {detectors} "
            f"({time.monotonic() - started:.0f} s) |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extraction", description=__doc__)
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "redteam")
    parser.add_argument("--skip-attacks", action="store_true")
    args = parser.parse_args()
    models = datasets()
    with tempfile.TemporaryDirectory(prefix="bench-extraction-") as tmp:
        ws, _ = workspace(Path(tmp), models)
        with ws:
            if not args.skip_attacks:
                attacks(ws, models, args.out)
            benign(ws, models, args.partners, args.days, args.seed)
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


if __name__ == "__main__":
    main()
