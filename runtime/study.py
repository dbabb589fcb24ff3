"""The validation study: does the cost model name the stage the clock finds slowest?

For a few bundled architectures at their published size (:func:`runtime.models.published`:
GPT-2 124M, BERT-base, ResNet-50, seeded random weights, on this machine's device), at layer
and operator level and for k in {2, 4, 8}, the study

1. prices the model's graph under three cost models, all with the same node ids:

   * ``roofline-a100``: the roofline on the bundled A100 profile at bfloat16, exactly as the
     bundled ``models`` suite is priced -- it predicts another device, so its absolute
     error on a CPU is expected to be huge; what matters is whether its *shape* (which stage
     is slowest, relative sizes) carries over;
   * ``roofline-calibrated``: the roofline on a profile measured here by
     :func:`runtime.calibrate.calibrate` (peak matmul FLOP/s, copy bandwidth, per-operator
     launch overhead), at the model's own dtype;
   * ``measured``: :func:`runtime.profile.profile_module`, every operator timed in context;

2. solves each (cost model, k) with ``pipecert solve`` (the certified portfolio) for the
   partition that cost model calls best;
3. exports the partition as stage modules (:func:`runtime.export.export_stages`) and times
   each stage alone (:func:`runtime.bench.bench_stages`, median of repeats), the transfer
   being boundary bytes over the measured copy bandwidth; the same stage times are compared
   with the predictions of all three cost models for that partition.

Per cell it records, for the cost model that chose the split: the predicted and measured
bottleneck values, the relative error ``(predicted max - measured max) / measured max``,
the *shape error* (the same after scaling every prediction by one factor, sum of measured
stage totals / sum of predicted ones, so a model of another device is judged on its
relative stage times), whether the predicted bottleneck stage is the measured one, and the
measured bottleneck of the split itself (what a user of that cost model would get).

Run ``python -m runtime.study -o results/validation`` (``--help`` for the options); it
writes ``study.json`` (every cell, the environment, the calibrated profile) and is
resumable: finished cells are kept and skipped. ``paper_figures/fig_validation.py`` draws
the figure and the table from ``study.json``.

Timings are measurements on a shared machine: they vary between runs; the study records
the threads, repeats and statistic used.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipecert.errors import InputError

__all__ = ["COST_MODELS", "DEFAULT_MODELS", "run_study", "summarise", "main"]

#: The cost models compared, in report order.
COST_MODELS: tuple[str, ...] = ("roofline-a100", "roofline-calibrated", "measured")
#: Models of the study and their factory options (:func:`runtime.models.published`).
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "gpt2": {"seq_len": 128, "batch_size": 1},
    "bert-base": {"seq_len": 128, "batch_size": 1},
    "resnet-50": {"batch_size": 1},
}
FACTORY = "runtime.models:published"


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _ms(value: float, unit: str) -> float:
    from runtime.bench import UNIT_SECONDS

    return float(value) * UNIT_SECONDS[unit] * 1e3


def _layer_keys(model: str) -> tuple[int, int]:
    from instances.build_models_suite import SPECS

    spec = {s.name: s for s in SPECS}[model]
    return int(spec.layer_depth), int(spec.layer_extra)


def _environment(threads: int, device: str) -> dict[str, Any]:
    import torch

    from runtime.profile import _device_name, resolve_device

    return {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "device": _device_name(resolve_device(device)), "threads": threads,
            "torch": str(torch.__version__), "python": platform.python_version(),
            "machine": platform.machine()}


def _instances(model: str, level: str, module: Any, args: Any, kwargs: Any, ep: Any,
               options: Mapping[str, Any], profile_path: Path, warmup: int, repeats: int,
               bandwidth: float, device: str) -> dict[str, Any]:
    """The model's graph under every cost model (same node ids)."""
    from instances.costmodel import CostModel
    from instances.torch_import import import_exported
    from runtime.profile import profile_module

    depth, extra = _layer_keys(model)
    meta = {"factory": FACTORY, "factory_options": dict(options, model=model),
            "batch_size": options.get("batch_size")}
    common: dict[str, Any] = dict(level=level, layer_depth=depth, layer_extra=extra)
    out = {
        "roofline-a100": import_exported(ep, hardware="a100", compute_dtype="bfloat16",
                                         name=f"{model}-{level}-roofline-a100",
                                         metadata=meta, **common),
        "roofline-calibrated": import_exported(
            ep, cost_model=CostModel(profile_path, compute_dtype=None),
            name=f"{model}-{level}-roofline-calibrated", metadata=meta, **common),
        "measured": profile_module(module, args, kwargs, device=device, warmup=warmup,
                                   repeats=repeats, bandwidth=bandwidth,
                                   name=f"{model}-{level}-measured", metadata=meta,
                                   batch_size=options.get("batch_size"), **common),
    }
    ref = out["measured"].ids
    for cm, inst in out.items():
        if inst.ids != ref:
            raise InputError(f"{model} {level}: the {cm} graph's nodes differ from the "
                             "measured one's (the traces disagree)")
    return out


def _solve(path: Path, k: int, part_path: Path, time_limit: float) -> dict[str, Any]:
    """``pipecert solve`` on the graph file; its JSON summary."""
    exe = Path(sys.executable).with_name("pipecert")
    cmd = [str(exe) if exe.exists() else "pipecert", "solve", str(path), "-k", str(k),
           "--time-limit", str(time_limit), "--json", "-q", "-o", str(part_path)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise InputError(f"pipecert solve {path.name} -k {k} failed: "
                         f"{(res.stderr or res.stdout).strip().splitlines()[-1:]}")
    data = json.loads(res.stdout)
    keep = ("status", "upper_bound", "lower_bound", "gap", "upper_method", "lower_method")
    return {key: data.get(key) for key in keep if key in data}


def _measure(instance: Any, part: Any, staged: Any, args: Any, kwargs: Any, *,
             warmup: int, repeats: int, bandwidth: float, device: str) -> dict[str, Any]:
    """Each stage timed alone (:func:`runtime.bench.bench_stages`), in milliseconds."""
    from runtime.bench import bench_stages

    rep = bench_stages(instance, part, staged, args, kwargs, device=device, warmup=warmup,
                       repeats=repeats, bandwidth=bandwidth)
    unit = rep.unit
    stages = [{"stage": r.stage, "nodes": r.nodes, "bytes_in": r.bytes_in,
               "bytes_out": r.bytes_out,
               "measured_compute_ms": _ms(r.measured_compute, unit),
               "measured_transfer_ms": _ms(r.measured_transfer, unit),
               "measured_total_ms": _ms(r.measured_total, unit)} for r in rep.rows]
    return {"stages": stages, "threads": rep.threads, "method": rep.method}


def _cell(model: str, level: str, cm: str, k: int, instances: Mapping[str, Any],
          part: Any, timing: Mapping[str, Any], *, warmup: int, repeats: int,
          bandwidth: float, solve: Mapping[str, Any]) -> dict[str, Any]:
    from pipecert.partition import stage_costs
    from runtime.bench import time_unit

    stages = [dict(row, predicted={}) for row in timing["stages"]]
    measured = [row["measured_total_ms"] for row in stages]
    by_model: dict[str, Any] = {}
    for name, inst in instances.items():
        u = time_unit(inst)
        sc = stage_costs(inst, part)
        pred = [_ms(float(x), u) for x in sc.total]
        for b, row in enumerate(stages):
            row["predicted"][name] = {"work_ms": _ms(float(sc.work[b]), u),
                                      "transfer_ms": _ms(float(sc.comm_in[b]
                                                           + sc.comm_out[b]), u),
                                      "total_ms": pred[b]}
        pb = max(range(len(pred)), key=pred.__getitem__)
        mb = max(range(len(measured)), key=measured.__getitem__)
        scale = sum(measured) / sum(pred) if sum(pred) > 0 else math.nan
        by_model[name] = {
            "predicted_bottleneck": pb, "measured_bottleneck": mb,
            "predicted_max_ms": pred[pb], "measured_max_ms": measured[mb],
            "error": (pred[pb] - measured[mb]) / measured[mb],
            "shape_error": (pred[pb] * scale - measured[mb]) / measured[mb],
            "agrees": pb == mb, "measured_at_predicted_ms": measured[pb],
        }
    transfer = {"measured_ms": sum(row["measured_transfer_ms"] for row in stages),
                "predicted_ms": {name: sum(row["predicted"][name]["transfer_ms"]
                                           for row in stages) for name in instances}}
    return {"model": model, "level": level, "cost_model": cm, "k": k,
            "solve": dict(solve), "stages": stages, "bottleneck": by_model,
            "transfer": transfer,
            "split_measured_max_ms": max(measured),
            "bandwidth_bytes_per_s": bandwidth, "warmup": warmup, "repeats": repeats,
            "threads": timing["threads"], "method": timing["method"],
            "stage_of": [int(x) for x in part.stage_of]}


def _noise(root: Path, model: str, level: str, cm: str, k: int,
           insts: Mapping[str, Any], module: Any, args: Any, kwargs: Any, ep: Any, *,
           warmup: int, repeats: int, bandwidth: float,
           profile_repeats: int, device: str) -> dict[str, Any]:
    """How much one split's numbers move when measured again (the study's noise floor).

    The split of cell (``cm``, ``k``) is timed a second time, and the model is profiled a
    second time; returned: the relative change per stage of the measured stage totals
    (``retime``) and of the measured profile's predicted stage totals (``reprofile``).
    """
    import statistics

    from pipecert.partition import stage_costs
    from pipecert.partition_file import PartitionFile
    from runtime.bench import time_unit
    from runtime.export import export_stages
    from runtime.profile import profile_module

    cell = json.loads((root / "cells" / f"{model}-{level}-{cm}-k{k}.json").read_text(
        encoding="utf-8"))
    part = PartitionFile.read(root / "partitions" / f"{model}-{level}-{cm}-k{k}"
                              ".partition.json").partition(insts[cm])
    staged = export_stages(module, args, kwargs, instance=insts[cm], partition=part, ep=ep)
    again = _measure(insts[cm], part, staged, args, kwargs, warmup=warmup, repeats=repeats,
                     bandwidth=bandwidth, device=device)
    first = [row["measured_total_ms"] for row in cell["stages"]]
    second = [row["measured_total_ms"] for row in again["stages"]]
    retime = [b / a - 1 for a, b in zip(first, second, strict=True) if a > 0]
    old = insts["measured"] if "measured" in insts else insts[cm]
    depth, extra = _layer_keys(model)
    new = profile_module(module, args, kwargs, device=device, warmup=2,
                         repeats=profile_repeats, bandwidth=bandwidth, level=level,
                         layer_depth=depth, layer_extra=extra)
    p1 = [_ms(float(x), time_unit(old)) for x in stage_costs(old, part).total]
    p2 = [_ms(float(x), time_unit(new)) for x in stage_costs(new, part).total]
    reprofile = [b / a - 1 for a, b in zip(p1, p2, strict=True) if a > 0]
    return {"model": model, "level": level, "split": {"cost_model": cm, "k": k},
            "measured_ms": [first, second], "profile_predicted_ms": [p1, p2],
            "retime": retime, "reprofile": reprofile,
            "median_abs_retime": statistics.median(abs(x) for x in retime) if retime else 0.0,
            "median_abs_reprofile": (statistics.median(abs(x) for x in reprofile)
                                     if reprofile else 0.0)}


def run_study(out: str | Path, *, models: Mapping[str, Mapping[str, Any]] | None = None,
              levels: Sequence[str] = ("layer", "operator"), ks: Sequence[int] = (2, 4, 8),
              cost_models: Sequence[str] = COST_MODELS, threads: int | None = 2,
              time_limit: float = 20.0, warmup: int = 2, repeats: int = 7,
              profile_repeats: int = 10, seed: int = 0, device: str = "cpu",
              log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Run (or resume) the study into directory ``out``; returns the ``study.json`` data.

    Parameters
    ----------
    out : path
        Output directory: ``study.json``, ``calibrated-cpu.toml``, ``instances/``,
        ``partitions/``, ``cells/`` (one JSON per finished cell; a rerun skips them),
        ``noise/`` (per model and level: one split timed and profiled a second time).
    models : mapping, optional
        Suite model -> :func:`runtime.models.published` options (default
        :data:`DEFAULT_MODELS`).
    levels, ks, cost_models : sequences
        The grid.
    threads : int or None
        ``torch.set_num_threads`` for every measurement (None: torch's default).
    time_limit : float
        Seconds per ``pipecert solve``.
    warmup, repeats : int
        Untimed and timed runs per stage (median).
    profile_repeats : int
        Timed passes of the measured profile.
    seed : int
        Weights and inputs (:func:`runtime.models.published`).
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``: where the roofline is calibrated, the model
        profiled and the stages timed (the CUDA path is written, CI tests the CPU one).
    """
    import torch

    from instances.io import read_instance, write_instance
    from instances.torch_import import trace
    from pipecert.partition_file import PartitionFile
    from runtime.calibrate import calibrate, write_profile
    from runtime.export import export_stages
    from runtime.models import published

    unknown = sorted(set(cost_models) - set(COST_MODELS))
    if unknown:
        raise InputError(f"unknown cost model(s) {unknown} (known: {list(COST_MODELS)})")
    if any(int(k) < 1 for k in ks):
        raise InputError(f"k must be >= 1, got {list(ks)}")
    models = dict(models or DEFAULT_MODELS)
    if threads is not None:
        torch.set_num_threads(int(threads))
    root = Path(out)
    for sub in ("instances", "partitions", "cells", "noise"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    from runtime.profile import resolve_device

    dev = resolve_device(device)
    prof_path = root / f"calibrated-{dev.type}.toml"
    if not prof_path.exists():
        log(f"calibrating the roofline on this {dev.type}")
        write_profile(calibrate(device, repeats=max(repeats, 5)), prof_path)
    from instances.costmodel import HardwareProfile

    profile = HardwareProfile.from_toml(prof_path)
    bandwidth = float(profile.interconnect_bandwidth)
    study: dict[str, Any] = {"environment": _environment(torch.get_num_threads(), device),
                             "calibrated_profile": profile.to_dict(),
                             "models": {m: dict(o) for m, o in models.items()},
                             "levels": list(levels), "ks": [int(k) for k in ks],
                             "cost_models": list(cost_models), "time_limit_s": time_limit,
                             "cells": []}
    timings: dict[tuple[str, str, int, tuple[int, ...]], dict[str, Any]] = {}
    for p in (root / "cells").glob("*.json"):  # splits timed by an earlier run
        c = json.loads(p.read_text(encoding="utf-8"))
        timings[(c["model"], c["level"], c["k"], tuple(c["stage_of"]))] = {
            "stages": [{key: v for key, v in row.items() if key != "predicted"}
                       for row in c["stages"]],
            "threads": c["threads"], "method": c["method"]}
    for level in levels:
        for model, options in models.items():
            todo = [(cm, int(k)) for cm in cost_models for k in ks
                    if not (root / "cells" / f"{model}-{level}-{cm}-k{k}.json").exists()]
            noise_path = root / "noise" / f"{model}-{level}.json"
            if not todo and noise_path.exists():
                continue
            log(f"{model} ({level}): building the model and its graphs")
            module, args, kwargs = published(model, seed=seed, **options)
            ep = trace(module, args, kwargs, name=model)
            paths = {cm: root / "instances" / f"{model}-{level}-{cm}.json.gz"
                     for cm in COST_MODELS}
            if all(p.exists() for p in paths.values()):
                insts = {cm: read_instance(p) for cm, p in paths.items()}
            else:
                insts = _instances(model, level, module, args, kwargs, ep, options,
                                   prof_path, 2, profile_repeats, bandwidth, device)
                for cm, inst in insts.items():
                    write_instance(inst, paths[cm])
            for cm, k in todo:
                part_path = root / "partitions" / f"{model}-{level}-{cm}-k{k}.partition.json"
                log(f"{model} {level} {cm} k={k}: solve, export, time the stages")
                solve = _solve(paths[cm], k, part_path, time_limit)
                part = PartitionFile.read(part_path).partition(insts[cm])
                key = (model, level, k, tuple(int(x) for x in part.stage_of))
                timing = timings.get(key)
                if timing is None:  # a split two cost models chose at this k is timed once
                    staged = export_stages(module, args, kwargs, instance=insts[cm],
                                           partition=part, ep=ep)
                    timing = _measure(insts[cm], part, staged, args, kwargs, warmup=warmup,
                                      repeats=repeats, bandwidth=bandwidth, device=device)
                    timings[key] = timing
                cell = _cell(model, level, cm, k, insts, part, timing, warmup=warmup,
                             repeats=repeats, bandwidth=bandwidth, solve=solve)
                _atomic_write(root / "cells" / f"{model}-{level}-{cm}-k{k}.json",
                              json.dumps(cell, indent=1))
                b = cell["bottleneck"][cm]
                log(f"  predicted {b['predicted_max_ms']:.4g} ms (stage "
                    f"{b['predicted_bottleneck']}), measured {b['measured_max_ms']:.4g} ms "
                    f"(stage {b['measured_bottleneck']}), error {b['error']:+.1%}, shape "
                    f"error {b['shape_error']:+.1%}")
            if not noise_path.exists():
                cm = "measured" if "measured" in cost_models else cost_models[0]
                k = max(int(x) for x in ks)
                log(f"{model} {level}: noise: the {cm} k={k} split timed and profiled again")
                noise = _noise(root, model, level, cm, k, insts, module, args, kwargs, ep,
                               warmup=warmup, repeats=repeats, bandwidth=bandwidth,
                               profile_repeats=profile_repeats, device=device)
                _atomic_write(noise_path, json.dumps(noise, indent=1))
                log(f"  median |change| per stage: re-timed {noise['median_abs_retime']:.1%}, "
                    f"re-profiled {noise['median_abs_reprofile']:.1%}")
    cells = sorted((json.loads(p.read_text(encoding="utf-8"))
                    for p in (root / "cells").glob("*.json")),
                   key=lambda c: (c["level"], c["model"], COST_MODELS.index(c["cost_model"]),
                                  c["k"]))
    study["cells"] = cells
    study["summary"] = summarise(cells)
    floors = [json.loads(p.read_text(encoding="utf-8"))
              for p in sorted((root / "noise").glob("*.json"))]
    study["noise"] = floors
    if floors:
        import statistics

        study["noise_summary"] = {
            key: statistics.median(abs(x) for n in floors for x in n[key])
            for key in ("retime", "reprofile")}
    _atomic_write(root / "study.json", json.dumps(study, indent=1))
    return study


def summarise(cells: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per cost model: bottleneck errors and agreement over the cells it chose the split of.

    Returns ``{cost_model: {"cells", "agree", "median_named_gap", "median_abs_error",
    "max_abs_error", "median_abs_shape_error", "max_abs_shape_error", "median_regret",
    "max_regret"}}``. ``median_named_gap`` is the median of 1 - (measured time of the stage
    the model names as the bottleneck) / (measured bottleneck): 0 when it names the slowest
    stage, small when it names a stage the clock finds nearly as slow. The regret
    of a cell is its split's measured bottleneck over the best measured bottleneck among
    the cost models' splits of the same (model, level, k), minus 1.
    """
    import statistics

    best: dict[tuple[str, str, int], float] = {}
    for c in cells:
        key = (c["model"], c["level"], c["k"])
        best[key] = min(best.get(key, math.inf), c["split_measured_max_ms"])
    out: dict[str, Any] = {}
    for cm in COST_MODELS:
        mine = [c for c in cells if c["cost_model"] == cm]
        if not mine:
            continue
        errs = [abs(c["bottleneck"][cm]["error"]) for c in mine]
        shape = [abs(c["bottleneck"][cm]["shape_error"]) for c in mine]
        regret = [c["split_measured_max_ms"] / best[(c["model"], c["level"], c["k"])] - 1
                  for c in mine]
        named = [1 - c["bottleneck"][cm]["measured_at_predicted_ms"]
                 / c["bottleneck"][cm]["measured_max_ms"] for c in mine]
        out[cm] = {"cells": len(mine),
                   "agree": sum(bool(c["bottleneck"][cm]["agrees"]) for c in mine),
                   "median_named_gap": statistics.median(named),
                   "median_abs_error": statistics.median(errs), "max_abs_error": max(errs),
                   "median_abs_shape_error": statistics.median(shape),
                   "max_abs_shape_error": max(shape),
                   "median_regret": statistics.median(regret), "max_regret": max(regret)}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runtime.study``: run or resume the validation study."""
    p = argparse.ArgumentParser(prog="python -m runtime.study", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", default="results/validation",
                   help="output directory (default results/validation); resumable")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated suite models (default: %(default)s)")
    p.add_argument("--levels", default="layer,operator")
    p.add_argument("-k", default="2,4,8", help="numbers of stages (default 2,4,8)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--time-limit", type=float, default=20.0, help="seconds per solve")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", metavar="cpu|cuda|cuda:N",
                   help="calibrate, profile and time here (default cpu)")
    a = p.parse_args(argv)
    try:
        names = [m for m in a.models.split(",") if m]
        models = {m: DEFAULT_MODELS.get(m, {"batch_size": 1}) for m in names}
        ks = [int(x) for x in a.k.split(",") if x]
        levels = [x for x in a.levels.split(",") if x]
        bad = sorted(set(levels) - {"layer", "operator"})
        if bad:
            raise InputError(f"unknown level(s) {bad} (known: layer, operator)")
        study = run_study(a.output, models=models, levels=levels, ks=ks, threads=a.threads,
                          time_limit=a.time_limit, repeats=a.repeats, seed=a.seed,
                          device=a.device)
    except (InputError, ValueError) as exc:
        print(f"python -m runtime.study: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are kept; rerun the same command to resume",
              file=sys.stderr)
        return 130
    for cm, s in study["summary"].items():
        print(f"{cm}: bottleneck stage right in {s['agree']}/{s['cells']} cells; median "
              f"|error| {s['median_abs_error']:.1%}, median |shape error| "
              f"{s['median_abs_shape_error']:.1%}, median regret {s['median_regret']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
