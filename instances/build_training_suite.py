"""Build the bundled ``models-training`` suite (training graphs) in ``instances/data/``.

Usage::

    python -m instances.build_training_suite            # (re)write the files and MANIFEST.json
    python -m instances.build_training_suite --check    # verify the committed files match
    python -m instances.build_training_suite --only gpt2,bert-base   # rebuild some entries

Each entry is one architecture of the bundled ``models`` suite (its published configuration,
example-input shape, hardware profile and layer key, see :mod:`instances.build_models_suite`),
built on the ``meta`` device, traced with :func:`torch.export.export` and imported in
training mode at layer level: ``instances.torch_import.import_exported(..., training=True,
level="layer")``, exactly what ``pipecert import-torch instances.build_models_suite:factory
--option model=NAME --training --level layer`` does (same layer key as the ``models``
suite's entry). A training graph has a forward node per layer and a backward node per layer
that needs a gradient, each pair in one co-location group; forward edges order the stages,
gradient and stash edges are data-only; node memory (bytes, bfloat16) is weights, gradients
and Adam's two moments on parameters and the stashed output activation on forward operators
(one micro-batch in flight); see :mod:`instances.torch_import`.

The memory cap is the importer's: the hardware profile's device memory (80 GB on ``a100``).
The manifest records, per entry, the total memory, the cap and the fewest stages the cap
allows (``min_stages_for_memory`` = ceil(total / cap)), so it says whether and from which k
the cap binds.

Files are native JSON gzipped with ``mtime=0``, so a rebuild with the same torch and
transformers versions (recorded in the manifest) gives the same bytes; ``--check`` verifies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instances.build_default_suite import regime_of
from instances.build_models_suite import SPECS as MODEL_SPECS
from instances.build_models_suite import ModelSpec, _gzip, _provenance, _versions, make_model
from instances.formats.native import dumps
from pipecert.instance import Instance

__all__ = ["SUITE", "SPECS", "TrainingSpec", "build", "check", "build_entry"]

SUITE = "models-training"
DATA_DIR = Path(__file__).resolve().parent / "data" / SUITE
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSpec:
    """One entry of the suite: a ``models`` architecture imported in training mode.

    Attributes
    ----------
    model : ModelSpec
        The architecture, with the ``models`` suite's configuration, inputs, hardware and
        layer key.
    optimizer_states : int
        Optimizer tensors per parameter counted in memory (2 = Adam's two moments).
    """

    model: ModelSpec
    optimizer_states: int = 2

    @property
    def name(self) -> str:
        """Entry name (the instance id is ``models-training/<name>``)."""
        return f"{self.model.name}-layers"


#: the architectures of the suite: a decoder, an encoder, an encoder-decoder, a vision
#: transformer and two CNNs (residual and depthwise-separable)
TRAINING_MODELS = ("gpt2", "bert-base", "t5-small", "vit-base-16", "resnet-50", "mobilenet-v2")


def _specs() -> list[TrainingSpec]:
    by_name = {s.name: s for s in MODEL_SPECS}
    return [TrainingSpec(by_name[n]) for n in TRAINING_MODELS]


SPECS: list[TrainingSpec] = _specs()


def _training_provenance(spec: TrainingSpec) -> dict[str, Any]:
    prov = _provenance(spec.model, "layer")
    prov.update({
        "training": True,
        "optimizer_states": spec.optimizer_states,
        "models_suite_entry": f"models/{spec.model.name}",
        "command": ("pipecert import-torch instances.build_models_suite:factory --option "
                    f"model={spec.model.name} --training --level layer --layer-depth "
                    f"{spec.model.layer_depth} --layer-extra {spec.model.layer_extra} "
                    f"--hardware {spec.model.hardware}"),
    })
    return prov


def build_entry(spec: TrainingSpec) -> tuple[Instance, dict[str, Any]]:
    """Trace ``spec`` and return its training instance and provenance."""
    from instances.costmodel import CostModel
    from instances.torch_import import import_exported, trace

    m = spec.model
    module, args, kwargs = make_model(m)
    ep = trace(module, args, kwargs, name=m.name)
    prov = _training_provenance(spec)
    inst = import_exported(ep, cost_model=CostModel(m.hardware, "bfloat16"), level="layer",
                           layer_depth=m.layer_depth, layer_extra=m.layer_extra,
                           name=f"{SUITE}/{spec.name}", decompose=m.decompose,
                           metadata={"provenance": prov}, training=True,
                           optimizer_states=spec.optimizer_states)
    return inst, prov


def memory_summary(inst: Instance) -> dict[str, Any]:
    """Total memory, the cap, the largest unit's memory and the fewest stages the cap allows."""
    total = float(inst.memory.sum()) if inst.memory is not None else 0.0
    cap = inst.memory_limit
    unit_max = float(inst.unit_sums(inst.memory).max()) if inst.memory is not None else 0.0
    return {
        "total_memory": total,
        "memory_limit": cap,
        "max_unit_memory": unit_max,
        "min_stages_for_memory": (max(1, math.ceil(total / cap)) if cap else 1),
        "cap_binds": bool(cap is not None and total > cap),
    }


def _entry(name: str, inst: Instance, prov: dict[str, Any], raw: bytes,
           versions: dict[str, str]) -> dict[str, Any]:
    ratio = inst.comm_work_ratio
    totals = dict(inst.metadata.get("totals", {}))
    mem = memory_summary(inst)
    return {
        "id": f"{SUITE}/{name}",
        "file": f"{name}.json.gz",
        "n_nodes": inst.n_nodes,
        "n_edges": inst.n_edges,
        "n_precedence_edges": inst.n_precedence_edges,
        "n_data_only_edges": inst.n_data_only_edges,
        "n_units": inst.n_units,
        "n_groups": int(len(set(inst.groups[inst.groups >= 0].tolist())))
        if inst.groups is not None else 0,
        "total_work": inst.total_work,
        "total_comm": inst.total_comm,
        "comm_work_ratio": ratio,
        "regime": regime_of(ratio),
        **mem,
        "constraints": sorted(inst.constraints),
        "generator": "instances.torch_import.import_exported (training=True, level=layer)",
        "params": prov,
        "seed": None,
        "description": f"{prov['model']}, training layer graph (forward + backward, "
                       f"Adam), batch {prov['batch_size']}, {prov['hardware']}",
        "units": {"work": "us", "comm": "us", "memory": "bytes"},
        "flops": totals.get("flops"),
        "backward_flops": totals.get("backward_flops"),
        "parameter_bytes": totals.get("parameter_bytes"),
        "versions": versions,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def build(out_dir: Path = DATA_DIR, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Trace every spec into ``out_dir`` and write ``MANIFEST.json``.

    With ``only`` (model names, e.g. ``gpt2``, or entry names, ``gpt2-layers``), rebuild
    just those and keep the other manifest entries.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = _versions()
    old: dict[str, dict[str, Any]] = {}
    man_path = out_dir / "MANIFEST.json"
    if only:
        known = {s.model.name for s in SPECS} | {s.name for s in SPECS}
        unknown = sorted(only - known)
        if unknown:
            from pipecert.errors import InputError

            raise InputError(f"--only: unknown entries {', '.join(unknown)} (known: "
                             f"{', '.join(s.model.name for s in SPECS)})")
        if man_path.is_file():
            old = {e["id"]: e for e in json.loads(man_path.read_text())["instances"]}
    entries: list[dict[str, Any]] = []
    for spec in SPECS:
        if only and spec.model.name not in only and spec.name not in only:
            if f"{SUITE}/{spec.name}" in old:
                entries.append(old[f"{SUITE}/{spec.name}"])
            continue
        t0 = time.perf_counter()
        inst, prov = build_entry(spec)
        raw = dumps(inst).encode("utf-8")
        (out_dir / f"{spec.name}.json.gz").write_bytes(_gzip(raw))
        entries.append(_entry(spec.name, inst, prov, raw, versions))
        log.info("%s: %d nodes, %d units, memory %.4g / cap %s bytes, built in %.1f s",
                 spec.name, inst.n_nodes, inst.n_units, entries[-1]["total_memory"],
                 inst.memory_limit, time.perf_counter() - t0)
    manifest = {
        "schema": 1,
        "suite": SUITE,
        "description": "Training layer graphs (forward + backward, co-located pairs, "
                       "data-only gradient edges, memory of weights + gradients + Adam "
                       "state + stashed activations, cap = device memory) of six "
                       "architectures of the models suite "
                       "(python -m instances.build_training_suite)",
        "versions": versions,
        "instances": entries,
    }
    man_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return entries


def check(data_dir: Path = DATA_DIR, only: set[str] | None = None) -> list[str]:
    """Rebuild into a temporary folder and list every file that differs from ``data_dir``.

    With ``only``, rebuild and compare just those entries (the manifest is not compared).
    """
    problems = []
    man = data_dir / "MANIFEST.json"
    if man.is_file():
        recorded = json.loads(man.read_text()).get("versions")
        if recorded != _versions():
            problems.append(f"versions differ: built with {recorded}, running {_versions()} "
                            "(node names may change between versions)")
    with tempfile.TemporaryDirectory() as tmp:
        if only:
            names = {s.name for s in SPECS if s.model.name in only or s.name in only}
            build(Path(tmp), only)
            fresh_files = [Path(tmp) / f"{n}.json.gz" for n in sorted(names)]
        else:
            build(Path(tmp))
            fresh_files = sorted(Path(tmp).iterdir())
        for p in fresh_files:
            old = data_dir / p.name
            if not old.is_file():
                problems.append(f"{p.name}: missing")
            elif old.read_bytes() != p.read_bytes():
                problems.append(f"{p.name}: differs")
        if not only:
            fresh = {p.name for p in Path(tmp).iterdir()}
            for p in sorted(data_dir.iterdir()):
                if p.name not in fresh:
                    problems.append(f"{p.name}: not produced by the build")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the committed files")
    ap.add_argument("--only", help="comma-separated model names to rebuild (or check)")
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    only = set(args.only.split(",")) if args.only else None
    if args.check:
        problems = check(args.out, only)
        for p in problems:
            print(p)
        print("ok" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    t0 = time.perf_counter()
    entries = build(args.out, only)
    total = sum((args.out / e["file"]).stat().st_size for e in entries)
    print(f"{len(entries)} instances, {total / 1e6:.2f} MB compressed, "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
