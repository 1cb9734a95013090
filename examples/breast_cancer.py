"""Train a demo model and export it to ONNX; optionally write the held-out rows for partners.

scikit-learn's bundled breast-cancer data, standardised features, either a
logistic regression or a small MLP, converted with skl2onnx (zipmap off)
through modelpact's exporter.  ``--holdout FILE`` writes the held-out quarter
as CSV (30 feature columns, then the true label) — what the partner scores in
the demo; ``--reference FILE`` the training rows (for the extraction monitor's
summary of the training distribution).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.runtime import export_sklearn


def split() -> tuple[Any, Any, Any, Any]:
    features, labels = load_breast_cancer(return_X_y=True)
    return train_test_split(features, labels, test_size=0.25, random_state=0, stratify=labels)


def train(kind: str) -> tuple[object, float]:
    x_train, x_test, y_train, y_test = split()
    estimator = (
        LogisticRegression(max_iter=1000)
        if kind == "logreg"
        else MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=2000, random_state=0)
    )
    model = make_pipeline(StandardScaler(), estimator)
    model.fit(x_train, y_train)
    return model, float(model.score(x_test, y_test))


def write_holdout(path: Path) -> int:
    _, x_test, _, y_test = split()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(x_test.shape[1])] + ["label"])
        for row, label in zip(x_test.tolist(), y_test.tolist(), strict=True):
            writer.writerow([repr(v) for v in row] + [label])
    return len(y_test)


def write_reference(path: Path) -> int:
    x_train, _, _, _ = split()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"f{i}" for i in range(x_train.shape[1])])
        writer.writerows([repr(v) for v in row] for row in x_train.tolist())
    return len(x_train)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the ONNX file")
    parser.add_argument("--kind", choices=["logreg", "mlp"], default="logreg")
    parser.add_argument("--holdout", type=Path, help="also write the held-out rows as CSV")
    parser.add_argument("--reference", type=Path, help="also write the training rows as CSV")
    args = parser.parse_args()
    model, accuracy = train(args.kind)
    data = export_sklearn(model)
    args.out.write_bytes(data)
    print(f"{args.kind}: held-out accuracy {accuracy:.3f}; wrote {args.out} ({len(data)} bytes)")
    if args.holdout:
        print(f"wrote {write_holdout(args.holdout)} held-out rows to {args.holdout}")
    if args.reference:
        print(f"wrote {write_reference(args.reference)} training rows to {args.reference}")


if __name__ == "__main__":
    main()
