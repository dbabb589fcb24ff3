"""``pipecert convert IN OUT``: convert a graph between formats.

Everything the instance holds is written: groups, memory, the memory cap and data-only
edges (native JSON holds all; dnn-partitioning refuses what it cannot hold). ``--training``
builds the training graph of a PipeDream profile (see :mod:`instances.formats.pipedream`).
"""

from __future__ import annotations

import argparse

from cli._common import add_instance_options, load_instance

COMMAND = "convert"
HELP = "convert a graph file (e.g. PipeDream, REGAL) to native JSON (.json, .json.gz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from instances import FORMATS

    writable = [n for n, cls in FORMATS.items() if cls.writable]
    parser.add_argument("input", metavar="IN", help="graph file or bundled id SUITE/NAME")
    parser.add_argument("output", metavar="OUT", help="output file")
    parser.add_argument("--format", "--to", dest="out_format", choices=writable, default=None,
                        help="output format (default from the name: .json / .json.gz = "
                             "native)")
    add_instance_options(parser, format_flag="--from")


def run(args: argparse.Namespace) -> int:
    from instances import write_instance

    inst = load_instance(args.input, args)
    write_instance(inst, args.output, format=args.out_format)
    extra = ""
    if inst.n_data_only_edges:
        extra += f" ({inst.n_data_only_edges} data-only)"
    print(f"wrote {args.output} ({inst.n_nodes} nodes, {inst.n_edges} data edges{extra}, "
          f"{inst.n_precedence_edges} precedence edges"
          + (f", {inst.n_units} units" if "groups" in inst.constraints else "") + ")")
    return 0
