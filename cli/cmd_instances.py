"""``pipecert instances [SUITE]``: the bundled suites and their instances."""

from __future__ import annotations

import argparse
import json
from typing import Any

from cli._common import format_table

COMMAND = "instances"
HELP = "list the bundled instance suites, or the instances of one suite"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", nargs="?", default=None, metavar="SUITE",
                        help="a suite name (default: list every suite)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from instances import list_suites, suite_manifest

    suites = [args.suite] if args.suite else list_suites()
    data = {s: suite_manifest(s) for s in suites}
    if args.json:
        print(json.dumps(data if not args.suite else data[args.suite], indent=1))
        return 0
    if not args.suite:
        rows = []
        for s, entries in data.items():
            sizes = [e["n_nodes"] for e in entries]
            regimes = sorted({e.get("regime", "?") for e in entries})
            rows.append([s, len(entries), min(sizes, default=0), max(sizes, default=0),
                         ", ".join(regimes)])
        print(format_table(rows, ["suite", "instances", "min nodes", "max nodes", "regimes"],
                           align="lrrrl"))
        print("\n`pipecert instances SUITE` lists a suite; use suite:SUITE or SUITE/NAME as "
              "an instance spec.")
        return 0
    entries = data[args.suite]
    rows = [[e["id"], e["n_nodes"], e["n_edges"], e["total_work"], e["total_comm"],
             _time_unit(e), round(e["comm_work_ratio"], 4), e.get("regime", "")]
            for e in entries]
    print(format_table(rows, ["id", "nodes", "edges", "work", "comm", "unit", "comm/work",
                              "regime"], align="lrrrrlrl"))
    return 0


def _time_unit(entry: dict[str, Any]) -> str:
    """The unit of an entry's work and comm as its manifest states it ("-": not stated)."""
    units = entry.get("units")
    if isinstance(units, str):
        return units
    if isinstance(units, dict):
        work, comm = units.get("work"), units.get("comm")
        if work and comm and work != comm:
            return f"{work}/{comm}"
        return str(work or comm or "-")
    return "-"
