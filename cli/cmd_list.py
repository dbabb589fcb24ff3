"""``pipecert list``: the registered formulations, heuristics and graph formats.

Every method shows its capabilities on the constrained variants (docs/constraints.md,
:meth:`pipecert.registry.Method.capabilities`), one column per constraint: ``yes`` (modelled
exactly), ``relaxed`` (a lower bound that ignores the constraint and stays valid) or ``no``
(the method answers ``unsupported`` on an instance where the constraint is active). JSON rows
carry them as ``capabilities``.
"""

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
                         "params": cls.param_defaults(), "exact": cls.exact,
                         "capabilities": cls.capabilities()})
    if what in ("all", "heuristics"):
        from heuristics import HEURISTICS

        for name, hcls in HEURISTICS.items():
            rows.append({"kind": "heuristic", "name": name, "summary": hcls.summary(),
                         "params": hcls.param_defaults(), "deterministic": hcls.deterministic,
                         "capabilities": hcls.capabilities()})
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
    from pipecert.instance import CONSTRAINTS

    width = max((len(str(r["name"])) for r in rows), default=4)
    heads = [_HEAD.get(c, c) for c in CONSTRAINTS]
    cw = [max(len(h), len("relaxed")) for h in heads]
    kind = None
    for r in rows:
        caps = r.get("capabilities")
        if r["kind"] != kind:
            kind = r["kind"]
            print(f"\n{kind}s:" if kind != "heuristic" else "\nheuristics:")
            if isinstance(caps, dict):
                print(f"  {''.ljust(width)}  " + "  ".join(h.ljust(w) for h, w in zip(heads, cw)))
        if isinstance(caps, dict):
            cells = "  ".join(str(caps.get(c, "no")).ljust(w) for c, w in zip(CONSTRAINTS, cw))
            print(f"  {str(r['name']).ljust(width)}  {cells}  {r['summary']}")
        else:
            print(f"  {str(r['name']).ljust(width)}  {r['summary']}")
    if any(isinstance(r.get("capabilities"), dict) for r in rows):
        print("\nconstraints (docs/constraints.md): yes = modelled exactly, relaxed = a valid "
              "bound that ignores it, no = 'unsupported' where it is active")
    return 0


#: Column heads of the capability columns.
_HEAD = {"groups": "groups", "memory": "memory", "data_only_edges": "data-only"}
