#!/usr/bin/env python3
"""Times shell commands in interleaved rounds — each round runs every command once, in
turn — so a stretch of load on this shared machine falls on all of them alike instead of on
whichever command hyperfine happened to be running. Prints, as JSON, each command's median
and fastest time (ms) and every round's times.

Usage: bench/interleaved.py RUNS WARMUP NAME=COMMAND ...
"""
import json
import statistics
import subprocess
import sys
import time

runs, warmup = int(sys.argv[1]), int(sys.argv[2])
commands = [arg.split("=", 1) for arg in sys.argv[3:]]


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1e3


for _ in range(warmup):
    for _, command in commands:
        timed(command)
rounds = [{name: timed(command) for name, command in commands} for _ in range(runs)]
print(
    json.dumps(
        {
            "rounds": rounds,
            "median_ms": {n: statistics.median(r[n] for r in rounds) for n, _ in commands},
            "fastest_ms": {n: min(r[n] for r in rounds) for n, _ in commands},
        }
    )
)
