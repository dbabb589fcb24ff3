"""Min-cut bounds vs the paper's bounds: bound / best partition per (graph, k), with times.

For every graph (the files under ``--instances``, by default ``../shared/instances``, plus
the bundled generated graphs named by ``--bundled``) and every ``k``:

* best partition: the best of ``--heuristics`` (each with ``--heur-time`` seconds), of the
  partition found for the previous (smaller) ``k`` (a partition for ``k`` is feasible for
  every larger ``k``) and of any partition a bound run returned;
* bounds: ``combinatorial``, the paper's MIPs (``bottleneck``, ``guess``: ``--mip-time``
  each), ``node_bound``, ``path_bound`` (``--spine-time``), and ``guess`` with
  ``T >= max(node, path)`` passed as ``context.lower_bound`` (docs/results/lower-bounds.md);
* a bound proven for ``k`` also holds for every smaller ``k`` (OPT never increases with k):
  the per-instance best uses it ("monotone" column).

One JSON line per (graph, k) is appended to ``--out`` (resumable). ``--report`` prints the
Markdown tables of the README section "Beyond the paper: min-cut bounds".

Usage::

    python experiments/scripts/spine_table.py --out spine.jsonl
    python experiments/scripts/spine_table.py --out spine.jsonl --report
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

from formulations import FORMULATIONS
from heuristics import HEURISTICS
from instances import load_bundled
from instances.io import read_instance
from pipecert.instance import Instance
from pipecert.partition import Partition, evaluate
from pipecert.results import Budget, SolveContext
from pipecert.seeding import derive_seed

KS = [2, 4, 8, 16, 32, 64]
PAPER = ["combinatorial", "bottleneck", "guess"]
SPINE = ["node_bound", "path_bound"]
DEFAULT_BUNDLED = ["operator-0300", "operator-1000", "operator-2000", "comm-0300",
                   "comm-1000", "compute-0300", "compute-1000", "chain-comm-0200",
                   "wide-compute-0500", "balanced-0500", "regal-01", "regal-02"]


def graph_files(root: Path) -> list[Path]:
    """Graph files (dnn-partitioning JSON, PipeDream graph.txt) under ``root``."""
    return [p for p in sorted(root.rglob("*"))
            if p.is_file() and (p.suffix == ".json" or p.name.endswith("graph.txt"))]


def load_graphs(args: argparse.Namespace) -> list[tuple[str, str, Instance]]:
    """``(group, name, instance)`` for every graph of the run."""
    out = []
    root = Path(args.instances)
    if root.is_dir():
        for p in graph_files(root):
            group = "training" if "_training" in p.name else p.parent.name
            out.append((group, p.name, read_instance(p)))
    for name in [b for b in args.bundled.split(",") if b]:
        full = name if "/" in name else f"default/{name}"
        inst = load_bundled(full)
        out.append(("generated" if full.startswith("default/") else full.split("/")[0],
                    name, inst))
    return out


def spine_partitions(inst: Instance, k: int, cache: dict[str, Any],
                     limit: float) -> list[Partition]:
    """Feasible partitions from path_bound's optimal path splits, refined by local search.

    With ``d[x]`` the last path position that reaches ``x`` (-1 if none), stage(x) = the
    run holding position ``max(d[x], 0)``: an ordering edge ``x -> y`` has ``d[y] >= d[x]``,
    so stages never decrease along edges. The same holds with ``a[x]`` (first position that
    ``x`` reaches, ``L`` if none, mapped to the last run).
    """
    from heuristics.local_search import refine_partition

    hit = cache.get("path_bound")
    if hit is None:
        return []
    out = []
    for st in hit[1]:
        runs = st.splits.get(k)
        if not runs:
            continue
        L = st.chain.size
        run_of = np.empty(L, dtype=np.int64)
        for r, (i, j) in enumerate(runs):
            run_of[i : j + 1] = r
        for idx in (np.maximum(st.d, 0), np.minimum(st.a, L - 1)):
            p = Partition(run_of[idx], k)
            p, _ = refine_partition(inst, p, k, Budget(time_limit_s=limit / 4))
            out.append(p)
    return out


def run_bound(spec: str, inst: Instance, k: int, limit: float,
              ctx: SolveContext) -> tuple[float | None, float, Any]:
    """Bound, wall time and the outcome of one formulation run (never raises)."""
    form = FORMULATIONS.make(spec)
    t0 = time.perf_counter()
    out = form.run(inst, k, Budget(time_limit_s=limit), ctx)
    return out.bound, time.perf_counter() - t0, out


def run(args: argparse.Namespace) -> None:
    out_path = Path(args.out)
    done: set[tuple[str, int]] = set()
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            r = json.loads(line)
            done.add((r["graph"], r["k"]))
    ks = [int(x) for x in args.ks.split(",")]
    for group, name, inst in load_graphs(args):
        if all((name, k) in done for k in ks):
            continue
        cache: dict[str, Any] = {}
        prev_part: Partition | None = None
        for k in ks:
            rng = np.random.default_rng(derive_seed(0, name, k))
            cands: list[tuple[float, str, Partition]] = []
            if prev_part is not None:
                p = Partition(prev_part.stage_of, k)
                cands.append((evaluate(inst, p), "previous_k", p))
            heur_times = {}
            exact = None
            for spec in args.heuristics.split(","):
                h = HEURISTICS.make(spec)
                t0 = time.perf_counter()
                o = h.run(inst, k, Budget(time_limit_s=args.heur_time), rng)
                heur_times[spec] = time.perf_counter() - t0
                if o.partition is not None and o.incumbent is not None:
                    cands.append((o.incumbent, spec, o.partition))
                    if str(o.status) == "optimal":  # an exact method's optimum is a bound
                        exact = o.incumbent
            ub, ub_src, part = min(cands, key=lambda c: c[0])
            prev_part = part
            if (name, k) in done:
                continue
            row: dict[str, Any] = {"group": group, "graph": name, "k": k,
                                   "n": inst.n_nodes, "m": inst.n_edges,
                                   "comm_work": inst.comm_work_ratio, "best_partition": ub,
                                   "best_source": ub_src, "heur_time_s": heur_times,
                                   "exact": exact,
                                   "bounds": {}, "times": {}, "stats": {}}
            ctx = SolveContext(upper_bound=ub, partition=part, cache=cache)
            for spec in SPINE:
                b, t, o = run_bound(spec, inst, k, args.spine_time, ctx)
                row["bounds"][spec] = b
                row["times"][spec] = t
                row["stats"][spec] = {kk: v for kk, v in o.stats.items()
                                      if isinstance(v, int | float | bool | str)}
            t0 = time.perf_counter()
            for p in spine_partitions(inst, k, cache, args.heur_time):
                val = evaluate(inst, p)
                if val < ub:
                    ub, ub_src, part = val, "path_split", p
            row["heur_time_s"]["path_split"] = time.perf_counter() - t0
            row["best_partition"], row["best_source"] = ub, ub_src
            prev_part = part
            for spec in PAPER:
                limit = 1.0 if spec == "combinatorial" else args.mip_time
                b, t, o = run_bound(spec, inst, k, limit, SolveContext(upper_bound=ub,
                                                                      partition=part))
                row["bounds"][spec] = b
                row["times"][spec] = t
                if o.error:
                    row.setdefault("errors", {})[spec] = o.error.splitlines()[0]
            spine_best = max(v for s, v in row["bounds"].items() if s in SPINE and v is not None)
            b, t, o = run_bound("guess", inst, k, args.mip_time,
                                SolveContext(upper_bound=ub, partition=part,
                                             lower_bound=spine_best))
            row["bounds"]["guess+lb"] = b
            row["times"]["guess+lb"] = t
            with out_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{name} k={k} ub={ub:.6g} " + " ".join(
                f"{s}={v / ub:.3f}" for s, v in row["bounds"].items() if v is not None),
                file=sys.stderr, flush=True)


def add_exact(args: argparse.Namespace) -> None:
    """Fill ``exact`` (downset_dp's proven optimum, else None) into rows that lack it."""
    path = Path(args.out)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    graphs = {name: inst for _, name, inst in load_graphs(args)}
    for r in rows:
        if "exact" in r or r["graph"] not in graphs:
            continue
        o = HEURISTICS.make("downset_dp").run(graphs[r["graph"]], r["k"],
                                               Budget(time_limit_s=args.heur_time), 0)
        r["exact"] = o.incumbent if str(o.status) == "optimal" else None
        if o.incumbent is not None and o.incumbent < r["best_partition"]:
            r["best_partition"] = o.incumbent
            r["best_source"] = "downset_dp"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def rebound(args: argparse.Namespace) -> None:
    """Recompute only the min-cut bounds of existing rows with the current code (k from large
    to small per graph, sharing the run tables; the row's best partition value as context)."""
    path = Path(args.out)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    names = {r["graph"] for r in rows}
    graphs = {name: inst for _, name, inst in load_graphs(args) if name in names}
    by_graph: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_graph[r["graph"]].append(r)
    for name, rs in by_graph.items():
        inst = graphs.get(name)
        if inst is None:
            continue
        cache: dict[str, Any] = {}
        for r in sorted(rs, key=lambda r: -r["k"]):
            ctx = SolveContext(upper_bound=r["best_partition"], cache=cache)
            for spec in SPINE:
                b, t, o = run_bound(spec, inst, r["k"], args.spine_time, ctx)
                r["bounds"][spec] = b
                r["times"][spec] = t
                r["stats"][spec] = {kk: v for kk, v in o.stats.items()
                                    if isinstance(v, int | float | bool | str)}
        print(name, file=sys.stderr, flush=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _gm(xs: list[float]) -> float:
    xs = [max(x, 1e-12) for x in xs]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in Path(args.out).read_text().splitlines()]
    by_graph: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_graph[r["graph"]][r["k"]] = r
    ks = sorted({r["k"] for r in rows})

    def paper(r: dict[str, Any]) -> float:
        return max(v for s, v in r["bounds"].items() if s in PAPER and v is not None)

    def spine(r: dict[str, Any]) -> float:
        return max(v for s, v in r["bounds"].items() if s in SPINE and v is not None)

    def best(r: dict[str, Any]) -> float:
        vals = [v for v in r["bounds"].values() if v is not None]
        if args.with_exact and r.get("exact") is not None:
            vals.append(r["exact"])
        return max(vals)

    # monotone in k: a bound for k' >= k holds for k
    best_mono: dict[tuple[str, int], float] = {}
    for g, per_k in by_graph.items():
        run_max = 0.0
        for k in sorted(per_k, reverse=True):
            run_max = max(run_max, best(per_k[k]))
            best_mono[(g, k)] = run_max
    print("| graph | n | c/w | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|---|---|" + "---|" * len(ks))
    for g, per_k in by_graph.items():
        r0 = next(iter(per_k.values()))
        cells = []
        for k in ks:
            r = per_k.get(k)
            if r is None:
                cells.append("")
                continue
            ub = r["best_partition"]
            cells.append(f"{paper(r) / ub:.3f} / {spine(r) / ub:.3f} / "
                         f"**{best_mono[(g, k)] / ub:.3f}**")
        print(f"| {g} | {r0['n']} | {r0['comm_work']:.2f} | " + " | ".join(cells) + " |")
    print()
    groups = sorted({r["group"] for r in rows})
    print("| geometric mean | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for label, sel in [("all graphs", None)] + [(gname, gname) for gname in groups]:
        for what, fn in (("paper", paper), ("min-cut", spine), ("best", None),
                         ("guess + T>=LB", None)):
            cells = []
            for k in ks:
                rs = [r for r in rows if r["k"] == k and (sel is None or r["group"] == sel)]
                if not rs:
                    cells.append("")
                    continue
                if what == "best":
                    vals = [best_mono[(r["graph"], k)] / r["best_partition"] for r in rs]
                elif what == "guess + T>=LB":
                    vals = [max(r["bounds"].get("guess+lb") or 0.0, paper(r), spine(r))
                            / r["best_partition"] for r in rs]
                else:
                    vals = [fn(r) / r["best_partition"] for r in rs]  # type: ignore[misc]
                cells.append(f"{_gm(vals):.3f}")
            print(f"| {label}: {what} | " + " | ".join(cells) + " |")
    print()
    print("| median time (s) | " + " | ".join(f"k={k}" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for spec in SPINE + ["bottleneck", "guess"]:
        cells = []
        for k in ks:
            ts = [r["times"][spec] for r in rows if r["k"] == k and spec in r["times"]]
            cells.append(f"{float(np.median(ts)):.2f}" if ts else "")
        print(f"| {spec} | " + " | ".join(cells) + " |")
    lifted = sum(1 for r in rows if (r["bounds"].get("guess+lb") or 0.0)
                 > max(paper(r), spine(r)) * (1 + 1e-6))
    print(f"\nguess with T >= LB_min-cut beat max(paper, min-cut) on {lifted} of {len(rows)} "
          "(graph, k) pairs")
    low = [(g, k, best_mono[(g, k)] / per_k[k]["best_partition"])
           for g, per_k in by_graph.items() for k in sorted(per_k)
           if best_mono[(g, k)] / per_k[k]["best_partition"] < 0.99]
    print(f"\nbelow 0.99: {len(low)} of {len(rows)}: " + ", ".join(
        f"{g} k={k} ({v:.3f})" for g, k, v in low))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", default="../shared/instances")
    ap.add_argument("--bundled", default=",".join(DEFAULT_BUNDLED))
    ap.add_argument("--ks", default=",".join(map(str, KS)))
    ap.add_argument("--heuristics", default="brkga-100[refine=True],downset_dp")
    ap.add_argument("--heur-time", type=float, default=4.0)
    ap.add_argument("--mip-time", type=float, default=4.0)
    ap.add_argument("--spine-time", type=float, default=20.0)
    ap.add_argument("--out", default="spine_table.jsonl")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--with-exact", action="store_true",
                    help="count an exact heuristic's proven optimum (downset_dp) as a bound")
    ap.add_argument("--rebound", action="store_true",
                    help="recompute only node_bound/path_bound of the rows in --out")
    ap.add_argument("--add-exact", action="store_true",
                    help="add the downset_dp optimum (when proven in --heur-time) to old rows")
    args = ap.parse_args(argv)
    if args.add_exact:
        add_exact(args)
    elif args.rebound:
        rebound(args)
    elif args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
