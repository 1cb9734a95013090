"""Train the demo's digits classifier (an MLP, 10 classes) and export it to ONNX.

scikit-learn's bundled 8x8 digits.  ``--reference FILE`` writes the training rows (for
the extraction monitor's summary); ``--holdout FILE`` the other half as CSV (64 pixel
columns, then the true label): natural rows the model never saw, for the red team.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.runtime import export_sklearn


def split() -> tuple[Any, Any, Any, Any]:
    features, labels = load_digits(return_X_y=True)
    return train_test_split(features, labels, test_size=0.5, random_state=0, stratify=labels)


def write(path: Path, rows: Any, labels: Any | None) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        extra = ["label"] if labels is not None else []
        writer.writerow([f"p{i}" for i in range(rows.shape[1])] + extra)
        for i, row in enumerate(rows.tolist()):
            writer.writerow([repr(v) for v in row] + ([labels[i]] if labels is not None else []))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the ONNX file")
    parser.add_argument("--reference", type=Path, help="also write the training rows as CSV")
    parser.add_argument("--holdout", type=Path, help="also write the held-out rows as CSV")
    args = parser.parse_args()
    x_train, x_test, y_train, y_test = split()
    model = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(64,), max_iter=1000, random_state=0)
    ).fit(x_train, y_train)
    data = export_sklearn(model)
    args.out.write_bytes(data)
    accuracy = model.score(x_test, y_test)
    print(f"digits mlp: held-out accuracy {accuracy:.3f}; wrote {args.out} ({len(data)} bytes)")
    if args.reference:
        write(args.reference, x_train, None)
    if args.holdout:
        write(args.holdout, x_test, y_test.tolist())


if __name__ == "__main__":
    main()
