"""``pipecert evaluate FILE PARTITION -k K``: score a partition with the reference cost.

Exit codes: 0 the partition is feasible for ``k``; 1 it parses and covers the graph but is
infeasible (a backward edge, too many stages, ...): the per-stage costs are still printed
(they are defined for any node split) and every violation goes to stderr; 2 bad input (a
graph or partition file that does not parse, an unknown or missing node, ``k < 1``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from experiments.cli._common import add_instance_options, format_table, load_instance
from pipecert.instance import validate_k
from pipecert.partition import Partition, check_feasible, stage_costs

COMMAND = "evaluate"
HELP = "score a partition file: per-stage work, comm in/out, total and the bottleneck"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="graph file or bundled id SUITE/NAME")
    parser.add_argument("partition", metavar="PARTITION",
                        help='partition file {"k": K, "stages": [[node id, ...], ...]}')
    parser.add_argument("-k", type=int, required=True, help="number of stages (>= 1)")
    parser.add_argument("--json", action="store_true",
                        help='print {"bottleneck": ..., "stages": [...], ...}')
    parser.add_argument("--check-memory", action="store_true",
                        help="also require every stage to fit the instance's memory limit")
    parser.add_argument("--colocation", action="store_true",
                        help="also require co-location groups to share a stage")
    add_instance_options(parser)


def evaluate_file(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation as a dict (what ``--json`` prints)."""
    k = validate_k(args.k)
    inst = load_instance(args.file, args)
    part = Partition.read(args.partition, inst)
    if part.k < k:
        part = part.with_k(k)
    costs = stage_costs(inst, part)
    problems = check_feasible(
        inst, part, k=k,
        memory_limit=inst.memory_limit if args.check_memory else None,
        colocation=args.colocation,
    )
    if args.check_memory and inst.memory_limit is None:
        problems.append("--check-memory: the instance has no memory limit")
    stages = []
    counts = [len(s) for s in part.stages()]
    for b in range(part.k):
        row: dict[str, Any] = {
            "stage": b,
            "nodes": counts[b],
            "work": float(costs.work[b]),
            "comm_in": float(costs.comm_in[b]),
            "comm_out": float(costs.comm_out[b]),
            "total": float(costs.total[b]),
        }
        if costs.memory is not None:
            row["memory"] = float(costs.memory[b])
        stages.append(row)
    return {
        "instance": inst.name,
        "k": k,
        "bottleneck": costs.bottleneck,
        "bottleneck_stage": costs.bottleneck_stage,
        "feasible": not problems,
        "violations": problems,
        "stages": stages,
    }


def run(args: argparse.Namespace) -> int:
    res = evaluate_file(args)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        headers = ["stage", "nodes", "work", "comm in", "comm out", "total"]
        has_mem = bool(res["stages"]) and "memory" in res["stages"][0]
        if has_mem:
            headers.append("memory")
        rows = []
        for r in res["stages"]:
            row = [r["stage"], r["nodes"], r["work"], r["comm_in"], r["comm_out"], r["total"]]
            if has_mem:
                row.append(r["memory"])
            rows.append(row)
        print(format_table(rows, headers, align="r" * len(headers)))
        print(f"bottleneck: {res['bottleneck']!r} (stage {res['bottleneck_stage']}), "
              f"k = {res['k']}, {'feasible' if res['feasible'] else 'INFEASIBLE'}")
    if res["violations"]:
        print(f"pipecert: {args.partition}: infeasible for k = {res['k']}: "
              f"{len(res['violations'])} violation(s)", file=sys.stderr)
        for p in res["violations"]:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0
