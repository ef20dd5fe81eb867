#!/usr/bin/env python3
"""Run a command RUNS times; print the median wall time and the median CPU
time (user + system of the command and its children), in seconds.
Usage: timeit.py RUNS [--cwd DIR] [--fresh DIR] -- CMD ARGS...
--fresh DIR empties DIR before each run (untimed)."""
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

args = sys.argv[1:]
runs = int(args.pop(0))
cwd = None
fresh = None
while args and args[0] != "--":
    flag = args.pop(0)
    if flag == "--cwd":
        cwd = args.pop(0)
    elif flag == "--fresh":
        fresh = args.pop(0)
    else:
        sys.exit(f"unknown flag {flag}")
cmd = args[1:]
walls, cpus = [], []
for _ in range(runs):
    if fresh:
        shutil.rmtree(fresh, ignore_errors=True)
        os.makedirs(fresh)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        sys.stderr.write(res.stderr.decode(errors="replace"))
        sys.exit(f"command failed: {cmd}")
    walls.append(wall)
    cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
print(f"{statistics.median(walls):.3f} {statistics.median(cpus):.3f} " + ",".join(f"{w:.3f}" for w in walls))
