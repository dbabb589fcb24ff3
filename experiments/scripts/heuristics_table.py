"""Upper-bound tables (docs/results/heuristics.md): every heuristic vs the down-set DP optimum.

Runs the chosen heuristics on every graph file under ``--instances`` for each ``k`` and
appends one JSON line per (graph, k, method) to ``--out`` (resumable: finished rows are
skipped). ``--report`` prints the Markdown tables of the README section "Upper bounds":

1. per (graph, k): the DP optimum (where it finishes) and brkga-10000's ratio to it;
2. per method and k: the geometric mean of value / best known value, and mean time;
3. what local search adds to each method (geometric-mean improvement).

Usage::

    python experiments/scripts/heuristics_table.py --out results.jsonl
    python experiments/scripts/heuristics_table.py --out results.jsonl --report
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.analysis import geomean as gmean
from heuristics import HEURISTICS
from instances.io import read_instance
from pipecert.results import Budget

DEFAULT_METHODS = [
    "downset_dp", "input_order", "dfs_order", "bfs_order", "equal_work", "random_orders",
    "brkga-100", "brkga-10000", "input_order[refine=True]", "dfs_order[refine=True]",
    "equal_work[refine=True]", "brkga-100[refine=True]",
]
KS = [2, 4, 8, 16, 32, 64]


def graph_files(root: Path) -> list[Path]:
    """Graph files (dnn-partitioning JSON, PipeDream graph.txt, REGAL pbtxt) under root."""
    out = [p for p in sorted(root.rglob("*"))
           if p.is_file() and (p.suffix in (".json", ".pbtxt") or p.name.endswith("graph.txt"))]
    return out


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["graph"], r["k"], r["method"]))
    root = Path(args.instances)
    with out.open("a") as fh:
        for path in graph_files(root):
            inst = read_instance(str(path))
            graph = str(path.relative_to(root))
            for k in args.k:
                for spec in args.methods:
                    if (graph, k, spec) in done:
                        continue
                    method = HEURISTICS.make(spec)
                    t0 = time.perf_counter()
                    c0 = time.process_time()
                    res = method.run(inst, k, Budget(time_limit_s=args.time_limit),
                                     np.random.default_rng(args.seed))
                    row: dict[str, Any] = {
                        "graph": graph, "n": inst.n_nodes, "m": inst.n_edges, "k": k,
                        "method": spec, "status": str(res.status), "value": res.incumbent,
                        "time_s": time.perf_counter() - t0,
                        "cpu_s": time.process_time() - c0,
                        "stats": {key: v for key, v in res.stats.items()
                                  if isinstance(v, int | float | str | bool)},
                    }
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(f"{graph} k={k} {spec}: {res.status} {res.incumbent} "
                          f"({row['time_s']:.2f}s)", file=sys.stderr)


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
    by: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by[(r["graph"], r["k"])][r["method"]] = r
    ks = sorted({r["k"] for r in rows})
    graphs = sorted({r["graph"] for r in rows})
    print("### brkga-10000 vs the down-set DP optimum (ratio = brkga / OPT; - = DP did not "
          "finish)\n")
    print("| graph | n | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|---|" + "---|" * len(ks))
    n_in, n_tot, worst = 0, 0, 1.0
    for g in graphs:
        cells = []
        n = next(r["n"] for r in rows if r["graph"] == g)
        for k in ks:
            d = by[(g, k)]
            dp, br = d.get("downset_dp"), d.get("brkga-10000")
            if dp and br and dp["status"] == "optimal" and br["value"] is not None:
                ratio = br["value"] / dp["value"] if dp["value"] > 0 else 1.0
                n_tot += 1
                n_in += ratio <= 1.01 + 1e-12
                worst = max(worst, ratio)
                cells.append(f"{ratio:.4f}")
            elif dp and dp["status"] != "optimal":
                cells.append(f"- ({dp['stats'].get('n_ideals', '?')} ideals)"
                             if dp["status"] == "unsupported" else f"- ({dp['status']})")
            else:
                cells.append("")
        print(f"| {g} | {n} | " + " | ".join(cells) + " |")
    print(f"\nbrkga-10000 within 1% of OPT on {n_in} of {n_tot} (graph, k) pairs where the DP "
          f"finished; worst ratio {worst:.4f}.\n")
    methods = [m for m in DEFAULT_METHODS if any(r["method"] == m for r in rows)]
    methods += sorted({r["method"] for r in rows} - set(methods))
    print("### Geometric mean of value / best value found (all methods), per k\n")
    print("| method | " + " | ".join(f"k={k}" for k in ks) + " | mean time (s) |")
    print("|---|" + "---|" * (len(ks) + 1))
    for m in methods:
        if m == "downset_dp":
            continue
        cells = []
        times = []
        for k in ks:
            ratios = []
            for g in graphs:
                d = by[(g, k)]
                vals = [r["value"] for r in d.values() if r["value"] is not None]
                if m in d and d[m]["value"] is not None and vals and min(vals) > 0:
                    ratios.append(d[m]["value"] / min(vals))
                    times.append(d[m]["time_s"])
            cells.append(f"{gmean(ratios):.4f}" if ratios else "")
        print(f"| {m} | " + " | ".join(cells) + f" | {np.mean(times) if times else 0:.3f} |")
    print()
    print("### What local search adds (geometric mean of refined / unrefined value; share of "
          "(graph, k) pairs it improves)\n")
    print("| method | GM refined/base | improved | pairs |")
    print("|---|---|---|---|")
    for m in methods:
        if m.endswith("[refine=True]"):
            continue
        ref = f"{m}[refine=True]"
        pairs = [(d[m]["value"], d[ref]["value"]) for d in by.values()
                 if m in d and ref in d and d[m]["value"] and d[ref]["value"]]
        if pairs:
            better = sum(b < a * (1 - 1e-9) for a, b in pairs)
            print(f"| {m} | {gmean([b / a for a, b in pairs]):.4f} | {better} | {len(pairs)} |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", default=str(Path(__file__).resolve().parents[3]
                                               / "shared" / "instances"))
    ap.add_argument("--out", default="heuristics_table.jsonl")
    ap.add_argument("-k", type=int, nargs="+", default=KS)
    ap.add_argument("-m", "--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", action="store_true", help="print the tables and exit")
    args = ap.parse_args()
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
