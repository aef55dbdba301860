#!/usr/bin/env python3
"""A CPU-bound workload for herd's example sweep: zlib-compress a fixed amount of
text-like data on every core this instance may use, and report the throughput.

The amount of work is fixed (WORK_MB megabytes compressed in total, default 24), so a
bigger instance finishes sooner only because it really gets more CPU: more cores
(`os.sched_getaffinity`, which herd's simulator sets to the type's vCPUs) and a larger
CPU quota. Nothing is scaled. Uses only the Python standard library.

Prints progress, then `throughput: <MB/s> MB/s` and a JSON line with the same numbers.
"""
import json
import os
import random
import time
import zlib
from multiprocessing import Pool

CHUNK = 1 << 20  # 1 MiB per task


def make_chunk(seed):
    """Deterministic, text-like (compressible but not trivially) data."""
    rng = random.Random(seed)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(2000)
    ]
    out = []
    size = 0
    while size < CHUNK:
        w = rng.choice(words)
        out.append(w)
        size += len(w) + 1
    return " ".join(out).encode()[:CHUNK]


def compress(task):
    data = make_chunk(task % 8)
    return len(zlib.compress(data, 6))


def main():
    work_mb = int(os.environ.get("WORK_MB", "24"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    print(f"compressing {work_mb} MiB on {cores} core(s)", flush=True)
    t0 = time.perf_counter()
    with Pool(cores) as pool:
        sizes = pool.map(compress, range(work_mb), chunksize=1)
    dt = time.perf_counter() - t0
    mbps = work_mb / dt
    ratio = work_mb * CHUNK / max(1, sum(sizes))
    print(f"compressed {work_mb} MiB in {dt:.2f} s (ratio {ratio:.2f})")
    print(f"throughput: {mbps:.3f} MB/s")
    print(json.dumps({"mb_per_s": round(mbps, 4), "seconds": round(dt, 4), "cores": cores}))


if __name__ == "__main__":
    main()
