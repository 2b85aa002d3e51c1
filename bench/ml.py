#!/usr/bin/env python3
"""The scikit-learn and onnxruntime side of bench/ml.sh, and its data.

    ml.py data DIR                    # train.csv (200,000 × 20), digits.csv (100,000 rows),
                                      # digits-1m.csv (1,000,000 rows)
    ml.py sgd CSV EPOCHS              # SGDClassifier throughput, rows × epochs per second
    ml.py onnx MODEL CSV BATCH        # onnxruntime throughput, rows per second

Each throughput is the median of 5 runs on data already in memory.
"""

import csv
import statistics
import sys
import time

import numpy as np


def read(path):
    with open(path) as f:
        header = next(csv.reader(f))
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return header, data


def data(out):
    from sklearn.datasets import load_digits, make_classification

    x, y = make_classification(n_samples=200_000, n_features=20, n_informative=10, random_state=0)
    header = ",".join([f"x{i}" for i in range(20)] + ["label"])
    np.savetxt(f"{out}/train.csv", np.column_stack([x, y]), delimiter=",", header=header,
               comments="", fmt="%.6g")
    digits = load_digits()
    rng = np.random.default_rng(0)
    header = ",".join([f"f{i}" for i in range(64)] + ["label"])
    for name, rows in (("digits.csv", 100_000), ("digits-1m.csv", 1_000_000)):
        pick = rng.integers(0, len(digits.data), rows)
        pixels = np.clip(digits.data[pick] + rng.integers(-1, 2, (rows, 64)), 0, 16)
        np.savetxt(f"{out}/{name}", np.column_stack([pixels, digits.target[pick]]),
                   delimiter=",", header=header, comments="", fmt="%d")


def sgd(path, epochs):
    from sklearn.linear_model import SGDClassifier

    header, d = read(path)
    x, y = d[:, :-1], d[:, -1]
    runs = []
    for _ in range(5):
        model = SGDClassifier(loss="log_loss", max_iter=epochs, tol=None, shuffle=True,
                              random_state=0)
        start = time.perf_counter()
        model.fit(x, y)
        runs.append(time.perf_counter() - start)
    print(f"{len(y) * epochs / statistics.median(runs):.0f}")


def onnx(model, path, batch):
    import onnxruntime

    _, d = read(path)
    x = d[:, :-1].astype(np.float32)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for at in range(0, len(x), batch):
            session.run(None, {name: x[at:at + batch]})
        runs.append(time.perf_counter() - start)
    print(f"{len(x) / statistics.median(runs):.0f}")


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "data":
        data(args[0])
    elif command == "sgd":
        sgd(args[0], int(args[1]))
    elif command == "onnx":
        onnx(args[0], args[1], int(args[2]))
    else:
        sys.exit(f"unknown command {command}")
