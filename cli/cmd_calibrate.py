"""``pipecert calibrate``: a roofline hardware profile measured on this machine.

See :mod:`runtime.calibrate` for what is measured and how.
"""

from __future__ import annotations

import argparse

COMMAND = "calibrate"
HELP = "measure this machine's peak FLOP/s, memory bandwidth and launch overhead into a " \
       "hardware profile for import-torch --hardware"
EPILOG = """\
examples:
  pipecert calibrate --device cpu --threads 1 -o cpu.toml
  pipecert import-torch runtime.models:published --option model=gpt2 --option seq_len=128 \\
      --batch-size 1 --hardware cpu.toml --compute-dtype traced -o gpt2-cpu.json.gz

The profile is a measurement: two runs differ (more so on a loaded machine)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default=None, metavar="FILE.toml",
                        help="write the profile here (default: print it)")
    parser.add_argument("--device", default="cpu", metavar="cpu|cuda|cuda:N",
                        help="device to measure (default cpu)")
    parser.add_argument("--dtype", action="append", default=None, metavar="DTYPE",
                        help="dtype whose peak FLOP/s is measured (repeatable; default "
                             "float32)")
    parser.add_argument("--warmup", type=int, default=2, metavar="W",
                        help="untimed runs per measurement (default 2)")
    parser.add_argument("--repeats", type=int, default=7, metavar="R",
                        help="timed runs per measurement, median (default 7)")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="torch.set_num_threads(N) first (default: torch's)")
    parser.add_argument("--name", default=None, help="profile name (default measured-DEVICE)")


def run(args: argparse.Namespace) -> int:
    from cli._common import check_measurement_args

    check_measurement_args(args)
    from runtime.calibrate import calibrate, profile_toml, write_profile
    from runtime.profile import resolve_device

    resolve_device(args.device)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    table = calibrate(args.device, dtypes=tuple(args.dtype or ("float32",)),
                      warmup=args.warmup, repeats=args.repeats, name=args.name)
    if args.output:
        write_profile(table, args.output)
        peaks = ", ".join(f"{k} {v / 1e9:.4g} GFLOP/s" for k, v in table["peak_flops"].items())
        print(f"{table['name']}: {peaks}; memory {table['memory_bandwidth'] / 1e9:.4g} GB/s; "
              f"launch {table['launch_overhead'] * 1e6:.3g} us; link "
              f"{table['interconnect_bandwidth'] / 1e9:.4g} GB/s")
        print(f"wrote {args.output}")
    else:
        print(profile_toml(table), end="")
    return 0
