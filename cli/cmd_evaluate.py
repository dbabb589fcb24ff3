"""``pipecert evaluate FILE PARTITION [-k K]``: score a partition with the reference cost.

``k`` is read from the partition file. ``-k`` is optional: when the file states its ``k``, a
different ``-k`` is an error (exit 2; a 4-stage partition is never padded to 8 stages
silently); an old file without ``k`` is checked against ``-k`` (default: its number of stage
lists) and a note says when that adds empty stages. When the file records the structure
fingerprint of another graph, one warning line goes to stderr before the stages are read.

Feasibility is that of the instance's full variant (docs/constraints.md): every ordering
edge goes forward or stays in a stage (data-only edges impose no order), every co-location
group lies in one stage and every stage fits the memory cap. ``--memory-limit SIZE|none``
replaces the cap; ``--relax groups,memory`` checks the relaxed problem instead (the output
says so). ``--check-memory`` and ``--colocation`` (once opt-in) are accepted as no-ops: both
are checked by default.

Exit codes: 0 the partition is feasible for ``k``; 1 it parses and covers the graph but is
infeasible (a backward edge, too many stages, ...): the per-stage costs are still printed
(they are defined for any node split) and every violation goes to stderr; 2 bad input (a
graph or partition file that does not parse, an unknown or missing node, a bad or
disagreeing ``k``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from cli._common import (
    add_instance_options,
    add_variant_options,
    describe_cost_model,
    fmt,
    format_table,
    load_instance,
    parse_k,
    units_json,
    units_line,
)
from pipecert.errors import InputError
from pipecert.instance import Instance
from pipecert.partition import check_feasible, stage_costs
from pipecert.partition_file import PartitionFile, json_safe

COMMAND = "evaluate"
HELP = "score a partition file: per-stage work, comm in/out, total and the bottleneck"
EPILOG = ("exit codes: 0 feasible, 1 infeasible (violations on stderr), 2 bad input "
          "(unreadable file, unknown node, a -k that disagrees with the file)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="graph file or bundled id SUITE/NAME")
    parser.add_argument("partition", metavar="PARTITION",
                        help="partition file (written by pipecert solve, or "
                             '{"k": K, "stages": [[node id, ...], ...]})')
    parser.add_argument("-k", default=None, metavar="K",
                        help="number of stages (default: the file's k); must agree with the "
                             "file's k when it states one")
    parser.add_argument("--json", action="store_true",
                        help='print {"bottleneck": ..., "stages": [...], ...}')
    parser.add_argument("--check-memory", action="store_true",
                        help="(the default now; kept for old scripts) check the memory cap; "
                             "an error if the instance has none")
    parser.add_argument("--colocation", action="store_true",
                        help="(the default now; kept for old scripts) check the groups")
    add_instance_options(parser)
    add_variant_options(parser, relax_help="check the relaxed problem: groups and/or memory "
                                           "not required (data-only edges never order)")


def _resolve_k(pf: PartitionFile, asked: int | None) -> tuple[int, int, str | None]:
    """``(k to check, k of the parsed partition, note)`` from the file and ``-k``.

    Raises :class:`InputError` when ``-k`` disagrees with the file's ``k``.
    """
    lists = len(pf.stages)
    if pf.k is not None:
        if asked is not None and asked != pf.k:
            raise InputError(f"the partition is for k = {pf.k}, but -k {asked} was given "
                             "(omit -k to use the file's k)", source=pf.source)
        return pf.k, pf.k, None
    if asked is None:
        return max(lists, 1), max(lists, 1), None
    note = None
    if asked > lists:
        note = (f"pipecert: note: {pf.source}: the file states no k; its {lists} stage "
                f"list(s) are evaluated as a k = {asked} partition ({asked - lists} empty "
                "stages)")
    return asked, max(asked, lists), note


def evaluate_file(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation as a dict (what ``--json`` prints); warnings go to stderr."""
    return _evaluate(args)[0]


def _evaluate(args: argparse.Namespace) -> tuple[dict[str, Any], Instance]:
    asked = None if args.k is None else parse_k(args.k)
    pf = PartitionFile.read(args.partition)
    k, part_k, note = _resolve_k(pf, asked)
    try:
        inst = load_instance(args.file, args)
    except RecursionError:  # a reader recursing on deeply nested input
        raise InputError("input nested too deeply to read", source=args.file) from None
    warning = pf.structure_mismatch(inst)
    if warning:
        print(f"pipecert: warning: {warning}", file=sys.stderr)
    part = pf.partition(inst, part_k)  # unknown nodes: a one-line error naming the file
    if note:
        print(note, file=sys.stderr)
    costs = stage_costs(inst, part)
    problems = check_feasible(inst, part, k=k)  # the full variant: order, groups, cap
    if args.check_memory and inst.memory_limit is None:
        problems.append("--check-memory: the instance has no memory limit")
    from experiments.variants import variant_json

    variant = variant_json(inst, min(k, inst.n_nodes))
    file_variant = pf.header.get("variant")
    if isinstance(file_variant, dict) and file_variant.get("name") not in (None,
                                                                          variant["name"]):
        print(f"pipecert: note: {args.partition}: written for the variant "
              f"{file_variant.get('name')!r}, evaluated as {variant['name']!r} (pass "
              "--memory-limit/--relax to evaluate that one)", file=sys.stderr)
    stages = []
    counts = [len(s) for s in part.stages()]
    listed = costs.stages.tolist()
    for j, b in enumerate(listed):
        if part.k > inst.n_nodes and counts[j] == 0:
            continue  # k > n: only non-empty stages are listed (memory O(n) for any k)
        row: dict[str, Any] = {
            "stage": b,
            "nodes": counts[j],
            "work": float(costs.work[j]),
            "comm_in": float(costs.comm_in[j]),
            "comm_out": float(costs.comm_out[j]),
            "total": float(costs.total[j]),
        }
        if costs.memory is not None:
            row["memory"] = float(costs.memory[j])
        stages.append(row)
    cm = inst.cost_model
    file_value = pf.header.get("value")
    same_costs = pf.graph.get("fingerprint") == inst.fingerprint
    if (same_costs and isinstance(file_value, int | float) and not math.isclose(
            float(file_value), costs.bottleneck, rel_tol=1e-12, abs_tol=0.0)):
        print(f"pipecert: warning: {args.partition}: the file's value {file_value!r} differs "
              f"from the reference cost {costs.bottleneck!r} of the same graph",
              file=sys.stderr)
    elif (not warning and pf.graph.get("fingerprint") is not None and not same_costs
          and isinstance(file_value, int | float)):
        print(f"pipecert: note: {args.partition}: written for the same graph with other costs "
              f"(other file contents or reader options): its value {file_value!r} is not "
              "this evaluation's", file=sys.stderr)
    return {
        "instance": inst.name,
        "k": k,
        "bottleneck": costs.bottleneck,
        "bottleneck_stage": costs.bottleneck_stage,
        "feasible": not problems,
        "violations": problems,
        "units": units_json(inst),
        "cost_model": cm,
        "costs": describe_cost_model(cm) if cm else "as given",
        "empty_stages_not_listed": k - len(stages) if part.k > inst.n_nodes else 0,
        "variant": variant,
        "checked": _checked(inst),
        "file": {
            "value": file_value if isinstance(file_value, int | float) else None,
            "lower_bound": pf.header.get("lower_bound"),
            "found_by": pf.header.get("found_by"),
            "proved_by": pf.header.get("proved_by"),
            "same_structure": (None if pf.structure_fingerprint is None
                               else pf.structure_fingerprint == inst.structure_fingerprint),
            "same_costs": None if pf.graph.get("fingerprint") is None else same_costs,
        },
        "stages": stages,
    }, inst


def _checked(inst: Instance) -> list[str]:
    """What feasibility means here: ``order`` always, then ``groups``/``memory`` when the
    instance (after ``--relax``/``--memory-limit``) has them."""
    out = ["order"]
    if inst.groups is not None and (inst.groups >= 0).any():
        out.append("groups")
    if inst.memory_limit is not None and inst.memory is not None:
        out.append("memory")
    return out


def run(args: argparse.Namespace) -> int:
    res, inst = _evaluate(args)
    if args.json:
        print(json.dumps(json_safe(res), indent=1, allow_nan=False))
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
        if res["empty_stages_not_listed"]:
            shown = [r["stage"] for r in res["stages"]]
            if shown == list(range(len(shown))):
                print(f"stages {len(shown)}..{res['k'] - 1}: empty")
            else:
                print(f"the other {res['empty_stages_not_listed']} of {res['k']} stages are "
                      "empty")
        unit = res["units"]["time"]
        print(f"bottleneck: {res['bottleneck']!r}"
              f"{'' if unit == 'unspecified' else ' ' + unit} (stage {res['bottleneck_stage']}), "
              f"k = {res['k']}, {'feasible' if res['feasible'] else 'INFEASIBLE'}")
        print(units_line(inst))
        from experiments.variants import variant_lines

        for line in variant_lines(inst):
            print(line)
        lb = res["file"]["lower_bound"]
        if isinstance(lb, int | float) and res["file"]["same_costs"]:
            gap = 0.0 if res["bottleneck"] <= 0 else (res["bottleneck"] - lb) / res["bottleneck"]
            print(f"lower bound in the file: {fmt(float(lb))} ({res['file']['proved_by']}), "
                  f"gap {100 * max(0.0, gap):.2f}%")
    if res["violations"]:
        print(f"pipecert: {args.partition}: infeasible for k = {res['k']}: "
              f"{len(res['violations'])} violation(s)", file=sys.stderr)
        for p in res["violations"]:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0
