#!/usr/bin/env python3
"""Medians of the load tool's summary lines, per preset and binary.

Reads the output of bench/run.sh (stdin or a file): a line
"== run BINARY preset=NAME" before each run, then the tool's
"summary key=value ..." line. Prints, per preset and binary, the median of
every numeric key and how many runs it is the median of.
"""
import statistics
import sys
from collections import defaultdict

runs = defaultdict(lambda: defaultdict(list))  # (preset, binary) -> key -> values
binary = "?"
for line in (open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin):
    if line.startswith("== run "):
        binary = line.split()[2]
    elif line.startswith("summary"):
        fields = dict(f.split("=", 1) for f in line.split()[1:])
        key = (fields.pop("preset"), binary)
        for k, v in fields.items():
            runs[key][k].append(v)
for (preset, binary), values in sorted(runs.items()):
    n = len(next(iter(values.values())))
    print(f"median of {n} {preset} {binary}:", end="")
    for k, vs in values.items():
        try:
            print(f" {k}={statistics.median(float(v) for v in vs):g}", end="")
        except ValueError:
            print(f" {k}={','.join(vs)}", end="")
    print()
