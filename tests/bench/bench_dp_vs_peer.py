"""Time the exact down-set DP against the peer's exact DP on every shared layer graph.

Usage (from the repository root)::

    PIPECERT_SHARED=../shared python -m tests.bench.bench_dp_vs_peer [--repeat 3] \\
        [--peer /tmp/peer/dp] [--peer-time-limit 300] [--graphs gnmt_inference,...]

For the 8 dnn-partitioning LayerGraphs (bert24, resnet50, inceptionv3, gnmt; ``_inference``
and ``_training``, read as the files are given: groups, data-only edges, memory cap, input
work kept) and k in {2, 4, 8, 16, 32, 64}, prints the DP's status and value and the
best-of-``repeat`` wall time of ``DownsetDP().run`` (numba kernels compiled or loaded from
the cache first; every memo cleared before each timed run, so each run reduces, enumerates
and solves from scratch).

``--peer`` names a compiled binary of Tarnawski et al.'s ``throughput-dp/dp.cpp``
(msr-fiddle/dnn-partitioning; built outside the repository, e.g. ``g++ -O3``). It reads the
instance on stdin; each run gets the file with ``maxCPUs = 0`` and ``maxFPGAs = k`` (the
settings of the paper's comparison) and must print its objective as the last line of
stdout. Its wall time (one run, process start to exit, JSON parsing included) and whether
the values agree to 1e-6 relative are printed too. Without ``--peer`` the peer columns
are ``-``. The exit status is 1 if a value disagrees.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from heuristics.downset_dp import DownsetDP
from instances.io import read_instance
from pipecert.memo import clear_all

GRAPHS = tuple(f"{g}_{m}" for g in ("bert24", "resnet50", "inceptionv3", "gnmt")
               for m in ("inference", "training"))
KS = (2, 4, 8, 16, 32, 64)
#: the peer prints this (its INFTY) when no split meets the memory cap
PEER_INF = 1e29


def run_peer(binary: str, path: Path, k: int, limit: float,
             tmp: str) -> tuple[float | None, float, str]:
    """Run the peer on ``path`` with ``maxCPUs = 0, maxFPGAs = k``: (value, seconds, note)."""
    data = json.loads(path.read_text())
    data["maxCPUs"] = 0
    data["maxFPGAs"] = k
    inp = Path(tmp) / f"{path.stem}_k{k}.json"
    inp.write_text(json.dumps(data))
    t0 = time.perf_counter()
    try:
        with inp.open() as fh:
            out = subprocess.run([binary], stdin=fh, capture_output=True, text=True,
                                 timeout=limit, check=False)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - t0, f"> {limit:g} s"
    dt = time.perf_counter() - t0
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        msg = (lines[-1] if lines else out.stderr.strip().splitlines()[-1:] or ["?"])
        return None, dt, str(msg)[:40]
    try:
        val = float(lines[-1].split()[-1])
    except ValueError:
        return None, dt, lines[-1][:40]
    return (math.inf if val >= PEER_INF else val), dt, ""


def main(argv: list[str] | None = None) -> int:
    """Print one line per (graph, k); exit status 1 if any value disagrees with the peer."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--peer", default=None, help="compiled peer dp binary")
    ap.add_argument("--peer-time-limit", type=float, default=300.0)
    ap.add_argument("--graphs", default=",".join(GRAPHS))
    ap.add_argument("--ks", default=",".join(map(str, KS)))
    args = ap.parse_args(argv)
    shared = Path(os.environ.get("PIPECERT_SHARED",
                                 Path(__file__).resolve().parents[3] / "shared"))
    root = shared / "instances" / "dnn-partitioning" / "LayerGraphs"
    ks = [int(x) for x in args.ks.split(",")]
    bad = 0
    print(f"{'graph':22s} {'k':>3s} {'status':10s} {'pipecert':>12s} {'ms':>9s} "
          f"{'ideals':>6s} {'peer':>12s} {'peer_ms':>9s} {'agree':5s}")
    with tempfile.TemporaryDirectory() as tmp:
        for graph in args.graphs.split(","):
            path = root / f"{graph}.json"
            inst = read_instance(str(path))
            DownsetDP().run(inst, 2)  # compile / load the numba cache
            for k in ks:
                best = math.inf
                out = None
                for _ in range(max(1, args.repeat)):
                    clear_all()  # every memo cold, as for a fresh graph
                    t0 = time.perf_counter()
                    out = DownsetDP().run(inst, k)
                    best = min(best, time.perf_counter() - t0)
                assert out is not None
                mine = out.incumbent if out.status.value == "optimal" else None
                if out.status.value == "infeasible":
                    mine = math.inf
                pv, ps, note = (None, math.nan, "")
                agree = "-"
                if args.peer:
                    pv, ps, note = run_peer(args.peer, path, k, args.peer_time_limit, tmp)
                    if pv is not None and mine is not None:
                        ok = (mine == pv == math.inf) or math.isclose(mine, pv, rel_tol=1e-6)
                        agree = "yes" if ok else "NO"
                        bad += not ok
                val = "-" if mine is None else f"{mine:.6f}"
                pstr = note or ("-" if pv is None else f"{pv:.6f}")
                print(f"{graph:22s} {k:3d} {out.status.value:10s} {val:>12s} "
                      f"{1e3 * best:9.1f} {out.stats.get('n_ideals', '-')!s:>6s} "
                      f"{pstr:>12s} {1e3 * ps:9.1f} {agree:5s}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
