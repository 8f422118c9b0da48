"""Wall time and peak memory of learning item-item neighbour tables on synthetic interactions.

Each case runs in a fresh child process (its peak RSS is its own): N interactions from N / 50
users, item popularity falling as 1 / (rank + 10), with EASE (items = 5 sqrt(N) within
[1000, 20000], the scale benchmark's catalog) and co-occurrence (a 200,000-item catalog, far
above the EASE limit). Prints one table row per case.

    python -m benchmarks.item_neighbours --sizes 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

COOCCURRENCE_ITEMS = 200_000


def _interactions(n: int, num_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, max(1, n // 50), n)
    weights = 1.0 / (np.arange(num_items) + 10.0)
    items = rng.choice(num_items, size=n, p=weights / weights.sum())
    return users, items


def run_case(method: str, n: int, k: int) -> Dict[str, float]:
    """Learns one table in this process; returns its size, wall time and peak RSS."""
    from trainer import item_neighbours

    num_items = min(20_000, max(1_000, int(5 * math.sqrt(n)))) if method == "ease" else COOCCURRENCE_ITEMS
    users, items = _interactions(n, num_items)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    start = time.perf_counter()
    if method == "ease":
        item_neighbours.ease_neighbours(users, items, num_items, l2=500.0, k=k)
    else:
        item_neighbours.cooccurrence_neighbours(users, items, num_items, shrinkage=10.0, k=k)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB -> GB (Linux)
    return {"method": method, "interactions": n, "items": num_items, "k": k, "wall_s": wall,
            "peak_gb": peak, "input_gb": base}


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--methods", nargs="+", default=["ease", "cooccurrence"], choices=["ease", "cooccurrence"])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--case", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case[0], int(args.case[1]), args.k)))
        return 0
    print(f"{'method':>13} {'interactions':>13} {'items':>8} {'k':>4} {'wall s':>8} {'peak GB':>8} {'data GB':>8}")
    for n in args.sizes:
        for method in args.methods:
            out = subprocess.run([sys.executable, "-m", "benchmarks.item_neighbours", "--case", method, str(n),
                                  "--k", str(args.k)], check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['method']:>13} {r['interactions']:>13,} {r['items']:>8,} {r['k']:>4} {r['wall_s']:>8.1f} "
                  f"{r['peak_gb']:>8.2f} {r['input_gb']:>8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
