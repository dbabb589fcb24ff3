"""``pipecert export MODEL PARTITION -o DIR``: the partition's stages as PyTorch modules.

MODEL is a graph written by ``pipecert import-torch`` (operator or layer level, forward);
PARTITION a partition file of that graph (``pipecert solve -o``). The model is rebuilt with
the factory the import recorded in the graph's metadata (``--factory`` / ``--option`` /
``--batch-size`` override it), re-exported with ``torch.export`` and split into stage
modules (:mod:`runtime.export`): DIR gets ``stage_<i>.pt`` per stage and
``manifest.json``. The stages are run once on the factory's example inputs and compared
with the unsplit model (``--no-check`` skips that). A table lists each stage's nodes and
the tensors it receives and sends, with their bytes (``--time``: each stage's median time
alone on the CPU, one thread), and, when the stages follow module boundaries, the
``split_spec`` of ``torch.distributed.pipelining.pipeline()``.

Errors are one line (exit 2): a graph not imported from PyTorch or a training graph, a
partition written for a graph of another structure (its structure fingerprint), an
infeasible partition, a graph without a recorded factory and no ``--factory``, a model that
is not the graph's (other node names or parameter count), a model on the meta device.
"""

from __future__ import annotations

import argparse
from typing import Any

from pipecert.errors import InputError

COMMAND = "export"
HELP = "split a PyTorch model along a partition into stage modules that run in order"
EPILOG = """examples:
  pipecert import-torch mymodels:mlp --batch-size 2 -o mlp.json
  pipecert solve mlp.json -k 4 -o mlp.part.json
  pipecert export mlp.json mlp.part.json -o mlp_stages/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="graph written by pipecert import-torch (.json / .json.gz)")
    parser.add_argument("partition", metavar="PARTITION", help="partition file of MODEL")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="directory for stage_<i>.pt and manifest.json")
    parser.add_argument("--factory", default=None, metavar="MODULE:FACTORY",
                        help="model factory (default: the one recorded by import-torch)")
    parser.add_argument("--option", action="append", default=None, metavar="KEY=VALUE",
                        help="factory keyword argument (default: the recorded ones); "
                             "repeatable")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="factory batch size (default: the recorded one)")
    parser.add_argument("--replicate-parameters", action="store_true",
                        help="each stage reading a parameter holds a copy (default: the "
                             "parameter's stage sends it, as the cost model prices it)")
    parser.add_argument("--time", action="store_true",
                        help="also time each stage alone on the CPU (one thread, 2 warm-up "
                             "runs, median of --repeats)")
    parser.add_argument("--repeats", type=int, default=7, metavar="R",
                        help="--time: timed runs per stage (default 7)")
    parser.add_argument("--no-check", action="store_true",
                        help="do not compare the stages' outputs with the unsplit model")


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def run(args: argparse.Namespace) -> int:
    from cli.cmd_import_torch import _parse_option
    from runtime.export import export_from_files

    options = (dict(_parse_option(o) for o in args.option) if args.option is not None
               else None)
    inst, part, staged, module, f_args, f_kwargs = export_from_files(
        args.model, args.partition, factory=args.factory, options=options,
        batch_size=args.batch_size, replicate_parameters=args.replicate_parameters)
    spec = args.factory or staged.info.get("factory")
    batch = args.batch_size if args.batch_size is not None else inst.metadata.get("batch_size")
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    staged.save(args.output)
    times = _times(staged, f_args, f_kwargs, args.repeats) if args.time else None
    print(f"{inst.name}: {staged.k} stages ({staged.info['level']} level), factory {spec}"
          + (f", batch size {batch}" if batch is not None else ""))
    head = f"{'stage':>5}  {'nodes':>6}  {'fx ops':>6}  {'in':>4}  {'in bytes':>10}  " \
           f"{'out':>4}  {'out bytes':>10}  {'forwarded':>9}" + ("  median ms" if times else "")
    print(head)
    for i, b in enumerate(staged.boundary):
        rb, sb = staged.stage_bytes(i)
        print(f"{i:>5}  {len(b.nodes):>6}  {b.fx_nodes:>6}  {len(b.receives):>4}  "
              f"{_fmt_bytes(rb):>10}  {len(b.sends):>4}  {_fmt_bytes(sb):>10}  "
              f"{len(b.forwarded):>9}" + (f"  {times[i] * 1e3:>9.3f}" if times else ""))
    skips = staged.skip_connections()
    if skips:
        print(f"  {len(skips)} tensor(s) cross more than one boundary (forwarded), e.g. "
              + ", ".join(f"{t.name} ({t.producer}->{t.last_consumer})" for t in skips[:3]))
    spec_ = staged.info.get("split_spec")
    if spec_:
        points = ", ".join(f"{f!r}: SplitPoint.BEGINNING" for f in spec_)
        print(f"  split_spec for torch.distributed.pipelining.pipeline(): {{{points}}}")
    elif spec_ is None:
        print(f"  no split_spec for torch.distributed.pipelining: "
              f"{staged.info.get('split_spec_reason')}")
    if not args.no_check:
        _check(staged, module, f_args, f_kwargs)
    print(f"wrote {args.output} (manifest.json + {staged.k} stage files)")
    return 0


def _times(staged: Any, f_args: Any, f_kwargs: Any, repeats: int) -> list[float]:
    """Median seconds per stage, one thread (restored afterwards)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return list(staged.measure(*f_args, warmup=2, repeats=repeats, **f_kwargs))
    finally:
        torch.set_num_threads(old)


def _check(staged: Any, module: Any, f_args: Any, f_kwargs: Any) -> None:
    """Run the stages and the unsplit model on the example inputs; compare the outputs."""
    import torch

    with torch.no_grad():
        got = torch.utils._pytree.tree_leaves(staged.run(*f_args, **f_kwargs))
        want = torch.utils._pytree.tree_leaves(module(*f_args, **f_kwargs))
    try:
        if len(got) != len(want):
            raise AssertionError(f"{len(got)} outputs vs {len(want)}")
        for g, w in zip(got, want, strict=True):
            if isinstance(w, torch.Tensor):
                torch.testing.assert_close(g, w)
    except (AssertionError, ValueError) as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        raise InputError(f"the stages' outputs differ from the unsplit model: {first}") \
            from None
    print(f"  check: the {staged.k} stages run in order match the unsplit model "
          f"({len(want)} output tensor(s))")
