"""``pipecert figures``: figures A-D and tables 1-2 (docs/theory/paper.md#figures) from a store."""

from __future__ import annotations

import argparse
import sys

COMMAND = "figures"
HELP = "write figures A-D (PNG, PDF) and tables 1-2 (md, tex, csv) of a results store"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """DB and output directory."""
    p.add_argument("db", help="results database")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory")


def run(args: argparse.Namespace) -> int:
    """Write every figure and table; print their paths."""
    import matplotlib

    matplotlib.use("Agg")
    from experiments.store import ResultsStore
    from paper_figures import make_all

    with ResultsStore(args.db, readonly=True) as store:
        paths = make_all(store, args.out)
    for p in paths:
        print(p)
    print(f"{len(paths)} files in {args.out}", file=sys.stderr)
    return 0
