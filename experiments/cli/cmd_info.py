"""``pipecert info FILE``: size, costs and shape of a graph."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from experiments.cli._common import add_instance_options, fmt, load_instance

COMMAND = "info"
HELP = "show the size, total costs and shape of a graph file or bundled instance"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="graph file (any supported format) or bundled id SUITE/NAME")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_instance_options(parser)


def describe(spec: str, args: argparse.Namespace) -> dict[str, Any]:
    """The facts ``pipecert info`` prints, as a dict."""
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
        "input_work": inst.metadata.get("input_work"),
        "input_work_zeroed": inst.metadata.get("input_work_zeroed"),
        "load_time_s": load_s,
    }
    return info


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


def run(args: argparse.Namespace) -> int:
    info = describe(args.file, args)
    if args.json:
        print(json.dumps(info, indent=1, allow_nan=True))
        return 0
    print(f"{args.file}")
    w = max(len(lab) for _, lab in _LABELS) + 1
    for key, lab in _LABELS:
        if info[key] is None:
            continue
        print(f"  {(lab + ':').ljust(w)} {fmt(info[key])}")
    zeroed = info["input_work_zeroed"]
    if zeroed:
        items = ", ".join(f"{k} ({fmt(v)})" for k, v in zeroed.items())
        print(f"  {'input work:'.ljust(w)} zeroed on {items}; --keep-input-work keeps it")
    print(f"  {'load time:'.ljust(w)} {info['load_time_s'] * 1000:.1f} ms")
    return 0
