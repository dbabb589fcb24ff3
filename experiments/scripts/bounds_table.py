"""Lower-bound table: every bound as a fraction of the best partition found.

For every graph under ``--instances`` (instance specs: directories, files, globs, suites)
and every ``k``, runs the heuristics in ``--heuristics`` and then every bound in
``--methods`` through the experiment harness (isolated worker processes, ``--time-limit``
seconds each, one thread): every bound receives the best heuristic partition for k' <= k
as warm start and cutoff. Every run is one row of the SQLite store ``--store`` (resumable:
stored runs are skipped). The denominator of every ratio is the best partition the store
knows for (graph, k).

``--report`` prints the tables of docs/results/lower-bounds.md#every-bound from the store
(the same as ``pipecert report STORE --table bounds``): the geometric mean over graphs of
bound / best partition per method and k, the number of (graph, k) pairs each method closes,
and where the MIP time goes (build vs solve).

Usage::

    python experiments/scripts/bounds_table.py --store results/bounds/results.sqlite
    python experiments/scripts/bounds_table.py --store results/bounds/results.sqlite --report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.store import ResultsStore
from experiments.tables import BOUND_ORDER, bounds_table, run_script_grid, script_config

DEFAULT_METHODS = BOUND_ORDER
KS = [2, 4, 8, 16, 32, 64]
ROOT = Path(__file__).resolve().parents[3] / "shared" / "instances"


def run(args: argparse.Namespace) -> None:
    """Run the grid into the store."""
    store = Path(args.store)
    cfg = script_config("bounds_table", store.parent, args.instances, args.k,
                        heuristics=args.heuristics, bounds=args.methods,
                        time_limit_s=args.time_limit,
                        heuristic_time_limit_s=args.heuristic_time_limit, seed=args.seed,
                        jobs=args.jobs)
    res = run_script_grid(cfg, store, progress=not args.no_progress)
    print(f"{res.n_run} runs ({res.n_errors} errors, {res.n_skipped} already stored) in "
          f"{store}", file=sys.stderr)


def report(args: argparse.Namespace) -> None:
    """Print the tables from the store."""
    with ResultsStore(args.store, readonly=True) as st:
        sys.stdout.write(bounds_table(st))


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--store", required=True, help="the SQLite results store")
    ap.add_argument("--instances", nargs="+", default=[str(ROOT)], help="instance specs")
    ap.add_argument("--k", type=int, nargs="+", default=KS)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--heuristics", nargs="+", default=["brkga-100[refine=True]"])
    ap.add_argument("--heuristic-time-limit", type=float, default=30.0)
    ap.add_argument("--time-limit", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args(argv)
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
