"""Generates the small, deterministic data sets the examples read (stdlib only).

Run from this folder: python3 generate.py. The Parquet event files are then made from
events-*.csv by `flowc run examples/data/make_events.flow`.
"""
import csv
import datetime
import json
import random

rng = random.Random(42)
countries = ["de", "fr", "us", "jp", "br"]
first = ["Ada", "Ben", "Chloé", "Dmitri", "Eun", "Farah", "Gus", "Hana", "Ivo", "Jun"]

with open("customers.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["customer_id", "name", "country", "tenure", "churned"])
    for i in range(1, 201):
        tenure = rng.randint(1, 72)
        churned = 1 if rng.random() < (0.6 if tenure < 12 else 0.15) else 0
        w.writerow([i, f"{rng.choice(first)} {i}", rng.choice(countries), tenure, churned])

start = datetime.date(2024, 1, 1)
with open("orders.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["order_id", "customer_id", "amount", "kind", "day"])
    for i in range(1, 2001):
        kind = rng.choice(["purchase", "purchase", "purchase", "refund"])
        amount = round(rng.uniform(3, 250), 2)
        day = start + datetime.timedelta(days=rng.randint(0, 364))
        w.writerow([i, rng.randint(1, 220), amount, kind, day.isoformat()])

for part in range(2):
    with open(f"events-{part}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["customer_id", "kind", "amount", "ts"])
        for i in range(500):
            kind = rng.choice(["view", "view", "purchase", "cart"])
            amount = round(rng.uniform(1, 120), 2) if kind == "purchase" else 0.0
            w.writerow([rng.randint(1, 200), kind, amount, part * 500 + i])

with open("reviews.json", "w") as f:
    words = ["great", "slow", "love", "broken", "fast", "refund", "perfect", "late"]
    for i in range(1, 301):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(3, 8)))
        f.write(json.dumps({"review_id": i, "customer_id": rng.randint(1, 200), "stars": rng.randint(1, 5), "text": text}) + "\n")
