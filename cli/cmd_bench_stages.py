"""``pipecert bench-stages MODEL PARTITION``: measured vs predicted stage times of a split.

MODEL is a graph written by ``pipecert import-torch`` or ``pipecert profile`` (forward,
operator or layer level), PARTITION a partition file of it. The stages are exported as
``pipecert export`` does (:func:`runtime.bench.export_for_bench`, the factory recorded in
the graph's metadata unless ``--factory`` / ``--option`` / ``--batch-size`` say otherwise),
each stage runs alone on ``--device`` (``--threads`` threads, ``--warmup`` untimed runs,
median of ``--repeats``), and a table gives per stage, in the graph's time unit: the
predicted work, transfer and total (:func:`pipecert.stage_costs`), the measured compute,
transfer (boundary bytes in + out over ``--bandwidth`` or a measured copy bandwidth) and
total, and measured / predicted; then the predicted and the measured bottleneck stage and
the relative error of the predicted bottleneck value. ``--json`` prints the same as JSON
(:meth:`runtime.bench.BenchReport.to_json`). See :mod:`runtime.bench`.

Errors are one line (exit 2): what ``pipecert export`` refuses (a graph not imported from
PyTorch, a training graph, a partition of another graph, an infeasible partition, no
factory), a bad ``--device`` or CUDA requested where there is none, bad counts.
"""

from __future__ import annotations

import argparse
import json

COMMAND = "bench-stages"
HELP = "run each exported stage alone and compare its time with the cost model's"
EPILOG = """examples:
  pipecert import-torch mymodels:mlp --batch-size 2 -o mlp.json
  pipecert solve mlp.json -k 4 -o mlp.part.json
  pipecert bench-stages mlp.json mlp.part.json --device cpu --repeats 20
  pipecert bench-stages mlp.json mlp.part.json --bandwidth 1e10 --json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="graph written by pipecert import-torch or profile")
    parser.add_argument("partition", metavar="PARTITION", help="partition file of MODEL")
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda|cuda:N",
                        help="where the stages run (default cpu)")
    parser.add_argument("--factory", default=None, metavar="MODULE:FACTORY",
                        help="model factory (default: the one recorded in MODEL)")
    parser.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                        help="factory keyword argument (default: the recorded ones); "
                             "repeatable")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="factory batch size (default: the recorded one)")
    parser.add_argument("--warmup", type=int, default=2, metavar="W",
                        help="untimed runs per stage (default 2)")
    parser.add_argument("--repeats", type=int, default=7, metavar="R",
                        help="timed runs per stage, median reported (default 7)")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch.set_num_threads(N) while measuring (default 1)")
    parser.add_argument("--bandwidth", type=float, default=None, metavar="BYTES_PER_S",
                        help="bytes/s between stages for the measured transfer (default: a "
                             "copy bandwidth measured on the device)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def run(args: argparse.Namespace) -> int:
    from cli._common import check_measurement_args
    from cli.cmd_import_torch import _parse_option
    from runtime.bench import bench_stages, export_for_bench
    from runtime.profile import resolve_device

    check_measurement_args(args)
    resolve_device(args.device)  # no CUDA: fail before exporting anything
    options = None if args.option is None else dict(_parse_option(o) for o in args.option)
    inst, part, staged, f_args, f_kwargs = export_for_bench(
        args.model, args.partition, factory=args.factory, options=options,
        batch_size=args.batch_size)
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        rep = bench_stages(inst, part, staged, f_args, f_kwargs, device=args.device,
                           warmup=args.warmup, repeats=args.repeats, bandwidth=args.bandwidth)
    finally:
        torch.set_num_threads(old)
    if args.json:
        print(json.dumps(rep.to_json(), indent=1))
        return 0
    u = rep.unit
    print(f"{inst.name}: {rep.k} stages ({staged.info.get('level')} level), cost model "
          f"{rep.cost_model}, measured on {rep.device} ({rep.threads} thread(s), warm-up "
          f"{rep.warmup}, median of {rep.repeats})")
    print(f"  bandwidth {rep.bandwidth_bytes_per_s / 1e9:.4g} GB/s ({rep.bandwidth_source})")
    head = (f"{'stage':>5}  {'nodes':>5}  {'pred work ' + u:>13}  {'pred xfer ' + u:>13}  "
            f"{'pred total ' + u:>14}  {'meas comp ' + u:>13}  {'meas xfer ' + u:>13}  "
            f"{'meas total ' + u:>14}  {'meas/pred':>9}")
    print(head)
    for r in rep.rows:
        print(f"{r.stage:>5}  {r.nodes:>5}  {_num(r.predicted_work):>13}  "
              f"{_num(r.predicted_transfer):>13}  {_num(r.predicted_total):>14}  "
              f"{_num(r.measured_compute):>13}  {_num(r.measured_transfer):>13}  "
              f"{_num(r.measured_total):>14}  {_num(r.ratio):>9}")
    agree = "agree" if rep.bottleneck_agrees else "differ"
    print(f"  bottleneck: predicted stage {rep.predicted_bottleneck} "
          f"({rep.predicted_bottleneck_value:.4g} {u}), measured stage "
          f"{rep.measured_bottleneck} ({rep.measured_bottleneck_value:.4g} {u}): {agree}"
          + ("" if rep.bottleneck_agrees else
             f"; stage {rep.predicted_bottleneck} measures {rep.measured_at_predicted:.4g} "
             f"{u} ({rep.measured_at_predicted / rep.measured_bottleneck_value:.2f} of the "
             "measured bottleneck)"))
    print(f"  relative error of the predicted bottleneck (pred - meas) / meas: "
          f"{rep.relative_error:+.3g}")
    return 0
