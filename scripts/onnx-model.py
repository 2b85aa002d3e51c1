#!/usr/bin/env python3
"""Makes the ONNX model of `examples/onnx_digits.flow` with a real exporter, and the
onnxruntime predictions flow's ONNX inference is tested against.

    python3 scripts/onnx-model.py

Trains scikit-learn's MLPClassifier on the training half of the digits data set
(runtime/tests/ml/data/digits-train.csv, written by scripts/ml-reference.py), exports it with
skl2onnx, and records onnxruntime's label and class probabilities for every row of
digits-test.csv. The model's metadata names the table columns it reads (`flow.inputs`).
Needs scikit-learn, skl2onnx and onnxruntime from PyPI. Outputs are committed.
"""

import csv
import pathlib

import numpy as np
import onnxruntime
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "runtime" / "tests" / "ml" / "data"


def read(name):
    with open(DATA / name) as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    x = np.array([[float(v) for v in r[:-1]] for r in rows], dtype=np.float32)
    y = np.array([int(r[-1]) for r in rows])
    return header[:-1], x, y


def main():
    columns, x_train, y_train = read("digits-train.csv")
    _, x_test, y_test = read("digits-test.csv")
    model = MLPClassifier(hidden_layer_sizes=(32,), max_iter=300, random_state=0)
    model.fit(x_train / 16.0, y_train)
    # The network was trained on pixels / 16; fold that into the first layer so the ONNX
    # model reads the raw pixel columns.
    model.coefs_[0] = model.coefs_[0] / 16.0
    onx = to_onnx(
        model,
        x_train[:1],
        options={id(model): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    entry = onx.metadata_props.add()
    entry.key = "flow.inputs"
    entry.value = ",".join(columns)
    out = ROOT / "examples" / "models" / "digits.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(onx.SerializeToString())

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    label, probabilities = session.run(None, {session.get_inputs()[0].name: x_test})
    with open(DATA / "digits-onnxruntime.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label"] + [f"p{c}" for c in range(probabilities.shape[1])])
        for l, p in zip(label, probabilities):
            w.writerow([int(l)] + [repr(float(v)) for v in p])
    print(f"wrote {out}; onnxruntime accuracy {np.mean(label == y_test):.4f}")


if __name__ == "__main__":
    main()
