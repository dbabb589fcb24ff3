"""``pipecert convert IN OUT``: convert a graph between formats."""

from __future__ import annotations

import argparse

from experiments.cli._common import add_instance_options, load_instance

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
    print(f"wrote {args.output} ({inst.n_nodes} nodes, {inst.n_edges} data edges, "
          f"{inst.n_precedence_edges} precedence edges)")
    return 0
