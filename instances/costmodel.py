"""A roofline cost model that turns an operator graph into an :class:`~pipecert.Instance`.

The importers (:mod:`instances.torch_import`, :mod:`instances.formats.onnx`) describe a model
as a list of :class:`OpNode` records (one per operator, parameter, buffer, constant and model
input: its FLOPs, its input and output tensors as ``(numel, dtype)`` pairs and its data
predecessors). :func:`build_instance` prices them on a :class:`HardwareProfile`:

* **work** of an operator = ``max(flops / peak_flops, bytes_moved / memory_bandwidth)`` plus an
  optional per-operator launch overhead (the roofline model: a kernel is limited either by its
  arithmetic or by reading its inputs and writing its outputs once). ``bytes_moved`` is the
  bytes of all input and output tensors. View operators (reshape, transpose, getitem, eval-mode
  dropout, ...) alias their input and launch no kernel: their work is 0. Sources (model inputs,
  parameters, buffers, constants) have work 0.
* **comm** of a node = the bytes of its output tensors (those some consumer reads) over the
  one-way interconnect bandwidth: the time to send the output once to another stage.
* **memory** of a node = the bytes of the tensor it holds: a parameter/buffer/constant its
  size, an operator its output activation (0 for views, which alias), an input its size.
* **memory cap** (``Instance.memory_limit``) = the profile's ``memory_capacity``, the
  **device memory** (80e9 bytes for ``a100``/``h100``, 34.36e9 bytes, 32 GiB rounded, for
  ``tpu-v4``). It is **enforced**: a stage's memory must fit in it (``check_feasible``, every
  solver), so a graph whose memory exceeds it needs several stages (the bundled
  ``llama-3.1-405b-core-aten``, 943 GB, at least 12 on 80 GB devices) and a node larger than
  it is infeasible. ``pipecert import-torch --memory-limit`` and ``pipecert solve
  --memory-limit`` override it (``none`` drops it).

Training graphs (``build_instance(..., training=True)``, ``import-torch --training``) add a
backward node per parameter and per operator that needs a gradient, priced by
:meth:`CostModel.backward_work_seconds` (the roofline of autograd's backward kernels) and
co-located with its forward node; a parameter's backward node holds its gradient and the
optimizer state. See :mod:`instances.torch_import` for the rule and its measured accuracy.

FLOPs are counted the way :class:`torch.utils.flop_counter.FlopCounterMode` counts them:
``2 * M * N * K`` per matrix product (bias additions included in the product), convolutions
as ``2 * output_elements * C_in / groups * kernel_elements``, attention as its two matrix
products, and 0 for everything else (element-wise operators are memory bound on every profile
here, so their roofline time is ``bytes / memory_bandwidth`` whatever their FLOPs).

Costs are in **microseconds** (``metadata["units"]``): typical operator times are 1e-7 to
1e-2 s, and microseconds keep the numbers in a range solvers handle without tolerance trouble.
Memory is in bytes. The cost model, the hardware numbers and their sources are written into
``metadata["cost_model"]``.

With ``compute_dtype`` set (default ``"bfloat16"``: inference on accelerators), every floating
tensor is priced at that element size and the peak of that dtype, whatever dtype the model was
traced in (models are traced in float32 on CPU); integer and boolean tensors keep their size.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = [
    "DTYPE_BYTES",
    "HARDWARE_DIR",
    "TIME_UNIT",
    "HardwareProfile",
    "CostModel",
    "OpNode",
    "Tensor",
    "list_profiles",
    "load_profile",
    "dtype_name",
    "build_instance",
    "layer_key",
]

HARDWARE_DIR = Path(__file__).resolve().parent / "hardware"
#: unit of work and comm in the instances built here
TIME_UNIT = "us"
_PER_SECOND = 1e6

#: bytes per element, by canonical dtype name
DTYPE_BYTES: dict[str, int] = {
    "float64": 8, "float32": 4, "tf32": 4, "float16": 2, "bfloat16": 2,
    "float8": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1, "complex128": 16, "complex64": 8,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2,
    "uint8": 1, "bool": 1, "int4": 1, "uint4": 1, "string": 8,
}
_FLOATING = {"float64", "float32", "tf32", "float16", "bfloat16", "float8", "float8_e4m3fn",
             "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz"}
_ALIASES = {"double": "float64", "float": "float32", "half": "float16", "long": "int64",
            "int": "int32", "short": "int16", "fp32": "float32", "fp16": "float16",
            "bf16": "bfloat16", "fp64": "float64", "fp8": "float8"}


def dtype_name(dtype: object) -> str:
    """Canonical name of a dtype given as a string or a torch/numpy dtype (``"float32"``...).

    Examples
    --------
    >>> dtype_name("torch.bfloat16"), dtype_name("half")
    ('bfloat16', 'float16')
    """
    s = str(dtype).lower()
    if s.startswith("torch."):
        s = s[6:]
    s = _ALIASES.get(s, s)
    if s not in DTYPE_BYTES:
        raise InputError(f"unknown dtype {dtype!r} (known: {', '.join(sorted(DTYPE_BYTES))})")
    return s


#: a tensor as (number of elements, canonical dtype name)
Tensor = tuple[int, str]


# ---------------------------------------------------------------------- hardware profiles
@dataclass(frozen=True)
class HardwareProfile:
    """An accelerator class: peak arithmetic, memory bandwidth and stage-to-stage bandwidth.

    Parameters
    ----------
    name : str
        Profile name (``a100``, ``h100``, ``tpu-v4`` ... or a user profile's).
    peak_flops : mapping of str to float
        Dense peak FLOP/s per compute dtype (``bfloat16``, ``float32``, ...).
    memory_bandwidth : float
        Device memory bandwidth in bytes/s.
    interconnect_bandwidth : float
        One-way bandwidth between two neighbouring stages, bytes/s.
    memory_capacity : float or None
        Device memory in bytes; becomes the instance's ``memory_limit``, the memory cap
        per stage, which is enforced.
    launch_overhead : float
        Seconds added to the work of every operator that launches a kernel.
    sources : tuple of str
        Where the numbers come from (datasheets, papers).
    """

    name: str
    peak_flops: Mapping[str, float]
    memory_bandwidth: float
    interconnect_bandwidth: float
    memory_capacity: float | None = None
    launch_overhead: float = 0.0
    description: str = ""
    sources: tuple[str, ...] = ()
    path: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> HardwareProfile:
        """Validate a profile table (the TOML layout of ``instances/hardware/*.toml``)."""
        def number(key: str, *, required: bool = True, positive: bool = True) -> float | None:
            if key not in data:
                if required:
                    raise InputError(f"hardware profile lacks {key!r}", source=source)
                return None
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise InputError(f"hardware profile {key!r} must be a number, got {v!r}",
                                 source=source)
            if v < 0 or (positive and v == 0):
                raise InputError(f"hardware profile {key!r} must be > 0, got {v!r}",
                                 source=source)
            return float(v)

        known = {"name", "description", "peak_flops", "memory_bandwidth",
                 "interconnect_bandwidth", "memory_capacity", "launch_overhead", "sources"}
        extra = sorted(set(data) - known)
        if extra:
            raise InputError(f"unknown hardware profile key(s) {', '.join(extra)} "
                             f"(known: {', '.join(sorted(known))})", source=source)
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise InputError("hardware profile lacks a 'name' string", source=source)
        peaks_in = data.get("peak_flops")
        if isinstance(peaks_in, int | float) and not isinstance(peaks_in, bool):
            peaks_in = {"float32": peaks_in, "bfloat16": peaks_in, "float16": peaks_in}
        if not isinstance(peaks_in, Mapping) or not peaks_in:
            raise InputError("hardware profile 'peak_flops' must be a table of dtype = FLOP/s "
                             "(or one number)", source=source)
        peaks: dict[str, float] = {}
        for k, v in peaks_in.items():
            try:
                dk = dtype_name(k)
            except InputError:
                raise InputError(f"hardware profile peak_flops has unknown dtype {k!r}",
                                 source=source) from None
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0 \
                    or not math.isfinite(v):
                raise InputError(f"hardware profile peak_flops.{k} must be a number > 0, "
                                 f"got {v!r}", source=source)
            peaks[dk] = float(v)
        sources = data.get("sources", ())
        if isinstance(sources, str):
            sources = (sources,)
        return cls(
            name=name,
            peak_flops=dict(sorted(peaks.items())),
            memory_bandwidth=number("memory_bandwidth"),  # type: ignore[arg-type]
            interconnect_bandwidth=number("interconnect_bandwidth"),  # type: ignore[arg-type]
            memory_capacity=number("memory_capacity", required=False),
            launch_overhead=number("launch_overhead", required=False, positive=False) or 0.0,
            description=str(data.get("description", "")),
            sources=tuple(str(s) for s in sources),
            path=source,
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> HardwareProfile:
        """Read a user-defined profile from a TOML file (same keys as the bundled ones)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"invalid TOML ({exc})", source=str(p)) from None
        return cls.from_dict(data, source=str(p))

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype`` (float32 falls back to tf32 only if float32 is absent)."""
        d = dtype_name(dtype)
        if d in self.peak_flops:
            return self.peak_flops[d]
        if d.startswith("float8") and "float8" in self.peak_flops:
            return self.peak_flops["float8"]
        if d == "float32" and "tf32" in self.peak_flops:
            return self.peak_flops["tf32"]
        raise InputError(f"hardware profile {self.name!r} has no peak_flops for {d} "
                         f"(has {', '.join(self.peak_flops)})", source=self.path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (stored in instance metadata)."""
        out: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "peak_flops": dict(self.peak_flops),
            "memory_bandwidth": self.memory_bandwidth,
            "interconnect_bandwidth": self.interconnect_bandwidth,
            "memory_capacity": self.memory_capacity,
            "launch_overhead": self.launch_overhead,
            "sources": list(self.sources),
        }
        return out


def list_profiles() -> list[str]:
    """Names of the bundled hardware profiles (``instances/hardware/*.toml``), sorted."""
    return sorted(p.stem for p in HARDWARE_DIR.glob("*.toml"))


def load_profile(spec: str | Path | HardwareProfile) -> HardwareProfile:
    """A bundled profile by name (``"a100"``), or a user profile from a ``.toml`` path."""
    if isinstance(spec, HardwareProfile):
        return spec
    s = str(spec)
    p = Path(s)
    if s.endswith(".toml") or p.is_file():
        if not p.is_file():
            raise FileNotFoundError(2, "No such file or directory", s)
        return HardwareProfile.from_toml(p)
    bundled = HARDWARE_DIR / f"{s.lower()}.toml"
    if not bundled.is_file():
        raise InputError(f"unknown hardware profile {s!r} (bundled: "
                         f"{', '.join(list_profiles())}; or give a .toml file)")
    prof = HardwareProfile.from_toml(bundled)
    return prof


# ---------------------------------------------------------------------- graph records
@dataclass
class OpNode:
    """One node of an operator graph, before pricing.

    Attributes
    ----------
    id : str
        Unique node id.
    kind : str
        ``"input"``, ``"parameter"``, ``"buffer"``, ``"constant"`` (zero-work sources),
        ``"op"`` (a kernel) or ``"view"`` (an aliasing operator, no kernel).
    op_type : str
        Operator name (``aten.linear.default``, ``MatMul``, ``parameter``...).
    inputs : tuple of str
        Ids of the nodes whose outputs this node reads (data edges), without repeats.
    in_tensors, out_tensors : tuple of Tensor
        Tensors read and written, as ``(numel, dtype)``.
    sent_tensors : tuple of Tensor or None
        Output tensors that some consumer reads (the comm charge); ``None`` = all outputs.
    flops : float
        Floating-point operations (FlopCounterMode conventions, see the module docstring).
    label : str
        Human-readable name (module path, parameter name...).
    module : str
        Dotted path of the innermost module the node belongs to ('' if none), for
        layer-level aggregation.
    """

    id: str
    kind: str
    op_type: str
    inputs: tuple[str, ...] = ()
    in_tensors: tuple[Tensor, ...] = ()
    out_tensors: tuple[Tensor, ...] = ()
    sent_tensors: tuple[Tensor, ...] | None = None
    flops: float = 0.0
    label: str = ""
    module: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    KINDS = ("input", "parameter", "buffer", "constant", "op", "view")

    @property
    def is_source(self) -> bool:
        """Whether the node is a zero-work source (input, parameter, buffer, constant)."""
        return self.kind in ("input", "parameter", "buffer", "constant")


@dataclass(frozen=True)
class CostModel:
    """Roofline pricing of :class:`OpNode` records on a hardware profile.

    Parameters
    ----------
    profile : HardwareProfile or str
        A profile or the name / TOML path of one.
    compute_dtype : str or None
        Price every floating tensor at this dtype's size and peak (default ``bfloat16``);
        ``None`` keeps the traced dtypes (and the peak of each operator's output dtype).
    launch_overhead : float or None
        Seconds added per kernel-launching operator; ``None`` takes the profile's value.
    """

    profile: HardwareProfile
    compute_dtype: str | None = "bfloat16"
    launch_overhead: float | None = None

    def __init__(self, profile: HardwareProfile | str | Path = "a100",
                 compute_dtype: str | None = "bfloat16",
                 launch_overhead: float | None = None) -> None:
        object.__setattr__(self, "profile", load_profile(profile))
        cd = None if compute_dtype is None else dtype_name(compute_dtype)
        if cd is not None:
            self.profile.peak(cd)  # raises if the profile has no peak for it
        object.__setattr__(self, "compute_dtype", cd)
        if launch_overhead is not None and (not math.isfinite(launch_overhead)
                                            or launch_overhead < 0):
            raise InputError(f"launch overhead must be >= 0 seconds, got {launch_overhead!r}")
        object.__setattr__(self, "launch_overhead", launch_overhead)

    @property
    def overhead_s(self) -> float:
        """Launch overhead in seconds actually applied."""
        return (self.profile.launch_overhead if self.launch_overhead is None
                else float(self.launch_overhead))

    def tensor_bytes(self, t: Tensor) -> float:
        """Bytes of a tensor under the compute dtype."""
        numel, dt = t
        if self.compute_dtype is not None and dt in _FLOATING:
            dt = self.compute_dtype
        return float(numel) * DTYPE_BYTES.get(dt, 4)

    def bytes_of(self, tensors: Iterable[Tensor]) -> float:
        """Total bytes of ``tensors``."""
        return float(sum(self.tensor_bytes(t) for t in tensors))

    def peak_for(self, node: OpNode) -> float:
        """Peak FLOP/s that applies to ``node``."""
        if self.compute_dtype is not None:
            return self.profile.peak(self.compute_dtype)
        for _, dt in node.out_tensors:
            if dt in _FLOATING:
                return self.profile.peak(dt)
        return self.profile.peak("float32")

    def work_seconds(self, node: OpNode) -> float:
        """Roofline time of ``node`` in seconds (0 for sources and views)."""
        if node.kind != "op":
            return 0.0
        moved = self.bytes_of(node.in_tensors) + self.bytes_of(node.out_tensors)
        t = max(node.flops / self.peak_for(node), moved / self.profile.memory_bandwidth)
        return t + self.overhead_s

    def backward_work_seconds(self, node: OpNode) -> float:
        """Roofline time of ``node``'s backward pass in seconds (training graphs).

        0 for sources, views and operators that need no gradient
        (``node.extra["needs_grad"]`` false). Otherwise ``max(backward_flops / peak,
        backward_bytes / memory_bandwidth) + launch_overhead`` where ``backward_flops`` is
        ``node.extra["backward_flops"]`` (autograd's kernels counted by FlopCounterMode;
        default ``2 x flops``) and ``backward_bytes`` = the output gradient read (output
        bytes) + the saved inputs read (input bytes) + the input gradients written (bytes
        of ``node.extra["grad_in_tensors"]``, default all inputs).
        """
        if node.kind != "op" or not node.extra.get("needs_grad", False):
            return 0.0
        flops = float(node.extra.get("backward_flops", 2.0 * node.flops))
        grad_in = node.extra.get("grad_in_tensors", node.in_tensors)
        moved = (self.bytes_of(node.out_tensors) + self.bytes_of(node.in_tensors)
                 + self.bytes_of(grad_in))
        t = max(flops / self.peak_for(node), moved / self.profile.memory_bandwidth)
        return t + self.overhead_s

    def comm_seconds(self, node: OpNode) -> float:
        """Time to send ``node``'s consumed outputs once, in seconds."""
        sent = node.out_tensors if node.sent_tensors is None else node.sent_tensors
        return self.bytes_of(sent) / self.profile.interconnect_bandwidth

    def memory_bytes(self, node: OpNode) -> float:
        """Bytes held by ``node``: its tensor (sources, operators) or 0 (views)."""
        if node.kind == "view":
            return 0.0
        return self.bytes_of(node.out_tensors)

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for instance metadata."""
        return {
            "kind": "roofline",
            "work": "max(flops / peak_flops, bytes_moved / memory_bandwidth) + launch_overhead"
                    " (0 for sources and views)",
            "comm": "output bytes / interconnect_bandwidth",
            "memory": "parameter and activation bytes",
            "time_unit": TIME_UNIT,
            "compute_dtype": self.compute_dtype,
            "peak_flops_used": (None if self.compute_dtype is None
                                else self.profile.peak(self.compute_dtype)),
            "launch_overhead_s": self.overhead_s,
            "hardware": self.profile.to_dict(),
        }


# ---------------------------------------------------------------------- building instances
_INDEX = re.compile(r"^\d+$")


def layer_key(module: str, depth: int = 2, extra: int = 0) -> str:
    """The layer a module path belongs to: the path up to its ``depth``-th numeric component.

    ``encoder.layer.3.attention.self.query`` -> ``encoder.layer.3`` (one index);
    ``resnet.encoder.stages.1.layers.2.shortcut`` -> ``resnet.encoder.stages.1.layers.2``;
    a path without an index keeps its first component (``embeddings``). ``extra`` keeps that
    many more components after the index (``extra=1``: ``encoder.layer.3.attention``, one
    node per sub-block).

    Examples
    --------
    >>> layer_key("encoder.layer.3.attention.self.query")
    'encoder.layer.3'
    >>> layer_key("embeddings.word_embeddings")
    'embeddings'
    """
    parts = [p for p in module.split(".") if p]
    seen = 0
    cut = None
    for i, p in enumerate(parts):
        if _INDEX.match(p):
            seen += 1
            cut = i + 1
            if seen >= depth:
                break
    if cut is None:
        cut = min(1, len(parts))
    else:
        cut = min(cut + extra, len(parts))
    return ".".join(parts[:cut])


def _check_graph(nodes: Sequence[OpNode], source: str | None) -> dict[str, int]:
    index: dict[str, int] = {}
    for i, nd in enumerate(nodes):
        if nd.kind not in OpNode.KINDS:
            raise InputError(f"node {nd.id!r} ({nd.op_type}) has unknown kind {nd.kind!r}",
                             source=source)
        if nd.id in index:
            raise InputError(f"duplicate node id {nd.id!r}", source=source)
        index[nd.id] = i
    for nd in nodes:
        for u in nd.inputs:
            if u not in index:
                raise InputError(f"operator {nd.op_type} (node {nd.id!r}) reads unknown "
                                 f"node {u!r}", source=source)
    return index


def _totals(nodes: Sequence[OpNode], cm: CostModel) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for nd in nodes:
        by_kind[nd.kind] = by_kind.get(nd.kind, 0) + 1
    params = [nd for nd in nodes if nd.kind in ("parameter", "buffer", "constant")]
    return {
        "flops": float(sum(nd.flops for nd in nodes)),
        "parameter_elements": int(sum(n for nd in params for n, _ in nd.out_tensors)),
        "parameter_bytes": cm.bytes_of(t for nd in params for t in nd.out_tensors),
        "activation_bytes": cm.bytes_of(t for nd in nodes if nd.kind == "op"
                                        for t in nd.out_tensors),
        "operators": by_kind.get("op", 0) + by_kind.get("view", 0),
        "nodes_by_kind": dict(sorted(by_kind.items())),
    }


#: the hardware profile that prices a graph when none is given (ONNX reader, PyTorch
#: importer); recorded as the default in metadata["cost_model"] and shown by ``info``
DEFAULT_HARDWARE = "a100"


def with_cost_model_info(instance: Instance, **info: Any) -> Instance:
    """The instance with ``info`` merged into ``metadata["cost_model"]``.

    Importers record there what priced the graph beyond :meth:`CostModel.describe`: the
    batch size, the hardware profile's name and whether it was the default, the importer.
    """
    meta = dict(instance.metadata)
    cm = dict(meta.get("cost_model") or {})
    cm.update(info)
    meta["cost_model"] = cm
    return instance.replace(metadata=meta)


def build_instance(
    nodes: Sequence[OpNode],
    cost_model: CostModel | None = None,
    *,
    name: str = "model",
    level: str = "operator",
    layer_depth: int = 2,
    layer_extra: int = 0,
    metadata: Mapping[str, Any] | None = None,
    source: str | None = None,
    training: bool = False,
    optimizer_states: int = 2,
) -> Instance:
    """Price an operator graph and return it as an :class:`Instance`.

    Parameters
    ----------
    nodes : sequence of OpNode
        The graph, in a topological order (every node after the nodes it reads).
    cost_model : CostModel, optional
        Default: ``CostModel("a100")`` (bfloat16).
    level : {"operator", "layer"}
        ``"operator"``: one node per record. ``"layer"``: records are merged into layers
        (see :func:`aggregate_layers`).
    layer_depth, layer_extra : int
        Arguments of :func:`layer_key` for ``level="layer"``.
    metadata : mapping, optional
        Extra metadata (provenance); ``units``, ``cost_model`` and ``totals`` are added.
    training : bool
        Build the training graph (:func:`instances.training.add_backward_nodes`): a
        backward node for every record with ``extra["needs_grad"]`` (parameters and the
        operators downstream of one), priced by :meth:`CostModel.backward_work_seconds`,
        co-located with its forward node; gradient and stash edges are data-only. At the
        layer level a layer's backward node sums its members' backward work.
    optimizer_states : int
        Training memory of a parameter: its forward node holds the weights, its backward
        node the gradient and ``optimizer_states`` optimizer tensors of the same size
        (2 = Adam's two moments, 1 = SGD momentum, 0 = plain SGD), all at the compute
        dtype. Operators hold their output activation (stashed for the backward pass) on
        the forward node; backward nodes of operators hold nothing (their gradients are
        transient).

    Raises
    ------
    InputError
        On an unknown level, a duplicate id or an edge to an unknown node.
    """
    cm = cost_model if cost_model is not None else CostModel()
    _check_graph(nodes, source)
    work = np.array([cm.work_seconds(nd) for nd in nodes]) * _PER_SECOND
    comm = np.array([cm.comm_seconds(nd) for nd in nodes]) * _PER_SECOND
    mem = np.array([cm.memory_bytes(nd) for nd in nodes])
    meta: dict[str, Any] = dict(metadata or {})
    meta["units"] = {"work": TIME_UNIT, "comm": TIME_UNIT, "memory": "bytes"}
    meta["cost_model"] = cm.describe()
    meta["totals"] = _totals(nodes, cm)
    meta["level"] = level
    limit = cm.profile.memory_capacity
    if training:
        return _training_instance(nodes, cm, work, comm, mem, name=name, level=level,
                                  layer_depth=layer_depth, layer_extra=layer_extra,
                                  metadata=meta, source=source,
                                  optimizer_states=optimizer_states)
    if level == "operator":
        index = {nd.id: i for i, nd in enumerate(nodes)}
        src = [index[u] for nd in nodes for u in nd.inputs]
        dst = [i for i, nd in enumerate(nodes) for _ in nd.inputs]
        return Instance.from_arrays(
            [nd.id for nd in nodes], work, comm, src, dst,
            memory=mem, name=name, labels=[nd.label or nd.id for nd in nodes],
            op_types=[nd.op_type for nd in nodes], memory_limit=limit, metadata=meta,
            source=source,
        )
    if level == "layer":
        meta["layer_key"] = {"depth": layer_depth, "extra": layer_extra}
        return aggregate_layers(nodes, work, comm, mem,
                                key=lambda nd: layer_key(nd.module, layer_depth, layer_extra),
                                name=name, memory_limit=limit, metadata=meta, source=source)
    raise InputError(f"unknown graph level {level!r} (use 'operator' or 'layer')",
                     source=source)


def _training_instance(nodes: Sequence[OpNode], cm: CostModel, work: np.ndarray,
                       comm: np.ndarray, mem: np.ndarray, *, name: str, level: str,
                       layer_depth: int, layer_extra: int, metadata: dict[str, Any],
                       source: str | None, optimizer_states: int) -> Instance:
    from instances.training import add_backward_nodes

    if isinstance(optimizer_states, bool) or not isinstance(optimizer_states, int) \
            or optimizer_states < 0:
        raise InputError(f"optimizer_states must be an integer >= 0, got "
                         f"{optimizer_states!r}", source=source)
    need = np.array([bool(nd.extra.get("needs_grad", False)) for nd in nodes])
    bwork = np.array([cm.backward_work_seconds(nd) for nd in nodes]) * _PER_SECOND
    bmem = np.array([optimizer_states + 1.0 if nd.kind == "parameter" else 0.0
                     for nd in nodes]) * mem
    meta = dict(metadata)
    meta["training"] = True
    meta["backward"] = {
        "work": "roofline of autograd's kernels: max(backward_flops / peak, (output + "
                "input + input-gradient bytes) / memory_bandwidth) + launch_overhead; "
                "backward_flops counted by FlopCounterMode on meta tensors",
        "memory": f"forward node: weights (parameters) or the stashed output activation "
                  f"(operators); backward node of a parameter: its gradient and "
                  f"{optimizer_states} optimizer state tensor(s) of its size; backward "
                  "node of an operator: 0",
        "optimizer_states": optimizer_states,
    }
    totals = dict(meta.get("totals", {}))
    totals["backward_flops"] = float(sum(float(nd.extra.get("backward_flops", 0.0))
                                         for nd in nodes if nd.extra.get("needs_grad")))
    meta["totals"] = totals
    limit = cm.profile.memory_capacity
    if level == "operator":
        index = {nd.id: i for i, nd in enumerate(nodes)}
        fwd = Instance.from_arrays(
            [nd.id for nd in nodes], work, comm,
            [index[u] for nd in nodes for u in nd.inputs],
            [j for j, nd in enumerate(nodes) for _ in nd.inputs],
            memory=mem, name=name, labels=[nd.label or nd.id for nd in nodes],
            op_types=[nd.op_type for nd in nodes], memory_limit=limit, metadata=meta,
            source=source)
        return add_backward_nodes(fwd, backward_work=bwork, backward_memory=bmem,
                                  needs_grad=need)
    if level == "layer":
        meta["layer_key"] = {"depth": layer_depth, "extra": layer_extra}

        def key(nd: OpNode) -> str:
            return layer_key(nd.module, layer_depth, layer_extra)

        fwd = aggregate_layers(nodes, work, comm, mem, key=key, name=name,
                               memory_limit=limit, metadata=meta, source=source)
        # the same segmentation (it depends on the records only) summing backward values
        bwd = aggregate_layers(nodes, bwork, comm, bmem, key=key, name=name,
                               source=source)
        lneed = aggregate_layers(nodes, need.astype(np.float64), comm, mem, key=key,
                                 name=name, source=source)
        assert fwd.ids == bwd.ids == lneed.ids
        assert bwd.memory is not None
        return add_backward_nodes(fwd, backward_work=bwd.work, backward_memory=bwd.memory,
                                  needs_grad=lneed.work > 0)
    raise InputError(f"unknown graph level {level!r} (use 'operator' or 'layer')",
                     source=source)


def aggregate_layers(
    nodes: Sequence[OpNode],
    work: np.ndarray,
    comm: np.ndarray,
    memory: np.ndarray,
    *,
    key: Callable[[OpNode], str],
    name: str,
    memory_limit: float | None = None,
    metadata: Mapping[str, Any] | None = None,
    source: str | None = None,
) -> Instance:
    """Merge a priced operator graph into layer nodes (a PipeDream-style layer graph).

    Operators are taken in their (topological) order, each source placed just before its
    first consumer; maximal runs of consecutive nodes with the same ``key`` become one layer.
    A layer's work and memory are the sums over its members; its comm is the sum of the comm
    of the members read by another layer (each tensor that leaves the layer is sent once).
    Because layers are contiguous segments of a topological order, the layer graph is
    acyclic. A consumer of one tensor of a layer is charged the layer's whole comm: layer
    graphs over-approximate the traffic of a cut, as profiled layer graphs do.
    """
    n = len(nodes)
    index = {nd.id: i for i, nd in enumerate(nodes)}
    consumers: list[list[int]] = [[] for _ in range(n)]
    for i, nd in enumerate(nodes):
        for u in nd.inputs:
            consumers[index[u]].append(i)
    order: list[int] = []
    placed = [False] * n
    for i, nd in enumerate(nodes):
        if nd.is_source and not nd.inputs:
            continue
        for u in nd.inputs:
            j = index[u]
            if not placed[j] and nodes[j].is_source and not nodes[j].inputs:
                placed[j] = True
                order.append(j)
        placed[i] = True
        order.append(i)
    unused = [i for i in range(n) if not placed[i]]
    order = unused + order
    keys = [""] * n
    for i in range(n):
        nd = nodes[i]
        if nd.is_source and consumers[i]:
            keys[i] = key(nodes[consumers[i][0]])
        else:
            keys[i] = key(nd)
    seg = np.empty(n, dtype=np.int64)
    seg_names: list[str] = []
    seg_types: list[str] = []
    counts: dict[str, int] = {}
    prev = None
    for i in order:
        if prev is None or keys[i] != keys[prev]:
            k = keys[i] or "<top>"
            counts[k] = counts.get(k, 0) + 1
            seg_names.append(k if counts[k] == 1 else f"{k}#{counts[k]}")
            seg_types.append("layer")
        seg[i] = len(seg_names) - 1
        prev = i
    m = len(seg_names)
    w = np.bincount(seg, weights=work, minlength=m)
    mem = np.bincount(seg, weights=memory, minlength=m)
    c = np.zeros(m)
    src: list[int] = []
    dst: list[int] = []
    for i in range(n):
        outside = {int(seg[j]) for j in consumers[i] if seg[j] != seg[i]}
        if outside:
            c[seg[i]] += comm[i]
            for s in outside:
                src.append(int(seg[i]))
                dst.append(s)
    sizes = np.bincount(seg, minlength=m)
    meta = dict(metadata or {})
    meta["layer_sizes"] = sizes.tolist()
    return Instance.from_arrays(
        seg_names, w, c, src, dst, memory=mem, name=name, labels=seg_names,
        op_types=seg_types, memory_limit=memory_limit, metadata=meta, source=source,
    )
