"""Min-cut bounds vs the paper's bounds: bound / best partition per (graph, k), with times.

For every graph (the instance specs ``--instances``, by default ``../shared/instances``,
plus the bundled generated graphs named by ``--bundled``) and every ``k``, through the
experiment harness into the SQLite store ``--store`` (resumable: stored runs are skipped):

* heuristics ``--heuristics`` (``--heur-time`` seconds each); every bound receives the best
  partition found for k' <= k as warm start and cutoff;
* bounds: ``combinatorial``, the paper's MIPs (``bottleneck``, ``guess``: ``--mip-time``
  each), ``node_bound``, ``path_bound`` (``--spine-time``).

Then two runs that depend on other runs of the same (graph, k) are made in this process with
:func:`pipecert.runner.run_method` and stored as ordinary typed records:

* ``path_split`` (a heuristic row): partitions built from ``path_bound``'s optimal path
  splits, refined by local search (:func:`spine_partitions`);
* ``guess+lb`` (a bound row of the method ``guess``): ``guess`` with
  ``T >= max(node_bound, path_bound)`` passed as ``context.lower_bound``.

``--report`` prints the tables of docs/results/lower-bounds.md#min-cut from the store (the
same as ``pipecert report STORE --table spine``; ``--with-exact`` counts ``downset_dp``'s
proven optimum as a bound). A bound proven for ``k`` also holds for
every smaller ``k`` (OPT never increases with k): the per-instance best uses it.

Usage::

    python experiments/scripts/spine_table.py --store results/spine/results.sqlite
    python experiments/scripts/spine_table.py --store results/spine/results.sqlite --report
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.records import RunRecord
from experiments.store import SCHEMA_VERSION, ResultsStore, run_key
from experiments.tables import PAPER, SPINE, run_script_grid, script_config, spine_table
from pipecert.instance import Instance
from pipecert.partition import Partition, evaluate
from pipecert.registry import Role
from pipecert.results import Budget, SolveContext, Status
from pipecert.runner import run_method

KS = [2, 4, 8, 16, 32, 64]
DEFAULT_BUNDLED = ["operator-0300", "operator-1000", "operator-2000", "comm-0300",
                   "comm-1000", "compute-0300", "compute-1000", "chain-comm-0200",
                   "wide-compute-0500", "balanced-0500", "regal-01", "regal-02"]


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


def _config(args: argparse.Namespace) -> dict[str, Any]:
    specs = [s for s in args.instances if Path(s).exists() or ":" in s]
    specs += [b if "/" in b else f"default/{b}" for b in args.bundled.split(",") if b]
    cfg = script_config("spine_table", Path(args.store).parent, specs,
                        [int(x) for x in args.ks.split(",")],
                        heuristics=args.heuristics.split(","), bounds=[*PAPER, *SPINE],
                        time_limit_s=args.mip_time, heuristic_time_limit_s=args.heur_time,
                        jobs=args.jobs)
    cfg["budget"]["per_method"] = {"combinatorial": 1.0, "node_bound": args.spine_time,
                                   "path_bound": args.spine_time}
    return cfg


def _record(name: str, method: str, method_id: str, role: Role, k: int, inst: Instance,
            *, status: Status, time_s: float, limit: float, bound: float | None = None,
            incumbent: float | None = None, part: Partition | None = None,
            ctx: SolveContext | None = None, error: str | None = None) -> RunRecord:
    return RunRecord(
        run_key=run_key(name, k, method_id, 0), schema_version=SCHEMA_VERSION,
        experiment="spine_table", instance=name, n_nodes=inst.n_nodes,
        n_edges=inst.n_edges, k=k, role=role, method=method, method_id=method_id,
        params={}, seed=0, status=str(status), bound=bound, incumbent=incumbent,
        feasible=None if part is None else True,
        context_upper_bound=None if ctx is None else ctx.upper_bound,
        context_lower_bound=None if ctx is None else ctx.lower_bound,
        wall_time_s=time_s, time_limit_s=limit, threads=1,
        partition=None if part is None else [int(x) for x in part.stage_of],
        error=error, fingerprint=inst.fingerprint)


def run_extras(store: ResultsStore, args: argparse.Namespace) -> int:
    """``path_split`` and ``guess+lb`` per (graph, k) not yet stored; returns runs made."""
    made = 0
    done = store.run_keys()
    by: dict[tuple[str, int], list[RunRecord]] = {}
    for r in store.records():
        by.setdefault((str(r.instance), int(r.k or 0)), []).append(r)
    for name in sorted({g for g, _ in by}):
        ks = sorted(k for g, k in by if g == name)
        todo = [k for k in ks if run_key(name, k, "path_split", 0) not in done
                or run_key(name, k, "guess+lb", 0) not in done]
        if not todo:
            continue
        inst = store.load_instance(name)
        cache: dict[str, Any] = {}
        best: tuple[float, Partition] | None = None  # the best partition of k' <= k
        for k in ks:
            for r in by[(name, k)]:
                if r.incumbent is not None and r.partition is not None and \
                        (best is None or r.incumbent < best[0]):
                    best = (float(r.incumbent), Partition(r.partition, k))
            if best is not None and best[1].k != k:
                best = (best[0], Partition(best[1].stage_of, k))
            if k not in todo:
                continue
            ctx = SolveContext(upper_bound=None if best is None else best[0],
                               partition=None if best is None else best[1], cache=cache)
            t0 = time.perf_counter()
            run_method("path_bound", inst, k, role=Role.BOUND, context=ctx,
                       budget=Budget(args.spine_time))  # fills the cache with the path splits
            t1 = time.perf_counter()
            parts = spine_partitions(inst, k, cache, args.heur_time)
            split = min(((evaluate(inst, p), p) for p in parts), key=lambda x: x[0],
                        default=None)
            store.add_run(_record(
                name, "path_split", "path_split", Role.HEURISTIC, k, inst,
                status=Status.FEASIBLE if split else Status.NO_SOLUTION,
                time_s=time.perf_counter() - t1, limit=args.heur_time,
                incumbent=None if split is None else split[0],
                part=None if split is None else split[1]))
            if split is not None and (best is None or split[0] < best[0]):
                best = split
            spine = [r.bound for r in by[(name, k)]
                     if r.method_id in SPINE and r.bound is not None]
            ctx = SolveContext(upper_bound=None if best is None else best[0],
                               partition=None if best is None else best[1],
                               lower_bound=max(spine) if spine else None)
            out = run_method("guess", inst, k, role=Role.BOUND, context=ctx,
                             budget=Budget(args.mip_time))
            store.add_run(_record(name, "guess", "guess+lb", Role.BOUND, k, inst,
                                  status=out.status, time_s=out.time_s, limit=args.mip_time,
                                  bound=out.bound, incumbent=out.incumbent,
                                  part=out.partition, ctx=ctx, error=out.error))
            made += 2
            print(f"{name} k={k}: path_split {split[0] if split else None} "
                  f"guess+lb {out.bound} ({t1 - t0:.1f} s path_bound)", file=sys.stderr,
                  flush=True)
    store.update_derived()
    return made


def run(args: argparse.Namespace) -> None:
    """The grid through the harness, then the extras (see the module docstring)."""
    cfg = _config(args)
    res = run_script_grid(cfg, args.store, progress=not args.no_progress)
    with ResultsStore(args.store) as st:
        extra = run_extras(st, args)
    print(f"{res.n_run} grid runs ({res.n_errors} errors, {res.n_skipped} already stored), "
          f"{extra} extra runs in {args.store}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--store", required=True, help="the SQLite results store")
    ap.add_argument("--instances", nargs="*", default=["../shared/instances"],
                    help="instance specs (missing paths are skipped)")
    ap.add_argument("--bundled", default=",".join(DEFAULT_BUNDLED))
    ap.add_argument("--ks", default=",".join(map(str, KS)))
    ap.add_argument("--heuristics", default="brkga-100[refine=True],downset_dp")
    ap.add_argument("--heur-time", type=float, default=4.0)
    ap.add_argument("--mip-time", type=float, default=4.0)
    ap.add_argument("--spine-time", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--with-exact", action="store_true",
                    help="count an exact heuristic's proven optimum (downset_dp) as a bound")
    args = ap.parse_args(argv)
    if args.report:
        with ResultsStore(args.store, readonly=True) as st:
            sys.stdout.write(spine_table(st, with_exact=args.with_exact))
    else:
        run(args)


if __name__ == "__main__":
    main()
