"""``pipecert results``: check or export a results store."""

from __future__ import annotations

import argparse
import sys

COMMAND = "results"
HELP = ("check a results store (re-derive every stored status and value: partitions "
        "re-scored, bounds against every partition, statuses against values) or export it")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Sub-actions ``check`` and ``export``."""
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="re-score every stored partition with the reference "
                       "cost; check every bound against every partition of its graph and k, "
                       "every status against its values; list unreadable values; one line "
                       "per finding, exit 1 if any")
    c.add_argument("db")
    e = sub.add_parser("export", help="export every run to CSV or Parquet (by suffix)")
    e.add_argument("db")
    e.add_argument("-o", "--out", required=True, metavar="FILE",
                   help="FILE.csv or FILE.parquet")


def run(args: argparse.Namespace) -> int:
    """Exit code 1 when the check finds something; 2 when the store cannot be opened."""
    from experiments.store import ResultsStore

    with ResultsStore(args.db, readonly=True) as store:
        if args.action == "check":
            rep = store.check()
            for line in rep.problems:
                print(line)
            verdict = "OK" if rep.ok else f"FAILED: {len(rep.problems)} finding(s)"
            print(f"{args.db}: {rep.n_runs} runs, {rep.n_partitions} partitions re-scored, "
                  f"{rep.n_bounds} bounds checked: {verdict}")
            return 0 if rep.ok else 1
        path = store.export(args.out)
        print(f"wrote {len(store)} runs to {path}", file=sys.stderr)
        return 0
