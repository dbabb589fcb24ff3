"""``pipecert solve``: partition one graph into k stages and prove how good the split is.

Output: the best partition's value (an upper bound), the best proven lower bound and the
certified gap, with their units and the cost model that priced the graph; a per-stage table;
one row per method run with its status (and the reason when a step did not apply, failed or
was skipped); a status legend. ``--json`` prints the same as one object.

Constrained instances (docs/constraints.md): the header names the problem solved (the
active constraints: co-location groups with their counts, data-only edges, the memory cap
with its unit and the fewest stages it allows); ``--memory-limit SIZE|none`` replaces the
instance's cap and ``--relax groups,memory`` solves the relaxed problem (stated as such).
Portfolio steps whose method does not support the variant are left out and listed in one
line (named explicitly with ``--heuristic``/``--bound``, they run and say ``unsupported``).
A proven infeasible ``(instance, k)`` prints ``infeasible: <proof>`` and exits with
:data:`EXIT_INFEASIBLE` (``"status": "infeasible"`` and ``"infeasible_reason"`` under
``--json``); a search that ends without a partition and without a proof exits 1.

The partition file (``-o``, default ``MODEL-kK.partition.json``) carries its provenance
(:mod:`pipecert.partition_file`). Its path is checked before any work (exit 2 if it cannot be
written). The default name never replaces the partition of another graph: if that file
exists and was written for a graph of another structure (or is not a partition file of this
graph), the partition goes to ``MODEL-kK-FINGERPRINT.partition.json`` instead (the graph's
structure fingerprint, 8 hex digits) and a note on stderr says so. A partition of the same
graph is overwritten. ``-o FILE`` always writes FILE.
"""

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


def _epilog() -> str:
    from cli._common import status_legend

    return ("statuses of the method runs:\n" + "\n".join(f"  {ln}" for ln in status_legend())
            + "\n\nexit codes: 0 done, 1 no feasible partition found (not proven "
              "infeasible), 2 bad input or unwritable output, 3 proven infeasible (no "
              "partition into k stages meets the constraints; 'infeasible: <proof>' is "
              "printed), 130 interrupted (the best result so far is printed and written)")


EPILOG = _epilog()

#: Exit code of a proven infeasible (instance, k): no partition meets the constraints.
EXIT_INFEASIBLE = 3

#: Solver back-ends whose installed versions go into the partition file (when installed).
SOLVER_PACKAGES = ("highspy", "ortools", "scipy", "cvxpy", "pyscipopt", "gurobipy", "numba")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, k, the portfolio and its budget, output options."""
    from cli._common import add_instance_options, add_variant_options

    p.add_argument("model", metavar="MODEL",
                   help="graph file (any supported format) or bundled id SUITE/NAME")
    p.add_argument("-k", required=True, metavar="K",
                   help="number of pipeline stages (an integer >= 1; k > nodes costs no more "
                        "than k = nodes)")
    p.add_argument("--time-limit", type=float, default=30.0, metavar="S",
                   help="total seconds, finite and > 0 (default 30)")
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
                   help="partition file to write (default MODEL-kK.partition.json; never "
                        "replaces the partition of another graph, see below)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_instance_options(p)
    add_variant_options(p)


#: Seconds ``solve`` waits at the end for solver threads it stopped (then leaves at once).
_EXIT_JOIN_S = 1.0


def _default_output(model: str, k: int) -> Path:
    name = Path(model).name
    for suffix in (".gz", ".json", ".txt", ".pbtxt", ".onnx", ".graph"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return Path(f"{name}-k{k}.partition.json")


def _same_graph(path: Path, inst: Any) -> bool:
    """True if ``path`` holds a partition file of a graph with ``inst``'s structure (an old
    file without a fingerprint: if its stages are exactly ``inst``'s nodes)."""
    from pipecert.errors import InputError
    from pipecert.partition_file import PartitionFile

    try:
        pf = PartitionFile.read(path)
        if pf.structure_fingerprint is not None:
            return pf.structure_fingerprint == inst.structure_fingerprint
        pf.partition(inst)
        return True
    except InputError:
        return False


def choose_output(args: argparse.Namespace, inst: Any, k: int) -> tuple[Path, str | None]:
    """The partition file to write and a note when the default name was taken.

    ``-o`` is used as given. The default name is used unless it holds the partition of
    another graph; then ``NAME-kK-FP8.partition.json`` (FP8: the first 8 hex digits of the
    structure fingerprint; ``-2``, ``-3`` ... appended in the unlikely case that is taken too).
    """
    if args.output:
        return Path(args.output), None
    path = _default_output(args.model, k)
    if not path.exists() or _same_graph(path, inst):
        return path, None
    stem = path.name[: -len(".partition.json")]
    fp = inst.structure_fingerprint[:8]
    for i in range(1, 1000):
        alt = path.with_name(f"{stem}-{fp}{'' if i == 1 else f'-{i}'}.partition.json")
        if not alt.exists() or _same_graph(alt, inst):
            return alt, (f"pipecert: note: {path} holds a partition of another graph; "
                         f"writing {alt} instead (pass -o to choose)")
    from pipecert.errors import InputError

    raise InputError(f"{path} and its alternatives hold partitions of other graphs; pass -o")


def solver_versions(solver: str | None) -> dict[str, str]:
    """``--solver`` (when given) and the installed versions of :data:`SOLVER_PACKAGES`."""
    from importlib import metadata

    out: dict[str, str] = {}
    if solver:
        out["--solver"] = solver
    for pkg in SOLVER_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _pct(g: float | None) -> str:
    return "-" if g is None else f"{100 * g:.2f}%"


def stage_rows(inst: Any, part: Any) -> tuple[list[list[Any]], str | None]:
    """Rows ``[stage, nodes, work, comm in, comm out, total]`` and a note on the stages not
    shown. All ``k`` stages when ``k <= n``; otherwise only the non-empty ones (memory and
    time stay O(n) for any k) and a line saying which stages are empty."""
    from pipecert.partition import stage_costs

    sc = stage_costs(inst, part)
    counts = [len(s) for s in part.stages()]
    stages = sc.stages.tolist()
    rows = [[stages[j], counts[j], float(sc.work[j]), float(sc.comm_in[j]),
             float(sc.comm_out[j]), float(sc.total[j])] for j in range(len(stages))]
    if part.k <= inst.n_nodes:
        return rows, None
    rows = [r for r in rows if r[1] > 0]
    shown = [r[0] for r in rows]
    if shown == list(range(len(shown))):
        note = f"stages {len(shown)}..{part.k - 1}: empty"
    else:
        note = f"the other {part.k - len(shown)} of {part.k} stages are empty"
    return rows, note


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
    from cli._common import (
        check_writable,
        fmt,
        load_instance,
        nonnegative_fraction,
        parse_k,
        positive_seconds,
        units_line,
    )
    from experiments.variants import variant_lines
    from pipecert import cancel
    from pipecert.errors import InputError
    from portfolio import build_plan, plan_for, solve, warm_up

    k = parse_k(args.k)
    positive_seconds(args.time_limit, "--time-limit")
    nonnegative_fraction(args.target_gap, "--target-gap")
    if args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.output:
        check_writable(Path(args.output))
    try:
        inst = load_instance(args.model, args)
    except RecursionError:  # a reader recursing on deeply nested input
        raise InputError("input nested too deeply to read", source=args.model) from None
    plan = build_plan(args.heuristic, args.bound)
    out_path, note = choose_output(args, inst, k)
    if not args.output:
        check_writable(out_path)
    err = sys.stderr
    if note:
        print(note, file=err)
    t0 = time.monotonic()
    tty = err.isatty()
    unit = "" if inst.time_unit == "unspecified" else f" {inst.time_unit}"

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

    explicit = bool(args.heuristic or args.bound)
    runnable = plan if explicit else plan_for(plan, inst)
    infeasible = inst.infeasible_reason(min(k, inst.n_nodes))
    if not args.quiet:
        steps = ("proven infeasible, no step runs" if infeasible is not None
                 else f"{len(runnable)} steps")
        print(f"{inst.name}: {inst.n_nodes} nodes, {inst.n_edges} edges, k={k}, "
              f"time limit {fmt(args.time_limit)} s, {steps}; {units_line(inst)}", file=err)
        for line in variant_lines(inst):
            print(line, file=err)
    # solvers may print banners on fd 1: keep stdout clean for the result (and --json)
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        # compile (or load from numba's cache) every kernel of the plan before the clock
        # starts, so the budget is spent solving
        secs, compiled = (0.0, False) if infeasible is not None else \
            warm_up(runnable, solver=args.solver)
        if compiled and not args.quiet:
            print(f"compiling kernels (first run only) ... {secs:.1f} s", file=err)
        t0 = time.monotonic()
        res = solve(inst, k, time_limit_s=args.time_limit, plan=plan, solver=args.solver,
                    seed=args.seed, target_gap=args.target_gap, threads=args.threads,
                    on_event=on_event, skip_unsupported=not explicit)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    with cancel.handle_signals(escalate=False):  # never cut the output half-way
        return _report(args, inst, k, res, out_path, unit)


def _report(args: argparse.Namespace, inst: Any, k: int, res: Any, out_path: Path,
            unit: str) -> int:
    """Write the partition file and print the result; the exit code."""
    from cli._common import (
        describe_cost_model,
        first_line,
        fmt,
        format_table,
        status_legend,
        status_meanings,
        units_json,
        units_line,
    )
    from experiments.variants import variant_json, variant_lines
    from pipecert.instance import CONSTRAINT_NAMES
    from pipecert.partition_file import json_safe, partition_json, write_partition_json

    err = sys.stderr
    variant = variant_json(inst, min(k, inst.n_nodes))
    if res.infeasible is not None:
        variant["infeasible_reason"] = res.infeasible
    active = inst.constraints

    part = res.partition
    if part is not None and part.k != k:
        part = part.with_k(max(k, part.k))  # methods may solve with min(k, n) stages
    provenance = dict(graph_path=args.model, lower_bound=res.lower_bound,
                      found_by=res.upper_method, proved_by=res.lower_method,
                      solvers=solver_versions(args.solver), seed=args.seed,
                      time_s=res.elapsed_s)
    write_error = None
    pobj = None if part is None else partition_json(part, inst, **provenance)
    if pobj is not None:
        # the problem the partition solves: partition_json records the constraints, cap,
        # stage memory and feasibility; add the variant's name, unit and counts
        pobj["variant"] = {**pobj.get("variant", {}), **{key: variant[key] for key in (
            "name", "constraints", "memory_limit", "memory_unit", "groups",
            "data_only_edges")}}
        try:
            write_partition_json(out_path, pobj)
        except OSError as exc:  # checked before the work; the result is printed anyway
            write_error = f"{out_path}: cannot write the partition file ({exc.strerror})"
    written = part is not None and write_error is None
    runs: list[dict[str, Any]] = [
        {"method": r.method, "role": r.role, "value": r.value, "status": r.status,
         "time_s": r.time_s, "reason": first_line(r.error),
         "relaxed": _relaxed(r, active),
         **({"error": r.error} if r.error else {})} for r in res.runs]
    cm = inst.cost_model
    if res.infeasible is not None:
        status = "infeasible"
    elif part is None:
        status = "no_partition"
    elif res.closed:
        status = "optimal"
    else:
        status = "gap_open"
    if args.json:
        obj = {
            "instance": inst.name, "k": k, "status": status,
            "infeasible_reason": res.infeasible, "variant": variant,
            "upper_bound": res.upper_bound, "lower_bound": res.lower_bound,
            "gap": res.gap, "upper_method": res.upper_method,
            "lower_method": res.lower_method,
            "units": units_json(inst),
            "cost_model": cm, "costs": describe_cost_model(cm) if cm else "as given",
            "partition": pobj,
            "partition_file": str(out_path) if written else None,
            "runs": runs, "time_s": res.elapsed_s, "interrupted": res.interrupted,
            "not_applicable": [{"method": m, "reason": first_line(why)}
                               for m, why in res.not_applicable],
            "status_meanings": status_meanings([r["status"] for r in runs]),
        }
        print(json.dumps(json_safe(obj), indent=1, allow_nan=False))
    elif res.infeasible is not None:
        print(f"infeasible: {res.infeasible}")
        print(f"(no partition of {inst.name} into {k} stages satisfies the constraints; "
              "proven, not a search that gave up)")
        print(units_line(inst))
        for line in variant_lines(inst):
            print(line)
    else:
        print(f"best partition: {fmt(res.upper_bound)}{unit}  ({res.upper_method})")
        print(f"lower bound:    {fmt(res.lower_bound)}{unit}  ({res.lower_method})")
        print(f"certified gap:  {_pct(res.gap)}   ({res.elapsed_s:.1f} s)")
        if res.closed and part is not None:
            what = ", ".join(CONSTRAINT_NAMES[c] for c in sorted(active))
            relaxed_variant = "relax=" in variant["name"]
            if relaxed_variant:
                print(f"proved optimal for the relaxed problem ({variant['name']}): a lower "
                      "bound of the problem the file gives, not its answer")
            else:
                print("proved optimal" + (f" for the constrained problem ({what})"
                                          if what else ""))
        print(units_line(inst))
        for line in variant_lines(inst):
            print(line)
        if part is not None:
            rows, empty_note = stage_rows(inst, part)
            print()
            print(format_table(rows, ["stage", "nodes", "work", "comm in", "comm out",
                                      "total"]))
            if empty_note:
                print(empty_note)
        print()
        reasons = [first_line(r["reason"], 70) or "" for r in runs]
        headers = ["method", "role", "value", "status", "time s"]
        table = [[r["method"], r["role"], r["value"], r["status"], f"{r['time_s']:.3f}"]
                 for r in runs]
        if any(reasons):  # why a step did not apply, failed or was skipped
            headers.append("reason")
            table = [row + [why] for row, why in zip(table, reasons)]
        if table:
            print(format_table(table, headers, align="llrlrl"[: len(headers)]))
        relaxed = {r["method"]: r["relaxed"] for r in runs if r["relaxed"]}
        if relaxed:
            print("bounds of a relaxation (valid lower bounds; each ignores a constraint): "
                  + ", ".join(f"{m} (ignores {'+'.join(c)})" for m, c in relaxed.items()))
        if res.not_applicable:
            print("not run (no support for this variant, see `pipecert list`): "
                  + ", ".join(m for m, _ in res.not_applicable))
        if runs:
            print("\n" + "\n".join(status_legend([r["status"] for r in runs])))
        if written:
            print(f"\npartition written to {out_path}")
    if write_error:
        print(f"pipecert: error: {write_error}", file=err)
        return 2
    if res.interrupted:
        print(f"pipecert: interrupted after {res.elapsed_s:.1f} s; the result is the best "
              "found before the stop", file=err)
        return 130
    if res.infeasible is not None:
        if args.json:
            print(f"pipecert: infeasible: {res.infeasible}", file=err)
        return EXIT_INFEASIBLE
    if part is None:
        print("pipecert: no feasible partition found (not proven infeasible)", file=err)
        return 1
    return 0


def _relaxed(run: Any, active: frozenset[str]) -> list[str]:
    """The active constraints a bound run ignored (its class ``relaxes`` them)."""
    if run.role != "bound" or not active:
        return []
    from formulations import FORMULATIONS
    from pipecert.registry import parse_method_spec

    name = parse_method_spec(run.method)[0]
    if name not in FORMULATIONS:
        return []
    cls = FORMULATIONS.get(name)
    return sorted((active & cls.relaxes) - cls.handles)
