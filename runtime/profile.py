"""Measure a PyTorch model's operators on the local device: an instance with measured costs.

:func:`profile_module` (``pipecert profile module:factory``) builds the same graph as
``pipecert import-torch`` (:func:`instances.torch_import.trace` and
:func:`~instances.torch_import.graph_from_exported`: same node ids, edges, memory and
``--level layer`` merging) and replaces the roofline's predicted work by measured times, as
PipeDream's profiler does.

Work (microseconds). The exported program's graph runs node by node in a
:class:`torch.fx.Interpreter` with the factory's real weights and inputs, under
``torch.no_grad``. ``warmup`` whole passes run untimed; then ``repeats`` passes time every
``call_function`` node once each (so each operator is timed in context, with the caches and
allocator state of a real forward pass, not re-run hot in a loop). A node's time is the
median of its ``repeats`` samples minus the *timer overhead*, clipped at 0; the quartiles
of every operator are kept in ``metadata["profile"]["per_operator_us"]``.

* CPU: each call is bracketed by ``time.perf_counter_ns``. This is wall time of the
  dispatcher and kernel, the time a CPU stage spends on that operator.
* CUDA: each call is bracketed by two ``torch.cuda.Event(enable_timing=True)`` recorded on
  the current stream; the device is synchronised at the end of each pass and the event
  pairs read with ``elapsed_time``: GPU time of the operator's kernels (host launch cost
  that overlaps earlier kernels is not counted, as on a busy pipeline stage).

Timer overhead: the same bracketing around an empty region, ``repeats x 50`` times; its
median is subtracted from every node's median and recorded
(``metadata["cost_model"]["timer_overhead_us"]``). At the operator level each ATen node's
time is its own (``getitem`` nodes, folded into their producer by the importer, add their
time to it); at the layer level a layer's work is the sum of its members' times (the
importer's merge, :func:`instances.costmodel.aggregate_layers`). Views are timed too (they
cost dispatcher time on a CPU); sources (parameters, inputs) cost 0.

Transfer (microseconds). ``c(v) = bytes(v) / bandwidth`` with the bytes at the traced dtype
(the tensors that actually run) and the bandwidth given (``bandwidth=``) or measured
(:func:`measure_bandwidth`): CPU, a copy of a 64 MiB tensor between two buffers; CUDA with
two or more devices, ``cuda:0 -> cuda:1``; one CUDA device, pinned host -> device. The
bandwidth is bytes copied per second (median of the repeats).

A module built on the ``meta`` device (``instances.build_models_suite:factory``) is
allocated on the device with random weights from its own initialisers (times do not depend
on the values). The graph is traced on the profiling device, and a model's Python code may
trace differently there than on ``meta``: GPT-2 (transformers 5.24) traced on ``meta`` has
one extra ``aten.contiguous`` per block (12 nodes) that a CPU trace has not, so a partition
of a meta-imported graph names nodes a CPU profile lacks; to compare, import the
materialised module (:func:`materialise`) with ``import_module``.

Memory is the importer's: parameter and activation bytes at the traced dtype; the cap per
stage is the CUDA device's memory (none on CPU). Training graphs are not profiled (forward
only).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from instances.costmodel import (
    TIME_UNIT,
    CostModel,
    HardwareProfile,
    OpNode,
    build_instance,
    dtype_name,
)
from instances.torch_import import (
    _versions,
    call_factory,
    graph_from_exported,
    load_factory,
    trace,
)
from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = [
    "resolve_device",
    "measure_timer_overhead",
    "measure_bandwidth",
    "materialise",
    "time_exported",
    "MeasuredCostModel",
    "profile_module",
    "profile_factory",
]

#: bytes copied by :func:`measure_bandwidth` (64 MiB)
BANDWIDTH_BYTES = 64 * 2**20


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("profiling needs torch: pip install torch==2.13.0 and "
                         "pip install -e '.[torch]'") from exc
    return torch


def resolve_device(text: str) -> Any:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a ``torch.device``.

    Raises
    ------
    InputError
        On another device name, or CUDA requested where torch sees no CUDA device.
    """
    torch = _torch()
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) \
            or (kind == "cpu" and index):
        raise InputError(f"unknown device {text!r} (use cpu, cuda or cuda:N)")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise InputError(f"device {text!r} requested but CUDA is not available "
                         f"(torch {torch.__version__}, cuda {torch.version.cuda})")
    n = torch.cuda.device_count()
    dev = torch.device(text if index else "cuda:0")
    if dev.index is not None and dev.index >= n:
        raise InputError(f"device {text!r} requested but only {n} CUDA device(s) exist")
    return dev


class _Clock:
    """Brackets a region: wall clock on CPU, CUDA events on a GPU (read after :meth:`sync`)."""

    def __init__(self, device: Any) -> None:
        self.torch = _torch()
        self.cuda = device.type == "cuda"
        self.device = device
        self.pending: list[tuple[Any, Any]] = []

    def start(self) -> Any:
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
            return ev
        return time.perf_counter_ns()

    def stop(self, begin: Any) -> Any:
        """A handle whose seconds :meth:`seconds` returns after :meth:`sync`."""
        if self.cuda:
            ev = self.torch.cuda.Event(enable_timing=True)
            ev.record()
            return (begin, ev)
        return (time.perf_counter_ns() - begin) * 1e-9

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize(self.device)

    def seconds(self, handle: Any) -> float:
        if self.cuda:
            a, b = handle
            return float(a.elapsed_time(b)) * 1e-3
        return float(handle)

    @property
    def label(self) -> str:
        return "torch.cuda.Event pairs, synchronised per pass" if self.cuda \
            else "time.perf_counter_ns"


def measure_timer_overhead(device: Any, repeats: int = 500) -> float:
    """Median seconds the clock reports for an empty region on ``device``."""
    clock = _Clock(device)
    clock.sync()
    for _ in range(10):  # warm-up of the clock itself
        clock.stop(clock.start())
    handles = [clock.stop(clock.start()) for _ in range(max(repeats, 1))]
    clock.sync()
    return float(statistics.median(clock.seconds(h) for h in handles))


def measure_bandwidth(device: Any, *, nbytes: int = BANDWIDTH_BYTES, warmup: int = 2,
                      repeats: int = 7) -> dict[str, Any]:
    """Measured transfer bandwidth for the device pair of a pipeline on ``device``.

    CPU: ``dst.copy_(src)`` between two ``nbytes`` buffers (a stage handing a tensor to the
    next one through memory). CUDA with at least two devices: ``cuda:0 -> cuda:1`` (or the
    given device to the next one). One CUDA device: pinned host memory -> device.

    Returns
    -------
    dict
        ``bytes_per_s``, ``GBps`` (1e9 bytes/s), ``path`` (what was copied), ``bytes``,
        ``seconds`` (median), ``repeats``.
    """
    torch = _torch()
    n = max(int(nbytes) // 4, 1)
    if device.type == "cpu":
        src = torch.ones(n, dtype=torch.float32)
        dst = torch.empty_like(src)
        path = "cpu -> cpu (copy between two buffers)"
    else:
        count = torch.cuda.device_count()
        idx = device.index or 0
        if count >= 2:
            peer = torch.device("cuda", (idx + 1) % count)
            src = torch.ones(n, dtype=torch.float32, device=device)
            dst = torch.empty(n, dtype=torch.float32, device=peer)
            path = f"{device} -> {peer} (device to device)"
        else:
            src = torch.ones(n, dtype=torch.float32).pin_memory()
            dst = torch.empty(n, dtype=torch.float32, device=device)
            path = f"cpu (pinned) -> {device} (host to device)"
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(max(warmup, 0)):
        dst.copy_(src)
    sync()
    samples: list[float] = []
    for _ in range(max(repeats, 1)):
        sync()
        t0 = time.perf_counter_ns()
        dst.copy_(src)
        sync()
        samples.append((time.perf_counter_ns() - t0) * 1e-9)
    sec = float(statistics.median(samples))
    moved = float(n * 4)
    bw = moved / sec if sec > 0 else math.inf
    return {"bytes_per_s": bw, "GBps": bw / 1e9, "path": path, "bytes": moved,
            "seconds": sec, "repeats": max(repeats, 1)}


def _flat_inputs(ep: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    """Values of the exported graph's placeholders, in order (weights, then user inputs)."""
    torch = _torch()
    from torch.export.graph_signature import InputKind

    spec = ep.call_spec.in_spec
    kw = dict(kwargs)
    try:
        child = spec.child(1) if hasattr(spec, "child") else spec.children_specs[1]
        keys = list(child.context)
        if sorted(keys) == sorted(kw):
            kw = {k: kw[k] for k in keys}
    except (AttributeError, IndexError, TypeError):
        pass
    user = iter(torch.utils._pytree.tree_leaves((tuple(args), kw)))
    flat: list[Any] = []
    for s in ep.graph_signature.input_specs:
        if s.kind == InputKind.USER_INPUT:
            flat.append(next(user))
        elif s.kind in (InputKind.PARAMETER, InputKind.BUFFER) and s.target in ep.state_dict:
            flat.append(ep.state_dict[s.target])
        elif s.target in ep.constants:
            flat.append(ep.constants[s.target])
        else:
            raise InputError(f"cannot find the value of graph input {s.arg.name!r} "
                             f"({s.kind.name})")
    return flat


def time_exported(ep: Any, args: Sequence[Any], kwargs: Mapping[str, Any], device: Any, *,
                  warmup: int = 2, repeats: int = 10) -> dict[str, list[float]]:
    """Per-node time samples (seconds) of an ``ExportedProgram`` run node by node.

    ``warmup`` passes run untimed, then ``repeats`` passes time every ``call_function``
    node once (see the module docstring). Inputs and weights must be on ``device``.

    Returns
    -------
    dict
        FX node name -> ``repeats`` samples in seconds (raw, timer overhead included).
    """
    torch = _torch()
    clock = _Clock(device)
    flat = _flat_inputs(ep, args, kwargs)
    handles: dict[str, list[Any]] = {}
    timing = [False]

    class _Timed(torch.fx.Interpreter):  # type: ignore[misc,name-defined]
        def run_node(self, n: Any) -> Any:
            if n.op != "call_function":
                return super().run_node(n)
            with self._set_current_node(n):
                a, kw = self.fetch_args_kwargs_from_env(n)
                if not timing[0]:
                    return n.target(*a, **kw)
                begin = clock.start()
                out = n.target(*a, **kw)
                handles.setdefault(n.name, []).append(clock.stop(begin))
                return out

    interp = _Timed(ep.graph_module)
    samples: dict[str, list[float]] = {}
    with torch.no_grad():
        for _ in range(max(warmup, 0)):
            interp.run(*flat)
        clock.sync()
        timing[0] = True
        for _ in range(max(repeats, 1)):
            interp.run(*flat)
            clock.sync()
            for name, hs in handles.items():
                samples.setdefault(name, []).extend(clock.seconds(h) for h in hs)
            handles.clear()
    return samples


class MeasuredCostModel(CostModel):
    """A :class:`CostModel` whose work is measured per node and comm is bytes / bandwidth.

    Parameters
    ----------
    times : mapping of str to float
        Seconds per operator node id (missing ids cost 0).
    bandwidth : float
        Bytes per second between two stages.
    device_name : str
        Shown as the hardware by ``describe_cost_model``.
    memory_capacity : float or None
        The memory cap per stage (bytes), none on CPU.
    info : mapping
        Merged into :meth:`describe` (device, dtype, method, measurements).
    """

    def __init__(self, times: Mapping[str, float], bandwidth: float, *, device_name: str,
                 memory_capacity: float | None = None,
                 info: Mapping[str, Any] | None = None) -> None:
        if not (math.isfinite(bandwidth) and bandwidth > 0):
            raise InputError(f"bandwidth must be a positive number of bytes/s, got "
                             f"{bandwidth!r}")
        prof = HardwareProfile(name=device_name, peak_flops={}, memory_bandwidth=bandwidth,
                               interconnect_bandwidth=bandwidth,
                               memory_capacity=memory_capacity,
                               description="measured on the local device")
        super().__init__(prof, None, 0.0)
        object.__setattr__(self, "times", dict(times))
        object.__setattr__(self, "info", dict(info or {}))

    def work_seconds(self, node: OpNode) -> float:
        """The node's measured seconds (0 for sources)."""
        if node.kind not in ("op", "view"):
            return 0.0
        return float(self.times.get(node.id, 0.0))  # type: ignore[attr-defined]

    def describe(self) -> dict[str, Any]:
        """JSON-ready description (``kind: measured``) for instance metadata."""
        out: dict[str, Any] = {
            "kind": "measured",
            "work": "median over the timed passes of each operator's time, minus the timer "
                    "overhead, clipped at 0 (0 for sources); layers sum their operators",
            "comm": "output bytes (traced dtype) / bandwidth",
            "memory": "parameter and activation bytes (traced dtype)",
            "time_unit": TIME_UNIT,
            "compute_dtype": self.info.get("dtype"),  # type: ignore[attr-defined]
            "hardware": {"name": self.profile.name,
                         "memory_capacity": self.profile.memory_capacity,
                         "interconnect_bandwidth": self.profile.interconnect_bandwidth},
        }
        out.update(self.info)  # type: ignore[attr-defined]
        return out


def _device_name(device: Any) -> str:
    torch = _torch()
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu ({cpu}, {torch.get_num_threads()} threads)"


def _to_device(value: Any, device: Any) -> Any:
    """Tensors of ``value`` moved to ``device``; meta tensors become zeros there."""
    torch = _torch()

    def move(v: Any) -> Any:
        if not isinstance(v, torch.Tensor):
            return v
        if v.is_meta:
            return torch.zeros(tuple(v.shape), dtype=v.dtype, device=device)
        return v.to(device)

    return torch.utils._pytree.tree_map(move, value)


def materialise(module: Any, device: Any, label: str) -> Any:
    """A meta-device module with real, random weights on ``device``.

    Times do not depend on the weights' values, so a model built on the ``meta`` device
    (the bundled suite's factory) is allocated with ``to_empty`` and initialised by its own
    code: ``init_weights()`` for Hugging Face models (parameters and buffers such as
    ``position_ids``), otherwise ``reset_parameters()`` of every submodule that has one.

    Raises
    ------
    InputError
        When a floating weight was written by no initialiser (weights start as NaN).
    """
    torch = _torch()
    module = module.to_empty(device=device)
    with torch.no_grad():
        # NaN marks what no initialiser wrote; integer buffers start at 0, not garbage
        for t in list(module.parameters()) + list(module.buffers()):
            t.fill_(math.nan if t.dtype.is_floating_point else 0)
        if callable(getattr(module, "init_weights", None)):
            module.init_weights()
        else:
            for sub in module.modules():
                if callable(getattr(sub, "reset_parameters", None)):
                    sub.reset_parameters()
    for n, t in list(module.named_parameters()) + list(module.named_buffers()):
        if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
            raise InputError(f"{label}: weight {n!r} has no initialiser after materialising "
                             "the meta-device module; build the model with real weights")
    return module


def _owners(ep: Any) -> dict[str, str]:
    """FX node name -> the node whose time it counts toward (getitem -> its producer)."""
    import operator

    owner: dict[str, str] = {}
    for node in ep.graph.nodes:
        if node.op == "call_function" and node.target is operator.getitem:
            owner[node.name] = owner.get(node.args[0].name, node.args[0].name)
        else:
            owner[node.name] = node.name
    return owner


def _quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(np.asarray(xs, dtype=float), [25, 50, 75])
    return float(q1), float(med), float(q3)


def profile_module(module: Any, args: Sequence[Any] = (),
                   kwargs: Mapping[str, Any] | None = None, *, device: str = "cpu",
                   level: str = "operator", layer_depth: int = 1, layer_extra: int = 1,
                   warmup: int = 2, repeats: int = 10, bandwidth: float | None = None,
                   name: str | None = None, batch_size: int | None = None,
                   metadata: Mapping[str, Any] | None = None,
                   clock_overhead: Callable[[Any], float] = measure_timer_overhead,
                   ) -> Instance:
    """Trace ``module`` like ``import-torch`` and price its nodes by measured times.

    Parameters
    ----------
    module : torch.nn.Module
        The model; moved to ``device``. A module on the ``meta`` device (the bundled suite's
        factory) gets random weights (:func:`materialise`; recorded in
        ``metadata["cost_model"]["weights"]``).
    args, kwargs
        Example inputs (moved to ``device``).
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.
    level, layer_depth, layer_extra
        As :func:`instances.torch_import.import_module` (defaults as ``import-torch``'s).
    warmup, repeats : int
        Untimed and timed whole passes (``repeats >= 1``).
    bandwidth : float, optional
        Bytes/s between stages; default: :func:`measure_bandwidth` on ``device``.
    batch_size : int, optional
        Recorded in the metadata.
    clock_overhead : callable
        Measures the timer overhead on a device (seconds); replaceable in tests.

    Raises
    ------
    InputError
        On a bad device, a meta-device module that cannot be materialised, an
        untraceable model, bad
        ``warmup`` / ``repeats`` / ``bandwidth``.
    """
    torch = _torch()
    if repeats < 1:
        raise InputError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise InputError(f"warmup must be >= 0, got {warmup}")
    if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise InputError(f"bandwidth must be a positive number of bytes/s, got {bandwidth!r}")
    if level not in ("operator", "layer"):
        raise InputError(f"unknown graph level {level!r} (use 'operator' or 'layer')")
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    dev = resolve_device(device)
    label = name or type(module).__name__
    weights = "the factory's"
    if any(t.is_meta for t in list(module.parameters()) + list(module.buffers())):
        module = materialise(module, dev, label)
        weights = "random (materialised from the meta device)"
    module = module.to(dev).eval()
    args = tuple(_to_device(tuple(args), dev))
    kw = dict(_to_device(dict(kwargs or {}), dev))
    ep = trace(module, args, kw, name=label)
    records = graph_from_exported(ep, name=label)

    overhead = float(clock_overhead(dev))
    raw = time_exported(ep, args, kw, dev, warmup=warmup, repeats=repeats)
    owner = _owners(ep)
    ids = {r.id for r in records}
    per_op: dict[str, list[float]] = {}
    times: dict[str, float] = {}
    unmapped = 0.0
    for fx_name, xs in raw.items():
        q1, med, q3 = _quartiles(xs)
        t = max(med - overhead, 0.0)
        per_op[fx_name] = [round(med * 1e6, 4), round(q1 * 1e6, 4), round(q3 * 1e6, 4)]
        target = owner.get(fx_name, fx_name)
        if target in ids:
            times[target] = times.get(target, 0.0) + t
        else:
            unmapped += t
    passes = np.array([sum(max(xs[r] - overhead, 0.0) for xs in raw.values())
                       for r in range(repeats)]) if raw else np.zeros(1)
    q1t, medt, q3t = _quartiles(passes.tolist())

    # the eager module's forward pass, for reference (interpreter overhead = the difference)
    clock = _Clock(dev)
    eager: list[float] = []
    with torch.no_grad():
        for _ in range(max(warmup, 1)):
            module(*args, **kw)
        clock.sync()
        for _ in range(repeats):
            begin = clock.start()
            module(*args, **kw)
            h = clock.stop(begin)
            clock.sync()
            eager.append(clock.seconds(h))

    bw_info: dict[str, Any]
    if bandwidth is None:
        bw_info = measure_bandwidth(dev, warmup=max(warmup, 1), repeats=max(repeats, 3))
        bw_info["source"] = "measured"
    else:
        bw_info = {"bytes_per_s": float(bandwidth), "GBps": float(bandwidth) / 1e9,
                   "source": "given (--bandwidth)"}
    dtypes = sorted({dtype_name(t.dtype) for t in list(module.parameters())
                     + [a for a in torch.utils._pytree.tree_leaves((args, kw))
                        if isinstance(a, torch.Tensor)] if t.dtype.is_floating_point})
    capacity = (float(torch.cuda.get_device_properties(dev).total_memory)
                if dev.type == "cuda" else None)
    info: dict[str, Any] = {
        "device": str(dev),
        "device_name": _device_name(dev),
        "dtype": ", ".join(dtypes) or "none (no floating tensors)",
        "weights": weights,
        "batch_size": batch_size,
        "threads": int(torch.get_num_threads()),
        "method": {"warmup_passes": warmup, "repeats": repeats, "statistic": "median",
                   "spread": "interquartile range (q1, q3)",
                   "timer": clock.label,
                   "runner": "torch.fx.Interpreter over the exported program, no_grad"},
        "timer_overhead_us": overhead * 1e6,
        "bandwidth_bytes_per_s": float(bw_info["bytes_per_s"]),
        "bandwidth": bw_info,
        "torch_version": str(torch.__version__),
        "cpus_available": (len(os.sched_getaffinity(0))
                             if hasattr(os, "sched_getaffinity") else None),
    }
    cm = MeasuredCostModel(times, float(bw_info["bytes_per_s"]),
                           device_name=info["device_name"], memory_capacity=capacity,
                           info=info)
    meta: dict[str, Any] = {
        "importer": "pipecert profile (torch.export + measured times)",
        "ir": "aten (export IR)",
        "versions": _versions(),
    }
    if records:
        for key in ("uncounted_flops", "unused_sources"):
            if key in records[0].extra:
                meta[key] = records[0].extra[key]
    meta.update(metadata or {})
    meta["profile"] = {
        "per_operator_us": {"columns": ["median", "q1", "q3"], "values": per_op},
        "total_us": {"median": medt * 1e6, "q1": q1t * 1e6, "q3": q3t * 1e6,
                     "what": "sum of the operators' times per timed pass"},
        "unmapped_us": unmapped * 1e6,
        "eager_forward_us": {"median": float(statistics.median(eager)) * 1e6,
                             "what": "the module's own forward pass, same device"},
    }
    return build_instance(records, cm, name=label, level=level, layer_depth=layer_depth,
                          layer_extra=layer_extra, metadata=meta, source=label)


def profile_factory(spec: str, *, batch_size: int | None = None,
                    options: Mapping[str, Any] | None = None, name: str | None = None,
                    **kwargs: Any) -> Instance:
    """Profile the model built by factory ``module:function`` (``pipecert profile``).

    ``kwargs`` go to :func:`profile_module` (device, level, warmup, repeats, bandwidth...).
    """
    factory = load_factory(spec)
    module, args, kw = call_factory(factory, batch_size=batch_size, options=options,
                                    spec=spec)
    meta = {"factory": spec, "batch_size": batch_size, "factory_options": dict(options or {})}
    meta.update(kwargs.pop("metadata", None) or {})
    return profile_module(module, args, kw, name=name or spec.partition(":")[2],
                          batch_size=batch_size, metadata=meta, **kwargs)
