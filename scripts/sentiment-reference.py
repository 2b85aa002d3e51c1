"""The reference flow's transformer inference is checked against: onnxruntime's logits for
reviews tokenized by Python's `tokenizers`, each sequence run alone at its own length.

    python3 scripts/sentiment-reference.py MODEL TOKENIZER CSV --length 256 [--rows N]

prints one JSON object per review: its `id`, the `logits` and the `prediction` (arg-max);
then, on stderr, the accuracy against the CSV's `label`. Needs onnxruntime, tokenizers and
numpy (scripts/test installs them from PyPI).
"""

import argparse
import csv
import json
import sys

import numpy as np
import onnxruntime
from tokenizers import Tokenizer


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("tokenizer")
    parser.add_argument("csv")
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    tok = Tokenizer.from_file(args.tokenizer)
    tok.no_padding()
    tok.enable_truncation(args.length)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    with open(args.csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))[: args.rows]
    right = 0
    for row in rows:
        ids = np.array([tok.encode(row["review"]).ids], dtype=np.int64)
        feeds = {}
        for name in names:
            if "mask" in name:
                feeds[name] = np.ones_like(ids)
            elif "type" in name:
                feeds[name] = np.zeros_like(ids)
            else:
                feeds[name] = ids
        logits = session.run(None, feeds)[0][0]
        prediction = int(np.argmax(logits))
        right += prediction == int(row["label"])
        print(json.dumps({"id": int(row["id"]), "logits": [float(x) for x in logits], "prediction": prediction}))
    print(f"accuracy {right / max(len(rows), 1):.4f} on {len(rows)} reviews", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
