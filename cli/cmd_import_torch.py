"""``pipecert import-torch module:factory``: trace a PyTorch model into a priced graph.

The factory is a function ``factory(batch_size=N, **options)`` returning ``(module,
example_inputs)`` (a tuple of positional inputs, one tensor or a dict of keyword inputs)
or ``(module, args, kwargs)``. The module is traced with ``torch.export`` and priced by the
roofline cost model of ``instances/costmodel.py`` on a hardware profile.

``--training`` builds the training graph (forward + backward nodes, co-located pairs,
data-only gradient edges, memory of weights + gradients + optimizer state + stashed
activations; see :mod:`instances.torch_import`). ``--memory-limit`` sets the memory cap per
stage (``80GB``, ``80GiB``, bytes, or ``none``; default: the hardware profile's device
memory); the cap is enforced by every solver.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pipecert.errors import InputError

COMMAND = "import-torch"
HELP = "trace a PyTorch model (module:factory) into an operator graph priced on a GPU/TPU"


def _parse_option(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise InputError(f"--option {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from instances.costmodel import list_profiles

    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="function returning (module, example_inputs); the current "
                             "directory is importable")
    parser.add_argument("-o", "--output", default=None,
                        help="write the graph here (.json or .json.gz); default: only print "
                             "a summary")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="passed to the factory as batch_size=N")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="extra factory keyword argument (VALUE parsed as JSON if it can "
                             "be); repeatable")
    parser.add_argument("--hardware", default=None, metavar="NAME|FILE.toml",
                        help=f"hardware profile: one of {', '.join(list_profiles())} or a "
                             "TOML file (default a100)")
    parser.add_argument("--compute-dtype", default="bfloat16",
                        help="dtype the costs assume for floating tensors (default bfloat16; "
                             "'traced' keeps the model's dtypes)")
    parser.add_argument("--launch-overhead-us", type=float, default=None, metavar="US",
                        help="microseconds added to every kernel (default: the profile's)")
    parser.add_argument("--level", choices=["operator", "layer"], default="operator",
                        help="one node per operator (default) or per layer")
    parser.add_argument("--layer-depth", type=int, default=1, metavar="D",
                        help="--level layer: a layer is a module path up to its D-th numeric "
                             "index (default 1: encoder.layer.3)")
    parser.add_argument("--layer-extra", type=int, default=1, metavar="E",
                        help="--level layer: keep E more path components after that index "
                             "(default 1: encoder.layer.3.attention)")
    parser.add_argument("--decompose", action="store_true",
                        help="lower to core ATen operators first (finer graph)")
    parser.add_argument("--training", action="store_true",
                        help="training graph: a backward node per operator needing a "
                             "gradient (priced from autograd's FLOPs by the roofline), in "
                             "its forward node's co-location group; gradient edges data-only")
    parser.add_argument("--optimizer-states", type=int, default=2, metavar="N",
                        help="--training: optimizer tensors per parameter counted in memory "
                             "(default 2: Adam; 1: SGD momentum; 0: none)")
    parser.add_argument("--memory-limit", default=None, metavar="SIZE",
                        help="memory cap per stage, enforced: 80GB (1e9 bytes), 80GiB "
                             "(2^30), bytes, or 'none' (default: the hardware profile's "
                             "device memory)")
    parser.add_argument("--name", default=None, help="instance name (default: the factory)")
    parser.add_argument("--onnx", default=None, metavar="FILE.onnx",
                        help="also export the model to ONNX (needs onnxscript)")


def run(args: argparse.Namespace) -> int:
    from instances import write_instance
    from instances.costmodel import DEFAULT_HARDWARE, CostModel, with_cost_model_info
    from instances.torch_import import call_factory, import_module, load_factory
    from instances.units import parse_memory_size

    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    options = dict(_parse_option(o) for o in args.option)
    if args.optimizer_states < 0:
        raise InputError(f"--optimizer-states must be >= 0, got {args.optimizer_states}")
    limit = "profile" if args.memory_limit is None else parse_memory_size(args.memory_limit)
    dtype = None if args.compute_dtype in ("traced", "none") else args.compute_dtype
    overhead = None if args.launch_overhead_us is None else args.launch_overhead_us * 1e-6
    hardware = args.hardware or DEFAULT_HARDWARE
    cm = CostModel(hardware, dtype, overhead)
    factory = load_factory(args.factory)
    module, f_args, f_kwargs = call_factory(factory, batch_size=args.batch_size,
                                            options=options, spec=args.factory)
    name = args.name or args.factory.partition(":")[2]
    inst = import_module(module, f_args, f_kwargs, cost_model=cm, level=args.level,
                         layer_depth=args.layer_depth, layer_extra=args.layer_extra,
                         decompose=args.decompose, name=name,
                         metadata={"factory": args.factory, "batch_size": args.batch_size,
                                   "factory_options": options},
                         training=args.training, optimizer_states=args.optimizer_states)
    if limit != "profile":
        inst = inst.replace(memory_limit=limit)
    inst = with_cost_model_info(inst, importer="pytorch", hardware_name=cm.profile.name,
                                hardware_default=args.hardware is None,
                                batch_size=args.batch_size)
    if args.onnx:
        _export_onnx(module, f_args, f_kwargs, args.onnx)
    totals = inst.metadata.get("totals", {})
    print(f"{inst.name}: {inst.n_nodes} nodes ({totals.get('operators', 0)} operators), "
          f"{inst.n_edges} data edges")
    pbytes = totals.get("parameter_bytes", 0)
    dt = cm.compute_dtype or "as traced"
    hw = cm.profile.name + (" (default)" if args.hardware is None else "")
    print(f"  FLOPs {totals.get('flops', 0):.4g}, parameters {pbytes:.4g} bytes ({dt}), "
          f"hardware {hw}, batch size {args.batch_size or 'as the factory makes it'}")
    print(f"  total work {inst.total_work:.6g} us, total comm {inst.total_comm:.6g} us, "
          f"comm/work {inst.comm_work_ratio:.4g}")
    if args.training:
        print(f"  training: {inst.n_data_only_edges} data-only edges, {inst.n_units} units, "
              f"backward FLOPs {totals.get('backward_flops', 0):.4g}")
    if inst.memory is not None:
        total = float(inst.memory.sum())
        cap = ("none" if inst.memory_limit is None else f"{inst.memory_limit:.6g} bytes"
               + (" (binds: at least " f"{-(-total // inst.memory_limit):.0f} stages)"
                  if inst.memory_limit and total > inst.memory_limit else ""))
        print(f"  memory {total:.6g} bytes, cap per stage {cap}")
    if args.output:
        write_instance(inst, args.output)
        print(f"wrote {args.output}")
    if args.onnx:
        print(f"wrote {args.onnx}")
    return 0


def _export_onnx(module: Any, args: Any, kwargs: Any, path: str) -> None:
    import torch

    try:
        with torch.no_grad():
            torch.onnx.export(module, tuple(args), path, kwargs=dict(kwargs), dynamo=True,
                              verbose=False)
    except Exception as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
        raise InputError(f"ONNX export failed: {type(exc).__name__}: {first[:300]}",
                         source=path) from exc
