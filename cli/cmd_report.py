"""``pipecert report``: the metrics of docs/theory/paper.md#metrics from a results store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

COMMAND = "report"
HELP = "report a results store: GM bound/best partition per k and method, per-instance tables"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """DB, output format and an optional directory for every format."""
    p.add_argument("db", help="results database (results/NAME/results.sqlite)")
    p.add_argument("--format", choices=("md", "csv", "tex"), default="md",
                   help="what to print (md: markdown tables; csv: the per-k tables; tex)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="also write report.md, report.tex and the CSV files to DIR")
    p.add_argument("--no-instances", action="store_true", help="omit the per-instance table")
    p.add_argument("--gaps", action="store_true",
                   help="print only the table of problems (variant, constraints) and certified "
                        "gaps per k, 'infeasible' where proven (markdown; the README's "
                        "training table)")
    p.add_argument("--table", choices=("bounds", "heuristics", "spine"), default=None,
                   help="print only one research table of docs/results (markdown): bounds "
                        "(bound / best partition per method and k), heuristics (value / "
                        "best value, brkga vs the DP optimum, local search) or spine (paper "
                        "vs min-cut bounds); see experiments/tables.py")


def run(args: argparse.Namespace) -> int:
    """Print the report; write files with ``-o``."""
    import csv
    from dataclasses import asdict

    from experiments.report import build_report, gap_table, to_latex, to_markdown, write_all
    from experiments.store import ResultsStore

    if args.table:
        from experiments.tables import TABLES

        with ResultsStore(args.db, readonly=True) as store:
            sys.stdout.write(TABLES[args.table](store))
        return 0
    with ResultsStore(args.db, readonly=True) as store:
        rep = build_report(store)
    if args.gaps:
        sys.stdout.write(gap_table(rep))
    elif args.format == "md":
        sys.stdout.write(to_markdown(rep, per_instance=not args.no_instances))
    elif args.format == "tex":
        sys.stdout.write(to_latex(rep, per_instance=not args.no_instances))
    else:
        rows = [{"role": "bound", **asdict(b)} for b in rep.summary.bounds] + \
               [{"role": "heuristic", **asdict(h)} for h in rep.summary.heuristics]
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        w = csv.DictWriter(sys.stdout, fieldnames=keys or ["empty"])
        w.writeheader()
        w.writerows(rows)
    if args.out:
        paths = write_all(rep, Path(args.out))
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0
