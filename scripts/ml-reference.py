#!/usr/bin/env python3
"""Exports scikit-learn's bundled data sets to CSV for flow's ML quality tests, and computes
the reference figures the tests assert flow against (same train/test split, same data).

    python3 scripts/ml-reference.py        # writes runtime/tests/ml/data/

Needs scikit-learn (pip install scikit-learn). The output is committed; rerun only when the
data sets or the reference models change.
"""

import csv
import json
import pathlib

from sklearn import datasets
from sklearn.cluster import KMeans
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

OUT = pathlib.Path(__file__).resolve().parent.parent / "runtime" / "tests" / "ml" / "data"
SEED = 0


def write(name, x, y, label, label_values=None):
    """Writes name-train.csv and name-test.csv with columns f0..fN and the label."""
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=SEED, stratify=y if label_values is not None else None
    )
    for part, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
        with open(OUT / f"{name}-{part}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow([f"f{i}" for i in range(xs.shape[1])] + [label])
            for row, target in zip(xs, ys):
                value = label_values[target] if label_values is not None else target
                w.writerow([repr(float(v)) for v in row] + [value])
    return x_train, x_test, y_train, y_test


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    reference = {}

    for name, loader, labels in (
        ("breast_cancer", datasets.load_breast_cancer, None),
        ("iris", datasets.load_iris, ["setosa", "versicolor", "virginica"]),
        ("digits", datasets.load_digits, None),
    ):
        data = loader()
        values = labels if labels is not None else [int(v) for v in sorted(set(data.target))]
        x_train, x_test, y_train, y_test = write(name, data.data, data.target, "label", values)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        model.fit(x_train, y_train)
        reference[f"{name}_logistic_accuracy"] = accuracy_score(y_test, model.predict(x_test))

    data = datasets.load_diabetes()
    x_train, x_test, y_train, y_test = write("diabetes", data.data, data.target, "target")
    model = LinearRegression().fit(x_train, y_train)
    reference["diabetes_linear_r2"] = r2_score(y_test, model.predict(x_test))

    for name, k in (("iris", 3), ("digits", 10)):
        with open(OUT / f"{name}-train.csv") as f:
            rows = list(csv.reader(f))[1:]
        x = [[float(v) for v in row[:-1]] for row in rows]
        kmeans = KMeans(n_clusters=k, random_state=SEED, n_init="auto").fit(x)
        reference[f"{name}_kmeans_{k}_inertia"] = float(kmeans.inertia_)

    with open(OUT / "reference.json", "w") as f:
        json.dump(reference, f, indent=2, sort_keys=True)
        f.write("\n")
    print(json.dumps(reference, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
