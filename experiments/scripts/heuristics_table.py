"""Upper-bound tables: every heuristic vs the down-set DP optimum.

Runs the chosen heuristics on every graph under ``--instances`` (instance specs:
directories, files, globs, suites) for each ``k`` through the experiment harness (isolated
worker processes, ``--time-limit`` seconds each); every run is one row of the SQLite store
``--store`` (resumable: stored runs are skipped). ``--report`` prints the Markdown tables of
docs/results/heuristics.md from the store (the same as
``pipecert report STORE --table heuristics``):

1. per (graph, k): brkga-10000's ratio to the DP optimum (where the DP finishes);
2. per method and k: the geometric mean of value / best known value, and mean time;
3. what local search adds to each method (geometric-mean improvement).

Usage::

    python experiments/scripts/heuristics_table.py --store results/heur/results.sqlite
    python experiments/scripts/heuristics_table.py --store results/heur/results.sqlite --report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.store import ResultsStore
from experiments.tables import HEURISTIC_ORDER, heuristics_table, run_script_grid, script_config

DEFAULT_METHODS = HEURISTIC_ORDER
KS = [2, 4, 8, 16, 32, 64]
ROOT = Path(__file__).resolve().parents[3] / "shared" / "instances"


def run(args: argparse.Namespace) -> None:
    """Run the grid into the store (heuristics only)."""
    store = Path(args.store)
    cfg = script_config("heuristics_table", store.parent, args.instances, args.k,
                        heuristics=args.methods, bounds=[], time_limit_s=args.time_limit,
                        seed=args.seed, jobs=args.jobs)
    res = run_script_grid(cfg, store, progress=not args.no_progress)
    print(f"{res.n_run} runs ({res.n_errors} errors, {res.n_skipped} already stored) in "
          f"{store}", file=sys.stderr)


def report(args: argparse.Namespace) -> None:
    """Print the tables from the store."""
    with ResultsStore(args.store, readonly=True) as st:
        sys.stdout.write(heuristics_table(st))


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--store", required=True, help="the SQLite results store")
    ap.add_argument("--instances", nargs="+", default=[str(ROOT)], help="instance specs")
    ap.add_argument("-k", type=int, nargs="+", default=KS)
    ap.add_argument("-m", "--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--report", action="store_true", help="print the tables and exit")
    args = ap.parse_args(argv)
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
