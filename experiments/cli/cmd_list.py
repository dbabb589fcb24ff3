"""``pipecert list``: the registered formulations, heuristics and graph formats."""

from __future__ import annotations

import argparse
import json

COMMAND = "list"
HELP = "list registered lower bounds, heuristics and graph formats"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "what", nargs="?", default="all",
        choices=["all", "formulations", "bounds", "heuristics", "formats"],
        help="which registry to list (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _rows(what: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    if what in ("all", "formulations", "bounds"):
        from formulations import FORMULATIONS

        for name, cls in FORMULATIONS.items():
            rows.append({"kind": "bound", "name": name, "summary": cls.summary(),
                         "params": cls.param_defaults(), "exact": cls.exact})
    if what in ("all", "heuristics"):
        from heuristics import HEURISTICS

        for name, hcls in HEURISTICS.items():
            rows.append({"kind": "heuristic", "name": name, "summary": hcls.summary(),
                         "params": hcls.param_defaults(), "deterministic": hcls.deterministic})
    if what in ("all", "formats"):
        from instances.formats import FORMATS

        for name, fcls in FORMATS.items():
            doc = (fcls.__doc__ or "").strip().splitlines()
            rows.append({"kind": "format", "name": name, "summary": doc[0] if doc else "",
                         "extensions": list(getattr(fcls, "extensions", ()))})
    return rows


def run(args: argparse.Namespace) -> int:
    rows = _rows(args.what)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    width = max((len(str(r["name"])) for r in rows), default=4)
    kind = None
    for r in rows:
        if r["kind"] != kind:
            kind = r["kind"]
            print(f"\n{kind}s:" if kind != "heuristic" else "\nheuristics:")
        print(f"  {str(r['name']).ljust(width)}  {r['summary']}")
    return 0
