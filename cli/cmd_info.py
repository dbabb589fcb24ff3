"""``pipecert info FILE``: size, costs and shape of a graph, and its constraints.

The constraints (docs/constraints.md) are printed as the problem solved: co-location groups
(how many, over how many nodes, the units they make), ordering vs data-only edges, the memory
cap with its unit, and the range of ``k`` proven infeasible by the cap
(:meth:`pipecert.Instance.infeasible_reason`: every ``k`` below the fewest stages the total
memory needs, or every ``k`` when a unit alone exceeds the cap). ``--memory-limit`` and
``--relax`` show another variant. ``--json`` carries the same as ``variant`` and
``infeasible_k``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from cli._common import (
    add_instance_options,
    add_variant_options,
    fmt,
    load_instance,
)
from experiments.variants import min_stages, variant_json, variant_lines

COMMAND = "info"
HELP = "show the size, total costs and shape of a graph file or bundled instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="graph file (any supported format) or bundled id SUITE/NAME")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_instance_options(parser)
    add_variant_options(parser)


def describe(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """The facts ``pipecert info`` prints, as a dict."""
    return _describe(spec, args)[0]


def _describe(spec: str, args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    from instances import detect_format

    t0 = time.perf_counter()
    inst = load_instance(spec, args)
    load_s = time.perf_counter() - t0
    if getattr(args, "in_format", None):
        fmt_name = args.in_format
    elif Path(spec).is_file():
        f = detect_format(spec)
        fmt_name = f.name if f else "?"
    else:
        fmt_name = "native (bundled)"
    info: dict[str, Any] = {
        "file": spec,
        "name": inst.name,
        "format": fmt_name,
        "nodes": inst.n_nodes,
        "data_edges": inst.n_edges,
        "precedence_edges": inst.n_precedence_edges,
        "total_work": inst.total_work,
        "total_comm": inst.total_comm,
        "comm_work_ratio": inst.comm_work_ratio,
        "longest_path_work": inst.longest_path(),
        "width_estimate": inst.width_estimate(),
        "suggested_k": inst.suggested_k,
        "memory_limit": inst.memory_limit,
        "total_memory": None if inst.memory is None else float(inst.memory.sum()),
        "units": inst.units,
        "time_unit": inst.time_unit,
        "memory_unit": inst.memory_unit,
        "cost_model": cost_model_summary(inst),
        "input_work": inst.metadata.get("input_work", "as in the file"),
        "input_work_zeroed": inst.metadata.get("input_work_zeroed"),
        "load_time_s": load_s,
        "variant": variant_json(inst),
        "infeasible_k": infeasible_k(inst),
    }
    return info, inst


def infeasible_k(inst: Any) -> dict[str, Any]:
    """The ``k`` proven infeasible by the memory cap: ``{"all": bool, "below": int | None,
    "reason": str | None}`` (``below = m``: every ``k < m``; None: no ``k`` is proven
    infeasible). Larger ``k`` are not proven feasible: the exact DP decides."""
    ms = min_stages(inst)
    if ms is None or ms == 1:
        return {"all": False, "below": None, "reason": None}
    if ms == 0:
        return {"all": True, "below": None, "reason": inst.infeasible_reason(inst.n_nodes)}
    return {"all": False, "below": ms, "reason": inst.infeasible_reason(ms - 1)}


def cost_model_summary(inst: Any) -> dict[str, Any] | None:
    """What priced the costs (model, hardware, whether it was the default, dtype, batch
    size), or None when the costs come from the file as given."""
    cm = inst.cost_model
    if cm is None:
        return None
    hw = cm.get("hardware")
    name = cm.get("hardware_name") or (hw.get("name") if isinstance(hw, dict) else hw)
    return {
        "kind": cm.get("kind"),
        "hardware": name,
        "hardware_default": cm.get("hardware_default"),
        "compute_dtype": cm.get("compute_dtype"),
        "batch_size": cm.get("batch_size", inst.metadata.get("batch_size")),
        "importer": cm.get("importer", inst.metadata.get("importer")),
    }


def cost_model_line(summary: dict[str, Any]) -> str:
    """One line describing :func:`cost_model_summary` for people."""
    hw = str(summary.get("hardware") or "?")
    if summary.get("hardware_default"):
        hw += " (the default; --hardware changes it)"
    dtype = summary.get("compute_dtype") or "as traced"
    batch = summary.get("batch_size")
    return (f"{summary.get('kind') or 'model'} on {hw}, dtype {dtype}, batch size "
            f"{batch if batch is not None else 'as in the model'}")


_LABELS = [
    ("name", "name"),
    ("format", "format detected"),
    ("nodes", "nodes"),
    ("data_edges", "data edges"),
    ("precedence_edges", "precedence edges"),
    ("total_work", "total work"),
    ("total_comm", "total comm"),
    ("comm_work_ratio", "comm/work ratio"),
    ("longest_path_work", "longest path (work)"),
    ("width_estimate", "width estimate"),
    ("suggested_k", "suggested k"),
    ("memory_limit", "memory limit"),
    ("total_memory", "total memory"),
]


_TIME_KEYS = ("total_work", "total_comm", "longest_path_work")


def run(args: argparse.Namespace) -> int:
    info, inst = _describe(args.file, args)
    if args.json:
        print(json.dumps(info, indent=1, allow_nan=True))
        return 0
    print(f"{args.file}")
    w = max(len(lab) for _, lab in _LABELS) + 1
    units = info["units"]
    for key, lab in _LABELS:
        if info[key] is None:
            continue
        unit = ""
        if key in ("total_work", "longest_path_work"):
            unit = f" {units['work']}"
        elif key == "total_comm":
            unit = f" {units['comm']}"
        elif key in ("total_memory", "memory_limit"):
            unit = f" {units['memory']}"
        print(f"  {(lab + ':').ljust(w)} {fmt(info[key])}{unit}")
    print(f"  {'units:'.ljust(w)} work {units['work']}, comm {units['comm']}, "
          f"memory {units['memory']}")
    if info["cost_model"] is not None:
        print(f"  {'cost model:'.ljust(w)} {cost_model_line(info['cost_model'])}")
    else:
        print(f"  {'cost model:'.ljust(w)} none (costs as given in the file)")
    zeroed = info["input_work_zeroed"]
    if info["input_work"] == "zeroed":
        pairs = list((zeroed or {}).items())
        items = ", ".join(f"{k} ({fmt(v)})" for k, v in pairs[:10]) or "no node"
        if len(pairs) > 10:
            items += f" and {len(pairs) - 10} more (--json lists them all)"
        print(f"  {'input work:'.ljust(w)} zeroed on {items} (--zero-input-work)")
    else:
        print(f"  {'input work:'.ljust(w)} as in the file (--zero-input-work zeroes it)")
    print(f"  {'load time:'.ljust(w)} {info['load_time_s'] * 1000:.1f} ms")
    for line in variant_lines(inst):
        print(f"  {line}")
    ik = info["infeasible_k"]
    if ik["all"]:
        print(f"  infeasible for every k: {ik['reason']}")
    elif ik["below"] is not None:
        print(f"  infeasible for k < {ik['below']} (proven: {ik['reason']} at "
              f"k = {ik['below'] - 1}); k >= {ik['below']} is not excluded by the cap alone")
    return 0

