"""Train the demo model and export it to ONNX.

A logistic regression on scikit-learn's bundled breast-cancer data, standardised
features, converted with skl2onnx (zipmap off) through modelpact's exporter.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelpact.runtime import export_sklearn


def train() -> tuple[object, float]:
    features, labels = load_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, labels, test_size=0.25, random_state=0, stratify=labels
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(x_train, y_train)
    return model, float(model.score(x_test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="where to write the ONNX file")
    args = parser.parse_args()
    model, accuracy = train()
    data = export_sklearn(model)
    args.out.write_bytes(data)
    print(f"held-out accuracy {accuracy:.3f}; wrote {args.out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
