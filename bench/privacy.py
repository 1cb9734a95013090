"""What noised_scores costs in utility, against epsilon: the demo's two models.

    python -m bench.privacy [--out docs/privacy-utility.png]

Each held-out row's class scores go through the gateway's mechanism
(:func:`modelpact.runtime.privacy.noised`: OpenDP's Laplace, scale 2/epsilon, clipped and
renormalised), 20 times each.  Reported per epsilon: how often the noised answer's top class
is still the model's (label agreement), the accuracy of the noised top class on the true
labels, and the mean absolute error of the scores.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.runtime.privacy import noised

EPSILONS = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
REPEATS = 20


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.privacy", description=__doc__)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parents[1] / "docs" / "privacy-utility.png",
    )
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, float, float]]] = {}
    for name, load, estimator in (
        ("breast cancer (LR)", load_breast_cancer, LogisticRegression(max_iter=3000)),
        ("digits (MLP)", load_digits, MLPClassifier((64,), max_iter=1000, random_state=0)),
    ):
        x, y = load(return_X_y=True)
        train, held, ty, hy = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
        model = make_pipeline(StandardScaler(), estimator).fit(train, ty)
        scores = model.predict_proba(held)
        own = scores.argmax(axis=1)
        rows = []
        print(
            f"\n{name}: {len(held)} held-out rows x {REPEATS}; model accuracy "
            f"{np.mean(model.classes_[own] == hy):.3f}"
        )
        print("| epsilon | label agreement | accuracy | mean abs score error |")
        print("|---|---|---|---|")
        for epsilon in EPSILONS:
            repeated = np.repeat(scores, REPEATS, axis=0)
            out = noised(repeated, epsilon)
            top = out.argmax(axis=1)
            agree = float(np.mean(top == np.repeat(own, REPEATS)))
            accuracy = float(np.mean(model.classes_[top] == np.repeat(hy, REPEATS)))
            error = float(np.mean(np.abs(out - repeated)))
            rows.append((epsilon, agree, accuracy, error))
            print(f"| {epsilon:g} | {agree:.3f} | {accuracy:.3f} | {error:.3f} |")
        results[name] = rows
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in results.items():
        eps = [r[0] for r in rows]
        axes[0].plot(eps, [r[1] for r in rows], marker="o", label=name)
        axes[1].plot(eps, [r[3] for r in rows], marker="o", label=name)
    for ax, title in zip(
        axes, ("top class = the model's", "mean |noised - true| score"), strict=True
    ):
        ax.set_xscale("log")
        ax.set_xlabel("epsilon per answered row")
        ax.set_title(title)
        ax.legend(fontsize=8)
    figure.suptitle("noised_scores: utility against epsilon (OpenDP Laplace, sensitivity 2)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(f"\nwrote {args.out}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )


if __name__ == "__main__":
    main()
