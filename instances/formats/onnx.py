"""ONNX models (``.onnx``), priced by the roofline cost model of :mod:`instances.costmodel`.

The reader runs ONNX shape inference (strict, with data propagation), then makes one node
per ONNX node, one zero-work source node per initializer (a parameter) and per graph input,
and data edges from each tensor's producer to its consumers. ``Constant`` nodes become
constant sources. FLOPs follow the :class:`~torch.utils.flop_counter.FlopCounterMode`
conventions so a PyTorch model and its ONNX export get the same costs:

* ``MatMul`` (and ``MatMulInteger``, ``QLinearMatMul``): ``2 * numel(Y) * K``;
* ``Gemm``: ``2 * M * N * K`` (the bias addition is not counted);
* ``Conv`` (``ConvInteger``, ``QLinearConv``): ``2 * numel(Y) * prod(W.shape[1:])``;
* ``ConvTranspose``: ``2 * N * prod(X.shape[2:]) * prod(W.shape)``;
* every other operator: 0 (its roofline time is memory bound).

``Reshape``, ``Flatten``, ``Squeeze``, ``Unsqueeze``, ``Identity``, inference ``Dropout``,
``Shape`` and ``Size`` move no data: their work is 0. Models with symbolic dimensions need
``batch_size=`` (binds the first dimension of every input) or ``dims={"name": value}``.
Control flow (``If``, ``Loop``, ``Scan``) is rejected with an error naming the operator.

Units: work and comm in microseconds, memory in bytes (``metadata["units"]``).
``metadata["cost_model"]`` records the roofline model, the hardware profile (its name in
``hardware_name``; ``hardware_default`` is true when no ``hardware`` was given and the
default ``a100`` priced the graph), the compute dtype and the batch size.

Reader options: ``hardware`` (profile name or TOML path, default ``a100``),
``compute_dtype`` (default ``bfloat16``; ``"traced"`` keeps the model's dtypes),
``launch_overhead`` (seconds), ``batch_size``, ``dims`` and ``level`` (``operator`` or
``layer``; layers come from the exporter's ``pkg.torch.onnx.name_scopes`` metadata), and
``zero_input_work`` (the option every reader shares: zero the work of the graph inputs;
they have no work in this cost model, so it only records that the option was used).
Needs the ``onnx`` package (``pip install -e '.[onnx]'``).
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instances.costmodel import (
    DEFAULT_HARDWARE,
    CostModel,
    OpNode,
    Tensor,
    build_instance,
    with_cost_model_info,
)
from instances.formats.base import (
    FORMATS,
    INPUT_WORK_OPTIONS,
    Format,
    instance_name,
    source_nodes,
    wants_zero_input_work,
)
from instances.formats.base import zero_input_work as zero_input_work_of
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = ["OnnxFormat", "read_onnx", "onnx_graph", "DEFAULT_HARDWARE"]


_ONNX_DTYPES = {
    "FLOAT": "float32", "DOUBLE": "float64", "FLOAT16": "float16", "BFLOAT16": "bfloat16",
    "INT64": "int64", "INT32": "int32", "INT16": "int16", "INT8": "int8", "UINT8": "uint8",
    "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64", "BOOL": "bool",
    "STRING": "string", "COMPLEX64": "complex64", "COMPLEX128": "complex128",
    "FLOAT8E4M3FN": "float8_e4m3fn", "FLOAT8E4M3FNUZ": "float8_e4m3fnuz",
    "FLOAT8E5M2": "float8_e5m2", "FLOAT8E5M2FNUZ": "float8_e5m2fnuz",
    "INT4": "int4", "UINT4": "uint4",
}
_VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size"}
_CONTROL_FLOW = {"If", "Loop", "Scan", "SequenceMap"}


def _load(path: Path) -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("reading ONNX models needs the onnx package: "
                         "pip install -e '.[onnx]'", source=str(path)) from exc
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise FormatError(f"not a valid ONNX model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''})",
                          source=str(path)) from None


def _bind_dims(model: Any, batch_size: int | None, dims: Mapping[str, int] | None) -> None:
    """Replace symbolic dimensions of the graph inputs in place."""
    init = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in init or not vi.type.HasField("tensor_type"):
            continue
        shape = vi.type.tensor_type.shape
        for j, d in enumerate(shape.dim):
            if d.HasField("dim_value"):
                continue
            if dims and d.dim_param in dims:
                d.dim_value = int(dims[d.dim_param])
            elif batch_size is not None and j == 0:
                d.dim_value = int(batch_size)


def _tensor_types(model: Any) -> dict[str, tuple[tuple[int | None, ...] | None, str]]:
    """Tensor name -> (shape or None, dtype) after shape inference."""
    import onnx

    out: dict[str, tuple[tuple[int | None, ...] | None, str]] = {}

    def add(vi: Any) -> None:
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None:
            return
        dt = _ONNX_DTYPES.get(onnx.TensorProto.DataType.Name(tt.elem_type), "float32")
        if not tt.HasField("shape"):
            out[vi.name] = (None, dt)
            return
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        out[vi.name] = (shape, dt)

    g = model.graph
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        add(vi)
    for t in g.initializer:
        dt = _ONNX_DTYPES.get(onnx.TensorProto.DataType.Name(t.data_type), "float32")
        out[t.name] = (tuple(int(d) for d in t.dims), dt)
    return out


def _numel(shape: tuple[int | None, ...]) -> int:
    return int(math.prod(int(d) for d in shape))  # type: ignore[arg-type,misc]


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _flops(node: Any, shapes: list[tuple[int, ...] | None],
           out_shapes: list[tuple[int, ...]]) -> float:
    """FLOPs of one ONNX node (FlopCounterMode conventions, see the module docstring)."""
    op = node.op_type
    if not out_shapes:
        return 0.0
    y = out_shapes[0]
    if op in ("MatMul", "MatMulInteger"):
        a = shapes[0]
        return 2.0 * _numel(y) * (a[-1] if a else 1)
    if op == "QLinearMatMul":
        a = shapes[0]
        return 2.0 * _numel(y) * (a[-1] if a else 1)
    if op == "Gemm":
        a = shapes[0]
        if not a:
            return 0.0
        k = a[0] if _attr(node, "transA", 0) else a[-1]
        return 2.0 * _numel(y) * k
    if op in ("Conv", "ConvInteger"):
        w = shapes[1]
        return 2.0 * _numel(y) * _numel(w[1:]) if w else 0.0
    if op == "QLinearConv":
        w = shapes[3]
        return 2.0 * _numel(y) * _numel(w[1:]) if w else 0.0
    if op == "ConvTranspose":
        x, w = shapes[0], shapes[1]
        if not x or not w:
            return 0.0
        return 2.0 * x[0] * _numel(x[2:]) * _numel(w)
    return 0.0


def _scope(node: Any) -> str:
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                return ""
            parts = [str(s) for s in scopes[1:-1] if s]
            return ".".join(parts)
    return ""


def onnx_graph(model: Any, *, source: str = "model.onnx", batch_size: int | None = None,
               dims: Mapping[str, int] | None = None) -> list[OpNode]:
    """The :class:`OpNode` records of an ONNX ``ModelProto`` (shape inference included).

    Raises
    ------
    FormatError
        On a failed shape inference, a tensor of unknown shape, control flow, a tensor read
        before it is produced; each message names the operator and node.
    """
    import onnx

    if dims is not None and not isinstance(dims, Mapping):
        raise InputError(f"dims must map dimension names to sizes, got {dims!r}",
                         source=source)
    if batch_size is not None or dims:
        model = onnx.ModelProto.FromString(model.SerializeToString())
        _bind_dims(model, batch_size, dims)
    for node in model.graph.node:
        if node.op_type in _CONTROL_FLOW:
            raise FormatError(f"unsupported operator {node.op_type} (node {node.name!r}): "
                              "control flow cannot be priced per operator", source=source)
    try:
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True,
                                                     strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx.shape_inference.InferenceError, ValidationError
        msg = " ".join(str(exc).split())
        raise FormatError(f"ONNX shape inference failed: {msg[:400]}", source=source) \
            from None
    types = _tensor_types(inferred)
    g = inferred.graph

    taken: set[str] = set()

    def unique(base: str) -> str:
        nid = base or "node"
        k = 1
        while nid in taken:
            k += 1
            nid = f"{base}#{k}"
        taken.add(nid)
        return nid

    def info(name: str, what: str, hint: bool = True) -> tuple[tuple[int, ...], Tensor]:
        shape, dt = types.get(name, (None, "float32"))
        if shape is None or any(d is None for d in shape):
            extra = (" (pass batch_size= or dims={name: size} to bind symbolic dimensions)"
                     if hint else "")
            raise FormatError(f"cannot determine the shape of tensor {name!r} of {what}"
                              f"{extra}", source=source)
        s = tuple(int(d) for d in shape)  # type: ignore[arg-type]
        return s, (_numel(s), dt)

    records: list[OpNode] = []
    producer: dict[str, str] = {}
    init_names = {t.name for t in g.initializer}
    for t in g.initializer:
        _, tinfo = info(t.name, f"initializer {t.name!r}")
        nid = unique(t.name)
        producer[t.name] = nid
        records.append(OpNode(id=nid, kind="parameter", op_type="initializer",
                              out_tensors=(tinfo,), label=t.name))
    for vi in g.input:
        if vi.name in init_names:
            continue
        _, tinfo = info(vi.name, f"graph input {vi.name!r}")
        nid = unique(vi.name)
        producer[vi.name] = nid
        records.append(OpNode(id=nid, kind="input", op_type="input", out_tensors=(tinfo,),
                              label=vi.name))
    consumed: set[str] = {i for n in g.node for i in n.input if i}
    consumed |= {o.name for o in g.output}
    for i, node in enumerate(g.node):
        what = f"operator {node.op_type} (node {node.name or i!r})"
        if node.domain not in ("", "ai.onnx"):
            what = f"operator {node.domain}::{node.op_type} (node {node.name or i!r})"
        inputs: list[str] = []
        in_shapes: list[tuple[int, ...] | None] = []
        in_tensors: list[Tensor] = []
        for name in node.input:
            if not name:
                in_shapes.append(None)
                continue
            if name not in producer:
                raise FormatError(f"{what} reads tensor {name!r} that no earlier node or "
                                  "initializer produces (the graph is not topologically "
                                  "sorted or is malformed)", source=source)
            shape, tinfo = info(name, f"input of {what}")
            in_shapes.append(shape)
            in_tensors.append(tinfo)
            if producer[name] not in inputs:
                inputs.append(producer[name])
        out_shapes: list[tuple[int, ...]] = []
        outs: list[Tensor] = []
        sent: list[Tensor] = []
        for name in node.output:
            if not name:
                continue
            shape, tinfo = info(name, f"output of {what}")
            out_shapes.append(shape)
            outs.append(tinfo)
            if name in consumed:
                sent.append(tinfo)
        if node.op_type == "Constant":
            kind = "constant"
        elif node.op_type in _VIEW_OPS or (node.op_type == "Dropout"
                                           and len(node.input) < 3):
            kind = "view"
        else:
            kind = "op"
        nid = unique(node.name or f"{node.op_type}_{i}")
        for name in node.output:
            if name:
                producer[name] = nid
        records.append(OpNode(
            id=nid, kind=kind, op_type=node.op_type if node.domain in ("", "ai.onnx")
            else f"{node.domain}::{node.op_type}",
            inputs=tuple(inputs), in_tensors=tuple(in_tensors), out_tensors=tuple(outs),
            sent_tensors=tuple(sent), flops=_flops(node, in_shapes, out_shapes),
            label=_scope(node) or node.name or nid, module=_scope(node),
        ))
    return records


def read_onnx(path: str | Path, *, hardware: str | None = None,
              compute_dtype: str | None = "bfloat16",
              launch_overhead: float | None = None, batch_size: int | None = None,
              dims: Mapping[str, int] | None = None, level: str = "operator",
              name: str | None = None) -> Instance:
    """Read an ONNX model file into a priced :class:`Instance` (see the module docstring).

    ``hardware=None`` means the default profile :data:`DEFAULT_HARDWARE`, recorded as
    such in ``metadata["cost_model"]``.
    """
    p = Path(path)
    src = str(path)
    hardware_default = hardware is None
    if hardware is None:
        hardware = DEFAULT_HARDWARE
    model = _load(p)
    if compute_dtype in ("traced", "none", "None"):
        compute_dtype = None
    try:
        cm = CostModel(hardware, compute_dtype, launch_overhead)
    except InputError as exc:
        raise InputError(exc.problem, source=src) from None
    records = onnx_graph(model, source=src, batch_size=batch_size, dims=dims)
    import onnx

    meta: dict[str, Any] = {
        "importer": "onnx (shape inference)",
        "versions": {"onnx": onnx.__version__},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "opset": {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        "batch_size": batch_size,
    }
    inst = build_instance(records, cm, name=name or instance_name(p), level=level,
                          metadata=meta, source=src)
    return with_cost_model_info(inst, importer="onnx", hardware_name=cm.profile.name,
                                hardware_default=hardware_default, batch_size=batch_size)


@FORMATS.register
class OnnxFormat(Format):
    """ONNX model files, priced with the roofline cost model (read-only)."""

    name = "onnx"
    extensions = (".onnx",)
    options = ("hardware", "compute_dtype", "launch_overhead", "batch_size", "dims", "level",
               *INPUT_WORK_OPTIONS)
    sniff_priority = 5
    description = "ONNX model (operators priced by the roofline cost model)"

    def sniff(self, path: Path, head: bytes) -> bool:
        # a ModelProto starts with ir_version (field 1, varint: byte 0x08)
        return self.matches_extension(path) and head[:1] == b"\x08"

    def read(self, path: Path, *, zero_input_work: bool | None = None,
             keep_input_work: bool | None = None, **options: Any) -> Instance:
        zero = wants_zero_input_work(zero_input_work, keep_input_work, str(path))
        inst = read_onnx(path, **options)
        if zero:
            inst = zero_input_work_of(inst, source_nodes(inst),
                                      "source nodes (graph inputs, initializers, constants)")
        return inst
