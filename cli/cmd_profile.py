"""``pipecert profile module:factory``: an operator graph whose costs are measured here.

The graph is ``import-torch``'s (same node ids, edges, memory, ``--level layer`` merging);
each node's work is its measured time on ``--device`` (median of ``--repeats`` timed passes
after ``--warmup`` untimed ones, timer overhead subtracted) and each tensor's transfer cost
is its bytes over ``--bandwidth`` or over a bandwidth measured for the device pair. See
:mod:`runtime.profile` for the method.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipecert.errors import InputError

COMMAND = "profile"
HELP = "measure a PyTorch model (module:factory) on this machine into an operator graph"
EPILOG = """\
examples:
  pipecert profile mymodels:mlp --device cpu --batch-size 8 -o mlp.json.gz
  pipecert profile instances.build_models_suite:factory --option model=gpt2 \\
      --batch-size 1 --level layer --threads 1 -o gpt2-measured.json.gz
  pipecert solve mlp.json.gz -k 2

Times are measurements: two runs give different numbers; metadata["cost_model"] records
the device, dtype, threads, method, timer overhead and bandwidth, metadata["profile"] the
quartiles of every operator."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="function returning (module, example_inputs) with real weights; "
                             "the current directory is importable")
    parser.add_argument("-o", "--output", default=None,
                        help="write the graph here (.json or .json.gz); default: only print "
                             "a summary")
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda|cuda:N",
                        help="where to run and time the model (default cpu)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="passed to the factory as batch_size=N")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra factory keyword argument (VALUE parsed as JSON if it can "
                             "be); repeatable")
    parser.add_argument("--level", choices=["operator", "layer"], default="operator",
                        help="one node per operator (default) or per layer (sum of its "
                             "operators' times)")
    parser.add_argument("--layer-depth", type=int, default=1, metavar="D",
                        help="--level layer: as import-torch (default 1)")
    parser.add_argument("--layer-extra", type=int, default=1, metavar="E",
                        help="--level layer: as import-torch (default 1)")
    parser.add_argument("--warmup", type=int, default=2, metavar="W",
                        help="untimed whole passes first (default 2)")
    parser.add_argument("--repeats", type=int, default=10, metavar="R",
                        help="timed passes; a node's time is the median of its R samples "
                             "(default 10)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="BYTES_PER_S",
                        help="bytes/s between stages (default: measured for the device "
                             "pair)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch.set_num_threads(N) before measuring (default: torch's)")
    parser.add_argument("--name", default=None, help="instance name (default: the factory)")


def run(args: argparse.Namespace) -> int:
    from cli._common import check_measurement_args
    from cli.cmd_import_torch import _parse_option
    from instances import write_instance

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    check_measurement_args(args)
    options = dict(_parse_option(o) for o in args.option)
    from runtime.profile import profile_factory, resolve_device

    resolve_device(args.device)  # a bad device fails before the factory runs
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    inst = profile_factory(args.factory, batch_size=args.batch_size, options=options,
                           name=args.name, device=args.device, level=args.level,
                           layer_depth=args.layer_depth, layer_extra=args.layer_extra,
                           warmup=args.warmup, repeats=args.repeats,
                           bandwidth=args.bandwidth)
    cm = inst.metadata["cost_model"]
    prof = inst.metadata["profile"]
    totals = inst.metadata.get("totals", {})
    print(f"{inst.name}: {inst.n_nodes} nodes ({totals.get('operators', 0)} operators), "
          f"{inst.n_edges} data edges, level {args.level}")
    print(f"  measured on {cm['device_name']} ({cm['device']}), {cm['dtype']}, batch size "
          f"{args.batch_size or 'as the factory makes it'}, torch {cm['torch_version']}")
    print(f"  {args.warmup} warm-up + {args.repeats} timed passes, median per operator; "
          f"timer overhead {cm['timer_overhead_us']:.3g} us subtracted")
    bw = cm["bandwidth"]
    print(f"  bandwidth {bw['GBps']:.4g} GB/s ({bw['source']}"
          + (f": {bw['path']}" if "path" in bw else "") + ")")
    print(f"  total work {inst.total_work:.6g} us (pass total IQR "
          f"{prof['total_us']['q1']:.6g}..{prof['total_us']['q3']:.6g}; eager forward "
          f"{prof['eager_forward_us']['median']:.6g} us), total comm "
          f"{inst.total_comm:.6g} us")
    if args.output:
        write_instance(inst, args.output)
        print(f"wrote {args.output}")
    return 0
