"""Do watermarks attribute stolen copies, and only them?  Measured on the demo's two models.

    python -m bench.watermarks [--trials 20] [--partners 100] [--independent 10] [--tilt 0.85]

For each trial a fresh set of ``--partners`` partner keys is drawn.  One partner (the
thief) sends 5,000 queries — its natural rows with a little noise, as a knockoff attacker
with a small pool would — and gets watermarked *labels* (the strictest output policy); it
trains a surrogate on them (a logistic regression and an MLP).  Every other partner sends
5,000 queries of its own, so each has its own set of marked queries.  Each surrogate is
then tested against every partner's watermark (:mod:`modelpact.marks.attribution`): the
thief must be named (p < 1e-6) and nobody else.  Independently trained models (on the
true labels of the training rows, several model types) are tested against every partner
too: each model-key pair is a chance for a false accusation.  The accuracy cost is the
drop in accuracy of the watermarked answers on the held-out rows' true labels.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.crypto import PrfKey
from modelpact.marks import TILT, Watermark, chance_rate, flip_test, tilt_evidence
from modelpact.monitor import TrainingSummary

THRESHOLD = 1e-6
QUERIES = 5000


def surrogates(seed: int) -> dict[str, Any]:
    return {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
        "mlp": make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=800, random_state=seed),
        ),
    }


def independents(seed: int) -> list[Any]:
    return (
        [
            make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
            for c in (0.01, 0.1, 1.0, 10.0)
        ]
        + [
            make_pipeline(
                StandardScaler(),
                MLPClassifier(hidden_layer_sizes=(h,), max_iter=800, random_state=s),
            )
            for h, s in ((16, seed), (64, seed + 1), (128, seed + 2))
        ]
        + [RandomForestClassifier(n_estimators=n, random_state=seed + n) for n in (20, 50, 100)]
    )


def queries(pool: Any, std: Any, rng: np.random.Generator) -> Any:
    picked = pool[rng.integers(0, len(pool), QUERIES)]
    return picked + rng.normal(0.0, 0.3, picked.shape) * std


def run(name: str, args: argparse.Namespace) -> None:
    load = load_breast_cancer if name == "breast-cancer" else load_digits
    x, y = load(return_X_y=True)
    train, held, ty, hy = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    model = (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        if name == "breast-cancer"
        else make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=1000, random_state=0)
        )
    ).fit(train, ty)
    classes = len(np.unique(y))
    summary = TrainingSummary.fit(train)
    tilt = args.tilt if classes == 2 else 0.0
    scope = f"{name}@1"
    std = train.std(axis=0)
    probe_rng = np.random.default_rng(12345)
    probes = train[probe_rng.integers(0, len(train), 2000)]
    probes = probes + probe_rng.normal(0.0, 0.3, probes.shape) * std
    original_scores = model.predict_proba(probes)
    named = {"logistic": 0, "mlp": 0}
    false_names = 0
    trials_against = 0
    costs: list[float] = []
    worst_other = 1.0
    started = time.monotonic()
    base_accuracy = float(np.mean(model.predict(held) == hy))
    for trial in range(args.trials):
        rng = np.random.default_rng(trial)
        keys = [PrfKey.generate() for _ in range(args.partners)]
        marks = [
            Watermark(k, scope, classes=classes, tilt=tilt, summary=summary if tilt else None)
            for k in keys
        ]
        # The accuracy cost of the thief's marks, on the held-out rows.
        scores, _ = marks[0].apply(held, model.predict_proba(held))
        costs.append(base_accuracy - float(np.mean(model.classes_[scores.argmax(1)] == hy)))
        # Every partner's traffic, and the marked queries it leaves behind.
        marked_sets = []
        thief_rows = thief_labels = None
        for index, mark in enumerate(marks):
            rows = queries(held, std, rng)
            answered, selected = mark.apply(rows, model.predict_proba(rows))
            labels = model.classes_[answered.argmax(1)]
            marked_sets.append((rows[selected], labels[selected]))
            if index == 0:
                thief_rows, thief_labels = rows, labels
        suspects: list[tuple[str, Any]] = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for kind, surrogate in surrogates(trial).items():
                suspects.append((kind, surrogate.fit(thief_rows, thief_labels)))
            if trial < args.independent:
                # Independent models: trained on the true labels, never on anyone's answers.
                for model_index, other in enumerate(independents(trial)):
                    suspects.append((f"independent-{model_index}", other.fit(train, ty)))
        # What each partner was shown on the probe rows before any swap (its tilt included):
        # a model that never saw its answers disagrees with those about as often as anywhere.
        shown = [model.classes_[mark.shown(probes, original_scores).argmax(1)] for mark in marks]
        for kind, suspect in suspects:
            said = suspect.predict(probes)
            suspect_scores = suspect.predict_proba(probes)
            for index, mark in enumerate(marks):
                rows, swapped = marked_sets[index]
                chance = chance_rate(said, shown[index])
                tests = [flip_test(str(index), suspect.predict(rows), swapped, chance)]
                tilted = tilt_evidence(str(index), mark, probes, suspect_scores, original_scores)
                if tilted is not None:
                    tests.append(tilted)
                p = min(t.p_value for t in tests) * len(tests)  # Bonferroni over the tests
                thief = index == 0 and not kind.startswith("independent")
                if thief:
                    named[kind] += p < THRESHOLD
                else:
                    trials_against += 1
                    false_names += p < THRESHOLD
                    worst_other = min(worst_other, p)
    elapsed = time.monotonic() - started
    print(
        f"| {name} | {tilt:g} | {args.trials} | {named['logistic']}/{args.trials} | "
        f"{named['mlp']}/{args.trials} | {false_names} of {trials_against:,} "
        f"(smallest p {worst_other:.2g}) | {100 * float(np.mean(costs)):.2f} pp "
        f"(max {100 * float(np.max(costs)):.2f}) | {elapsed:.0f} s |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.watermarks", description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--partners", type=int, default=100)
    parser.add_argument(
        "--independent", type=int, default=1, help="trials with 10 independent models"
    )
    parser.add_argument(
        "--tilt", type=float, default=TILT, help="binary models (default: what is served)"
    )
    parser.add_argument("--models", nargs="+", default=["breast-cancer", "digits"])
    args = parser.parse_args()
    print(
        "| model | tilt | trials | logistic copy named | MLP copy named | false accusations "
        "(model-key pairs) | accuracy cost | time |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        run(name, args)
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.system()} {platform.release()}"
    )


if __name__ == "__main__":
    main()
