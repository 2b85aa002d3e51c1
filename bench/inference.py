"""onnxruntime's side of bench/inference-fanout.sh: reviews per second for a transformer on
one thread, the sequences grouped by length and padded exactly as flow groups them (the same
buckets, BATCH per call), so both engines do the same arithmetic.

    python3 bench/inference.py MODEL TOKENIZER CSV ROWS LENGTH BATCH
"""

import csv
import statistics
import sys
import time

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

BUCKETS = [16, 32, 64, 128, 256, 384, 512]


def main(model, tokenizer, path, rows, length, batch):
    rows, length, batch = int(rows), int(length), int(batch)
    tok = Tokenizer.from_file(tokenizer)
    tok.no_padding()
    tok.enable_truncation(length)
    with open(path, encoding="utf-8", newline="") as f:
        texts = [r["review"] for r in csv.DictReader(f)][:rows]
    seqs = [e.ids for e in tok.encode_batch(texts)]
    by_bucket = {}
    for s in seqs:
        by_bucket.setdefault(next(b for b in BUCKETS if b >= len(s)), []).append(s)
    calls = []
    for bucket, members in sorted(by_bucket.items()):
        for at in range(0, len(members), batch):
            group = members[at : at + batch]
            n = min(1 << (len(group) - 1).bit_length(), batch)
            ids = np.zeros((n, bucket), dtype=np.int64)
            mask = np.zeros((n, bucket), dtype=np.int64)
            for r, s in enumerate(group):
                ids[r, : len(s)] = s
                mask[r, : len(s)] = 1
            calls.append((ids, mask))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    runs = []
    for _ in range(int(__import__("os").environ.get("RUNS", "5"))):
        start = time.perf_counter()
        for ids, mask in calls:
            session.run(None, {n: (mask if "mask" in n else ids) for n in names})
        runs.append(time.perf_counter() - start)
    print(f"{len(seqs) / statistics.median(runs):.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
