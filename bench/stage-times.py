#!/usr/bin/env python3
"""Where a distributed run's time goes: runs `flowc run PROGRAM --workers N --report` RUNS
times and prints the median and fastest of each phase (when the first task starts, each
stage, the gaps between stages, the tail after the last one, and the whole run as seen from
outside). Usage: bench/stage-times.py PROGRAM WORKERS [RUNS]  (build flowc --release first)."""
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

program, workers = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 15
flowc = Path(__file__).resolve().parent.parent / "target/release/flowc"
report = Path(tempfile.mkdtemp()) / "report.json"
phases = {}
for _ in range(runs):
    started = time.perf_counter()
    subprocess.run(
        [flowc, "run", program, "--workers", workers, "--report", report],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    seen = {"wall": (time.perf_counter() - started) * 1e3}
    record = json.loads(report.read_text())
    stages = sorted(record["stages"], key=lambda s: (s["job"], s["stage"]))
    seen["first task starts"] = stages[0]["start_s"] * 1e3
    for before, stage in zip([None] + stages, stages):
        name = f"job {stage['job']} stage {stage['stage']}"
        if before is not None:
            seen[f"gap before {name}"] = (stage["start_s"] - before["end_s"]) * 1e3
        seen[name] = stage["measured_s"] * 1e3
    seen["after the last stage"] = (record["measured_s"] - stages[-1]["end_s"]) * 1e3
    for name, ms in seen.items():
        phases.setdefault(name, []).append(ms)
print(f"{program} on {workers} worker(s), {runs} runs (ms)")
for name, values in phases.items():
    print(f"  {name:28} median {statistics.median(values):7.1f}   fastest {min(values):7.1f}")
