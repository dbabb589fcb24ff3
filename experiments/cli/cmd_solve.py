"""``pipecert solve``: partition one graph into k stages and prove how good the split is."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

COMMAND = "solve"
HELP = "partition a graph into k stages: best partition, certified lower bound and gap"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, k, the portfolio and its budget, output options."""
    from experiments.cli._common import add_instance_options

    p.add_argument("model", metavar="MODEL",
                   help="graph file (any supported format) or bundled id SUITE/NAME")
    p.add_argument("-k", type=int, required=True, help="number of pipeline stages")
    p.add_argument("--time-limit", type=float, default=30.0, metavar="S",
                   help="total seconds (default 30)")
    p.add_argument("--heuristic", action="append", metavar="NAME",
                   help="run this heuristic (spec name[key=value]); 'all' runs every "
                        "registered one; repeatable")
    p.add_argument("--bound", action="append", metavar="NAME",
                   help="run this lower bound; 'all' runs every registered one; repeatable")
    p.add_argument("--solver", metavar="NAME",
                   help="MIP backend for formulations (highs, cvxpy:SOLVER, scipy, cpsat)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--target-gap", type=float, default=0.0, metavar="G",
                   help="stop once (UB - LB) / UB <= G (default 0: proven optimal)")
    p.add_argument("--threads", type=int, default=1, help="threads per method")
    p.add_argument("--json", action="store_true", help="print a JSON object on stdout")
    p.add_argument("-o", "--output", metavar="PARTITION_FILE",
                   help="partition file to write (default MODEL-kK.partition.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_instance_options(p)


#: Seconds ``solve`` waits at the end for solver threads it stopped (then leaves at once).
_EXIT_JOIN_S = 1.0


def _default_output(model: str, k: int) -> Path:
    name = Path(model).name
    for suffix in (".gz", ".json", ".txt", ".pbtxt", ".onnx", ".graph"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return Path(f"{name}-k{k}.partition.json")


def _pct(g: float | None) -> str:
    return "-" if g is None else f"{100 * g:.2f}%"


def run(args: argparse.Namespace) -> int:
    """Run the portfolio, print the result, write the partition file.

    SIGINT and SIGTERM stop the search cleanly (:mod:`pipecert.cancel`): the best partition
    is written, the best bound so far printed, and the exit code is 130.
    """
    from pipecert import cancel

    with cancel.handle_signals():
        code = _run(args)
        code = cancel.EXIT_INTERRUPTED if cancel.requested() else code
        if not cancel.stop_workers(_EXIT_JOIN_S):
            # a solver thread (HiGHS in a phase without interrupt checks) is still running:
            # exiting normally would abort in its C++ destructors; the output is complete
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    return code


def _run(args: argparse.Namespace) -> int:
    from experiments.cli._common import fmt, load_instance
    from experiments.portfolio import build_plan, solve, warm_up
    from pipecert import cancel
    from pipecert.errors import InputError
    from pipecert.instance import validate_k

    k = validate_k(args.k)
    if args.time_limit <= 0:
        raise InputError(f"--time-limit must be > 0, got {args.time_limit}")
    if args.target_gap < 0:
        raise InputError(f"--target-gap must be >= 0, got {args.target_gap}")
    inst = load_instance(args.model, args)
    plan = build_plan(args.heuristic, args.bound)
    err = sys.stderr
    t0 = time.monotonic()
    tty = err.isatty()

    def on_event(kind: str, info: Any, res: Any) -> None:
        if args.quiet:
            return
        t = time.monotonic() - t0
        if kind == "start":
            if tty:
                err.write(f"\r[{t:6.1f}s] running {info.method} ...\x1b[K")
                err.flush()
            return
        val = "-" if info.value is None else fmt(info.value)
        line = (f"[{t:6.1f}s] {info.role[:5]:5} {info.method[:34]:34} {val:>12} "
                f"{info.status:11}  UB {fmt(res.upper_bound)}  LB {fmt(res.lower_bound)}  "
                f"gap {_pct(res.gap)}")
        err.write(("\r" if tty else "") + line + ("\x1b[K" if tty else "") + "\n")
        err.flush()

    if not args.quiet:
        print(f"{inst.name}: {inst.n_nodes} nodes, {inst.n_edges} edges, k={k}, "
              f"time limit {fmt(args.time_limit)} s, {len(plan)} steps", file=err)
    # solvers may print banners on fd 1: keep stdout clean for the result (and --json)
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        # compile (or load from numba's cache) every kernel of the plan before the clock
        # starts, so the budget is spent solving
        secs, compiled = warm_up(plan, solver=args.solver)
        if compiled and not args.quiet:
            print(f"compiling kernels (first run only) ... {secs:.1f} s", file=err)
        t0 = time.monotonic()
        res = solve(inst, k, time_limit_s=args.time_limit, plan=plan, solver=args.solver,
                    seed=args.seed, target_gap=args.target_gap, threads=args.threads,
                    on_event=on_event)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    with cancel.handle_signals(escalate=False):  # never cut the output half-way
        return _report(args, inst, k, res)


def _report(args: argparse.Namespace, inst: Any, k: int, res: Any) -> int:
    """Write the partition file and print the result; the exit code."""
    from experiments.cli._common import fmt, format_table
    from pipecert.effective_k import effective_k, restrict_partition
    from pipecert.partition import stage_costs

    err = sys.stderr
    out_path = Path(args.output) if args.output else _default_output(args.model, k)
    if res.partition is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        res.partition.write(out_path, inst)
    runs = [{"method": r.method, "role": r.role, "value": r.value, "status": r.status,
             "time_s": r.time_s, **({"error": r.error} if r.error else {})} for r in res.runs]
    if args.json:
        obj = {
            "instance": inst.name, "k": k,
            "upper_bound": res.upper_bound, "lower_bound": res.lower_bound,
            "gap": res.gap, "upper_method": res.upper_method,
            "lower_method": res.lower_method,
            "partition": None if res.partition is None else res.partition.to_json(inst),
            "partition_file": str(out_path) if res.partition is not None else None,
            "runs": runs, "time_s": res.elapsed_s, "interrupted": res.interrupted,
        }
        print(json.dumps(obj, indent=1))
    else:
        print(f"best partition: {fmt(res.upper_bound)}  ({res.upper_method})")
        print(f"lower bound:    {fmt(res.lower_bound)}  ({res.lower_method})")
        print(f"certified gap:  {_pct(res.gap)}   ({res.elapsed_s:.1f} s)")
        if res.partition is not None:
            # k > n: at most n stages are used (the portfolio solves with min(k, n))
            shown = restrict_partition(res.partition, effective_k(inst, k))
            sc = stage_costs(inst, shown)
            counts = [len(s) for s in shown.stages()]
            rows = [[b, counts[b], float(sc.work[b]), float(sc.comm_in[b]),
                     float(sc.comm_out[b]), float(sc.total[b])] for b in range(shown.k)]
            print()
            print(format_table(rows, ["stage", "nodes", "work", "comm in", "comm out",
                                      "total"]))
            if shown.k < k:
                print(f"stages {shown.k}..{k - 1}: empty")
        print()
        print(format_table([[r["method"], r["role"], r["value"], r["status"],
                             f"{r['time_s']:.3f}"] for r in runs],
                           ["method", "role", "value", "status", "time s"], align="llrlr"))
        if res.partition is not None:
            print(f"\npartition written to {out_path}")
    if res.interrupted:
        print(f"pipecert: interrupted after {res.elapsed_s:.1f} s; the result is the best "
              "found before the stop", file=err)
        return 130
    if res.partition is None:
        print("pipecert: no feasible partition found", file=err)
        return 1
    return 0
