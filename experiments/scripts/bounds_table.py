"""Lower-bound table (docs/results/lower-bounds.md): every bound / the best partition found.

For every graph file under ``--instances`` and every ``k``, runs the heuristics in
``--heuristics`` (the best re-scored partition is the warm start and cutoff of the MIPs),
then every bound in ``--methods`` with ``--time-limit`` seconds each (one thread), and
appends one JSON line per (graph, k, method) to ``--out`` (resumable). The denominator of
every ratio is the best partition found: the heuristics, the exact MIP's incumbent and,
with ``--ub-from``, the values of a ``heuristics_table.py`` results file.

``--report`` prints the Markdown tables of the README section "Lower bounds": the
geometric mean over graphs of bound / best partition per method and k, the number of
(graph, k) pairs each method proves optimal, and where the MIP time goes (build vs solve).

Usage::

    python experiments/scripts/bounds_table.py --out bounds.jsonl --time-limit 6
    python experiments/scripts/bounds_table.py --out bounds.jsonl --report
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.analysis import geomean as gmean
from formulations import FORMULATIONS
from heuristics import HEURISTICS
from instances.io import read_instance
from pipecert.results import Budget, SolveContext

DEFAULT_METHODS = ["combinatorial", "node_bound", "path_bound", "bottleneck", "guess",
                   "exact_mip"]
KS = [2, 4, 8, 16, 32, 64]
ROOT = Path(__file__).resolve().parents[3] / "shared" / "instances"


def graph_files(root: Path) -> list[Path]:
    """Graph files (dnn-partitioning JSON, PipeDream graph.txt, REGAL pbtxt) under root."""
    return [p for p in sorted(root.rglob("*"))
            if p.is_file() and (p.suffix in (".json", ".pbtxt") or p.name.endswith("graph.txt")
                                or p.name.endswith(".json.gz"))]


def _ub_file(path: str | None) -> dict[tuple[str, int], float]:
    out: dict[tuple[str, int], float] = {}
    if not path:
        return out
    for line in Path(path).read_text().splitlines():
        r = json.loads(line)
        if r.get("value") is not None:
            key = (r["graph"], int(r["k"]))
            out[key] = min(out.get(key, math.inf), float(r["value"]))
    return out


def _scalar_stats(stats: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(stats).items()
            if isinstance(v, int | float | str | bool) or v is None}


def run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    done = set()
    if out.exists():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done.add((r["graph"], r["k"], r["method"]))
    root = Path(args.instances)
    ub_file = _ub_file(args.ub_from)
    methods = [m for m in args.methods if m.split("[")[0] in FORMULATIONS]
    with out.open("a") as fh:
        for path in graph_files(root):
            inst = read_instance(str(path))
            graph = str(path.relative_to(root))
            for k in args.k:
                if all((graph, k, m) in done for m in ["heuristics", *methods]):
                    continue
                best, best_part, src = math.inf, None, None
                t0 = time.perf_counter()
                for spec in args.heuristics:
                    res = HEURISTICS.make(spec).run(
                        inst, k, Budget(time_limit_s=args.heuristic_time_limit),
                        np.random.default_rng(args.seed))
                    if res.incumbent is not None and res.incumbent < best:
                        best, best_part, src = res.incumbent, res.partition, spec
                heur_time = time.perf_counter() - t0
                if (graph, k, "heuristics") not in done:
                    fh.write(json.dumps({
                        "graph": graph, "n": inst.n_nodes, "m": inst.n_edges, "k": k,
                        "method": "heuristics", "value": best if math.isfinite(best) else None,
                        "source": src, "time_s": heur_time,
                        "partition": None if best_part is None else
                        np.asarray(best_part.stage_of).tolist(),
                        "ub_file": ub_file.get((graph, k)),
                    }) + "\n")
                ctx = SolveContext(upper_bound=best if math.isfinite(best) else None,
                                   partition=best_part)
                for spec in methods:
                    if (graph, k, spec) in done:
                        continue
                    method = FORMULATIONS.make(spec)
                    t1 = time.perf_counter()
                    res = method.run(inst, k, Budget(time_limit_s=args.time_limit), ctx)
                    row: dict[str, Any] = {
                        "graph": graph, "n": inst.n_nodes, "m": inst.n_edges, "k": k,
                        "method": spec, "status": str(res.status), "bound": res.bound,
                        "incumbent": res.incumbent, "time_s": time.perf_counter() - t1,
                        "time_limit_s": args.time_limit, "error": res.error,
                        "stats": _scalar_stats(res.stats),
                    }
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(f"{graph} k={k} {spec}: {res.status} {res.bound} "
                          f"(ub {best:.6g}, {row['time_s']:.2f}s)", file=sys.stderr)


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
    by: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by[(r["graph"], r["k"])][r["method"]] = r
    ks = sorted({r["k"] for r in rows})
    methods = [m for m in DEFAULT_METHODS if any(r["method"] == m for r in rows)]
    methods += sorted({r["method"] for r in rows} - set(methods) - {"heuristics"})
    limits = sorted({r["time_limit_s"] for r in rows if "time_limit_s" in r})

    def best_ub(d: dict[str, dict[str, Any]]) -> float | None:
        vals = [r.get("incumbent") for r in d.values()] + [d.get("heuristics", {}).get("value"),
                                                          d.get("heuristics", {}).get("ub_file")]
        vals = [v for v in vals if v is not None and v > 0]
        return min(vals) if vals else None

    graphs = sorted({r["graph"] for r in rows})
    print(f"Time limit {', '.join(f'{x:g}' for x in limits)} s per bound and (graph, k), one "
          f"thread; {len(graphs)} graphs.\n")
    print("| bound | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for m in [*methods, "best of all"]:
        cells = []
        for k in ks:
            ratios = []
            for g in graphs:
                d = by.get((g, k), {})
                ub = best_ub(d)
                if ub is None:
                    continue
                if m == "best of all":
                    vals = [r["bound"] for mm, r in d.items()
                            if mm != "heuristics" and r.get("bound") is not None]
                    if vals:
                        ratios.append(max(vals) / ub)
                elif m in d and d[m].get("bound") is not None:
                    ratios.append(d[m]["bound"] / ub)
            cells.append(f"{gmean(ratios):.4f}" if ratios else "")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nPairs where the bound meets the best partition (within 1e-5), of the pairs run:\n")
    print("| bound | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for m in methods:
        cells = []
        for k in ks:
            hit = tot = 0
            for g in graphs:
                d = by.get((g, k), {})
                ub = best_ub(d)
                if ub is None or m not in d:
                    continue
                tot += 1
                b = d[m].get("bound")
                hit += b is not None and b >= ub * (1 - 1e-5)
            cells.append(f"{hit}/{tot}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print("\nMean time per run (s), and the share of MIP time spent building the model:\n")
    print("| bound | " + " | ".join(f"k={k}" for k in ks) + " | build share |")
    print("|---|" + "---|" * (len(ks) + 1))
    for m in methods:
        cells = []
        build = solve = 0.0
        for k in ks:
            ts = [by[(g, k)][m]["time_s"] for g in graphs if m in by.get((g, k), {})]
            cells.append(f"{np.mean(ts):.2f}" if ts else "")
            for g in graphs:
                st = by.get((g, k), {}).get(m, {}).get("stats", {})
                build += float(st.get("build_time_s") or 0.0)
                solve += float(st.get("solve_time_s") or 0.0)
        share = f"{build / (build + solve):.1%}" if build + solve > 0 else ""
        print(f"| {m} | " + " | ".join(cells) + f" | {share} |")
    errors = [r for r in rows if r.get("error")]
    print(f"\n{len(errors)} errored runs.")
    for r in errors[:10]:
        print(f"- {r['graph']} k={r['k']} {r['method']}: {r['error'].splitlines()[0]}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--instances", default=str(ROOT))
    ap.add_argument("--k", type=int, nargs="+", default=KS)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--heuristics", nargs="+", default=["brkga-100[refine=True]"])
    ap.add_argument("--heuristic-time-limit", type=float, default=30.0)
    ap.add_argument("--time-limit", type=float, default=6.0)
    ap.add_argument("--ub-from", default=None, help="a heuristics_table.py results file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args(argv)
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
