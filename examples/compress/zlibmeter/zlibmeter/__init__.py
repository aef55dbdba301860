"""Measures zlib throughput on one core: compress WORK_MB megabytes of text-like data.

herd's example of code that lives only in your local environment (an editable
install), so a sweep with `env = "auto"` can only run it if herd shipped it.
"""
import os
import random
import time
import zlib

__version__ = "0.1"


def chunk(seed, size=1 << 20):
    rng = random.Random(seed)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    out, n = [], 0
    while n < size:
        w = rng.choice(words)
        out.append(w)
        n += len(w) + 1
    return " ".join(out).encode()[:size]


def main():
    mb = int(os.environ.get("WORK_MB", "4"))
    data = [chunk(i % 4) for i in range(4)]
    start = time.perf_counter()
    for i in range(mb):
        zlib.compress(data[i % 4], 6)
    secs = time.perf_counter() - start
    print(f"zlibmeter {__version__}: {mb} MB in {secs:.3f} s")
    print(f"throughput: {mb / secs:.2f} MB/s")
