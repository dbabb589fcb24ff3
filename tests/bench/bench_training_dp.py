"""Time the exact down-set DP on the shared training layer graphs against the peer's optima.

Usage (from the repository root)::

    PIPECERT_SHARED=../shared python -m tests.bench.bench_training_dp [--repeat 5]

For bert24/resnet50/gnmt ``_training.json`` (dnn-partitioning LayerGraphs, read with
their co-location groups, data-only backward edges and memory cap, input work kept) and
k in {2, 4, 8, 16, 32, 64}, prints the DP's status and value, the peer's optimum
(Tarnawski et al.'s dp.cpp, maxCPUs = 0, maxFPGAs = k), whether they agree to 1e-6
relative, and the best-of-``repeat`` wall time of ``DownsetDP().run`` (numba kernels
compiled or loaded from the cache first; the per-instance reduction cache is cleared
before each timed run, so every run reduces, slices and solves from scratch).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from heuristics.downset_dp import DownsetDP
from instances.io import read_instance
from pipecert.memo import clear_all
from pipecert.results import Status

#: the peer's optima (None: infeasible, 38.8 GB > 2 x 17.2 GB)
PEER: dict[str, list[float | None]] = {
    "bert24": [109.917906, 58.545813, 33.378813, 16.792813, 9.536914, 9.536914],
    "resnet50": [None, 117.296070, 59.165625, 32.366406, 19.033777, 19.033777],
    "gnmt": [263.365695, 137.153902, 82.881621, 76.849414, 76.849414, 76.849414],
}
KS = (2, 4, 8, 16, 32, 64)


def main(argv: list[str] | None = None) -> int:
    """Print one line per (graph, k); exit status 1 if any value disagrees with the peer."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    shared = Path(os.environ.get("PIPECERT_SHARED",
                                 Path(__file__).resolve().parents[3] / "shared"))
    root = shared / "instances" / "dnn-partitioning" / "LayerGraphs"
    bad = 0
    print(f"{'graph':10s} {'k':>3s} {'status':10s} {'pipecert':>12s} {'peer':>12s} "
          f"{'agree':5s} {'time_ms':>8s} {'units':>5s} {'ideals':>6s}")
    for graph, want in PEER.items():
        inst = read_instance(str(root / f"{graph}_training.json"))
        DownsetDP().run(inst, 2)  # compile / load the numba cache
        for k, peer in zip(KS, want, strict=True):
            best = math.inf
            out = None
            for _ in range(max(1, args.repeat)):
                clear_all()  # every memo cold, as for a fresh graph
                t0 = time.perf_counter()
                out = DownsetDP().run(inst, k)
                best = min(best, time.perf_counter() - t0)
            assert out is not None
            if peer is None:
                ok = out.status is Status.INFEASIBLE
                val = "-"
            else:
                ok = (out.status is Status.OPTIMAL and out.incumbent is not None
                      and math.isclose(out.incumbent, peer, rel_tol=1e-6))
                val = f"{out.incumbent:.6f}" if out.incumbent is not None else "-"
            bad += not ok
            st = out.stats
            print(f"{graph:10s} {k:3d} {out.status.value:10s} {val:>12s} "
                  f"{'infeasible' if peer is None else f'{peer:.6f}':>12s} "
                  f"{'yes' if ok else 'NO':5s} {1e3 * best:8.2f} "
                  f"{st.get('n_units', '-')!s:>5s} {st.get('n_ideals', '-')!s:>6s}",
                  flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
