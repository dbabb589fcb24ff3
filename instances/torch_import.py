"""Import a PyTorch module as an operator graph priced by the roofline cost model.

The module is traced with :func:`torch.export.export` (non-strict mode, static shapes) on the
given example inputs. Every ATen operator of the exported graph becomes one node, with its
shapes and dtypes from the trace; parameters, buffers, lifted constants and tensor inputs
become zero-work source nodes carrying their tensor sizes. ``getitem`` nodes that unpack
multi-output operators are folded into the operator (its consumers read it directly).
FLOPs are counted per node by :class:`torch.utils.flop_counter.FlopCounterMode`, running
the node's operator on meta tensors of the traced shapes (so the per-node FLOPs add up to
the eager model's count). Costs come from :mod:`instances.costmodel`.

Training graphs (``training=True``, ``pipecert import-torch --training``). Per-op backward
nodes priced from FLOP counts by the roofline (not torch's joint forward/backward graph:
that graph has no forward/backward pairing per operator to co-locate, and its saved-tensor
plumbing is an artefact of the tracer). The rule (:func:`instances.training.add_backward_nodes`):

* *which nodes*: a node needs a gradient when it is a floating parameter, or an operator
  reading a node that needs one (inputs, buffers and constants need none). Each such node
  ``v`` gets a backward node ``vgrad`` in ``v``'s co-location group (one stage for both);
* *backward work*: :meth:`CostModel.backward_work_seconds`, ``max(backward_flops / peak,
  backward_bytes / memory_bandwidth) + launch_overhead``. ``backward_flops`` are the FLOPs
  of the kernels autograd runs for that operator, counted by ``FlopCounterMode`` on meta
  tensors with ``requires_grad`` set exactly on the inputs that need a gradient
  (:func:`backward_flops`): ``2 x`` the forward FLOPs of a matmul or convolution
  (input-gradient + weight-gradient products), ``1 x`` when its input needs no gradient
  (the first layer), 0 for element-wise operators, whose time is their bytes: output
  gradient read + saved inputs read + input gradients written. An operator whose derivative
  torch cannot run on meta tensors gets ``2 x`` its forward FLOPs (listed in
  ``metadata["backward_flops_estimated"]``). Views and parameters' backward nodes cost 0;
* *edges*: the forward edges order the stages; ``ugrad -> vgrad`` mirrors every forward edge
  between two nodes needing gradients and ``v -> vgrad`` is the stash, both data-only;
  comm of ``vgrad`` = comm of ``v`` (the gradient has the output's shape);
* *memory* (bytes, at the compute dtype): a parameter's forward node holds the weights and
  its backward node the gradient plus ``optimizer_states`` tensors of the same size
  (default 2, Adam's moments: 4 x the weights per parameter in all); an operator's forward
  node holds its output activation, stashed for the backward pass; operators' backward
  nodes hold nothing (gradients are transient). One micro-batch in flight; the cap is the
  profile's device memory unless ``--memory-limit`` says otherwise.

The forward graph is the eval-mode trace (dropout is the identity, batch norm uses running
statistics), as for inference; training-mode dropout masks and batch statistics are not
priced.

Measured accuracy (``python -m instances.measure_training``: each layer of three small
``nn.Sequential`` models run alone on this shared 2-core CPU, one thread, median of 7 and 9
runs; predicted by this model on a roofline profile of the same CPU measured on the spot,
run 1: 43.6 GFLOP/s float32, 7.7 GB/s, 1.5 us per launch; run 2: 39.0, 3.8, 2.6). Totals
over the layers, measured / predicted:

=====================  ======  ===========  ===========  =========================
architecture           layers  forward      backward     backward/forward
                                                         measured vs predicted
=====================  ======  ===========  ===========  =========================
MLP 1024-4096, b=128    7      1.33 / 1.09  2.08 / 1.86  2.86 vs 1.83 / 3.13 vs 1.83
ResNet-like, 64x64, b=8 8      1.95 / 0.94  2.20 / 1.07  2.18 vs 1.93 / 2.15 vs 1.89
transformer d=256, s=128 6     1.84 / 1.14  1.98 / 1.10  2.13 vs 1.97 / 1.89 vs 1.95
=====================  ======  ===========  ===========  =========================

(run 1 / run 2; run 1 was slowed by other jobs on the machine). On the convolutional and
transformer models the backward/forward ratio is predicted within 15 % (measured 1.9 to 2.2,
predicted 1.9 to 2.0) and, in the quieter run, absolute times within 10 % for the whole
model. The MLP's backward is under-estimated 1.6 to 1.7x: its 4096 x 4096 layer's weight
gradient ``dY^T X`` has inner dimension 128 (the batch), which this CPU runs far below peak
(measured backward 3.7x its forward); the roofline cannot see kernel efficiency.
Element-wise layers (GELU, ReLU) are within 2x either way (launch and autograd overheads).

Modules may live on the ``meta`` device: only shapes matter, so a full-size model can be
imported without allocating its weights (this is how the bundled ``models`` suite is built).

Needs the ``torch`` extra (``pip install torch==2.13.0`` for the CPU wheel, then
``pip install -e '.[torch]'``).
"""

from __future__ import annotations

import importlib
import inspect
import logging
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from instances.costmodel import (
    DEFAULT_HARDWARE,
    CostModel,
    OpNode,
    Tensor,
    build_instance,
    dtype_name,
    with_cost_model_info,
)
from pipecert.errors import InputError
from pipecert.instance import Instance

__all__ = [
    "trace",
    "graph_from_exported",
    "import_module",
    "import_exported",
    "load_factory",
    "call_factory",
    "import_factory",
    "count_flops",
]

log = logging.getLogger(__name__)

#: operators that launch no kernel in inference although their schema is not a view
_NOOP_OPS = {
    "aten.alias.default", "aten.detach.default",
}


def _grouped_mm_flops(args: Sequence[Any], kwargs: Mapping[str, Any]) -> float:
    # grouped_mm(input [rows, in], weight [experts, in, out], offs): every row is multiplied
    # by exactly one expert's [in, out] matrix
    x, w = args[0], args[1]
    return 2.0 * int(x.shape[0]) * int(w.shape[-2]) * int(w.shape[-1])


#: FLOP formulas of operators FlopCounterMode does not know (custom MoE kernels)
EXTRA_FLOPS: dict[str, Callable[[Sequence[Any], Mapping[str, Any]], float]] = {
    "transformers.grouped_mm_fallback.default": _grouped_mm_flops,
    "aten._grouped_mm.default": _grouped_mm_flops,
}


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("importing PyTorch models needs torch: pip install torch==2.13.0 "
                         "and pip install -e '.[torch]'") from exc
    return torch


def trace(module: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
          *, strict: bool = False, name: str | None = None) -> Any:
    """Export ``module`` with ``torch.export.export`` on the example inputs.

    Raises
    ------
    InputError
        When export fails (data-dependent control flow, unsupported Python), with the first
        line of torch's explanation.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
    if hasattr(module, "eval"):
        module.eval()
    label = name or type(module).__name__
    try:
        with torch.no_grad():
            return torch.export.export(module, tuple(args), kwargs=dict(kwargs or {}),
                                       strict=strict)
    except Exception as exc:  # torch raises many types here; all mean "cannot trace"
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise InputError(f"torch.export could not trace {label}: {type(exc).__name__}: "
                         f"{first[:300]}") from exc


def _tensors(value: Any) -> list[Any]:
    """The tensors inside a (possibly nested) traced value."""
    torch = _torch()
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        out: list[Any] = []
        for v in value:
            out.extend(_tensors(v))
        return out
    return []


def _numel(t: Any, what: str) -> int:
    n = 1
    for d in t.shape:
        if not isinstance(d, int):  # a SymInt: dynamic or data-dependent size
            raise InputError(f"{what} has a data-dependent or dynamic shape "
                             f"{tuple(t.shape)}; only static shapes are supported")
        n *= d
    return n


def _tensor_info(t: Any, what: str) -> Tensor:
    return (_numel(t, what), dtype_name(t.dtype))


def _meta_copy(v: Any) -> Any:
    torch = _torch()
    if isinstance(v, torch.Tensor):
        return torch.empty_strided(tuple(int(s) for s in v.shape),
                                   tuple(int(s) for s in v.stride()),
                                   dtype=v.dtype, device="meta")
    return v


def count_flops(target: Callable[..., Any], args: Sequence[Any],
                kwargs: Mapping[str, Any] | None = None) -> float:
    """FLOPs of one operator call, counted by ``FlopCounterMode`` on meta tensors.

    ``args``/``kwargs`` may hold real, fake or meta tensors; only their shapes, strides and
    dtypes are used.
    """
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    margs = torch.utils._pytree.tree_map(_meta_copy, list(args))
    mkw = torch.utils._pytree.tree_map(_meta_copy, dict(kwargs or {}))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        target(*margs, **mkw)
    return float(fc.get_total_flops())


def _is_view(node: Any) -> bool:
    """Whether the call aliases its input and launches no kernel."""
    torch = _torch()
    target = node.target
    if target is operator.getitem:
        return True
    name = str(target)
    if name in _NOOP_OPS:
        return True
    if name == "aten.dropout.default":  # eval-mode dropout is the identity
        train = node.args[2] if len(node.args) > 2 else node.kwargs.get("train", True)
        p = node.args[1] if len(node.args) > 1 else node.kwargs.get("p", 0.5)
        return not train or p == 0
    if name in ("aten.contiguous.default", "aten.to.dtype", "aten.to.dtype_layout",
                "aten._to_copy.default", "aten.type_as.default"):
        # no copy if the input already has the result's layout and dtype
        src = node.args[0].meta.get("val") if node.args and hasattr(node.args[0], "meta") \
            else None
        out = node.meta.get("val")
        if isinstance(src, torch.Tensor) and isinstance(out, torch.Tensor):
            return (src.dtype == out.dtype and src.is_contiguous() and out.is_contiguous()
                    and tuple(src.shape) == tuple(out.shape))
        return False
    schema = getattr(target, "_schema", None)
    if schema is None or not schema.returns:
        return False
    for ret in schema.returns:
        info = ret.alias_info
        if info is None or info.is_write:
            return False
    return True


def _module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return _clean_path(str(path))


def _clean_path(path: str) -> str:
    # strict-mode paths look like "L['self'].encoder.layer[0]"; normalise to dotted FQNs
    p = path.replace("L['self'].", "").replace("L['self']", "")
    p = p.replace("['", ".").replace("']", "").replace("[", ".").replace("]", "")
    return p.strip(".")


def backward_flops(target: Callable[..., Any], args: Sequence[Any],
                   kwargs: Mapping[str, Any], needs: Callable[[Any], bool]) -> float:
    """FLOPs of the backward pass of one operator call, counted by ``FlopCounterMode``.

    The operator runs on meta tensors; the floating tensors ``t`` of ``args``/``kwargs`` with
    ``needs(t)`` true require gradients, and ``torch.autograd.grad`` of every floating
    output with respect to them runs under the counter: exactly the kernels autograd
    launches for this operator (for ``Y = X W``: ``dX = dY W^T`` and ``dW = X^T dY``, two
    products as large as the forward one; only ``dW`` when ``X`` needs no gradient).
    Raises whatever torch raises for an operator without a meta or a derivative formula.
    """
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    leaves: list[Any] = []

    def meta(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            t = _meta_copy(v)
            if t.dtype.is_floating_point and needs(v):
                t.requires_grad_(True)
                leaves.append(t)
            return t
        return v

    margs = torch.utils._pytree.tree_map(meta, list(args))
    mkw = torch.utils._pytree.tree_map(meta, dict(kwargs))
    if not leaves:
        return 0.0
    with torch.enable_grad():
        out = target(*margs, **mkw)
    outs = [t for t in _tensors(out) if t.requires_grad]
    if not outs:
        return 0.0
    with FlopCounterMode(display=False) as fc:
        torch.autograd.grad(outs, leaves, [torch.empty_like(t) for t in outs],
                            allow_unused=True)
    return float(fc.get_total_flops())


def graph_from_exported(ep: Any, *, name: str = "model",
                        training: bool = False) -> list[OpNode]:
    """Turn an ``ExportedProgram`` into :class:`OpNode` records (one per operator / source).

    With ``training=True`` every record also gets, in ``extra``: ``needs_grad`` (a
    parameter, or an operator reading a node that needs a gradient), and for operators
    needing one ``backward_flops`` (:func:`backward_flops`; ``2 x flops`` with
    ``backward_flops_estimated`` set when torch cannot run the operator's derivative on
    meta tensors) and ``grad_in_tensors`` (the floating inputs whose gradient is written).

    Raises
    ------
    InputError
        Naming the operator and node on a higher-order operator (``cond``, ``while_loop``,
        ``map``...), on a data-dependent output shape, or on an unknown node kind.
    """
    torch = _torch()
    from torch.export.graph_signature import InputKind

    kinds = {
        InputKind.PARAMETER: "parameter",
        InputKind.BUFFER: "buffer",
        InputKind.CONSTANT_TENSOR: "constant",
        InputKind.USER_INPUT: "input",
    }
    spec_of = {s.arg.name: s for s in ep.graph_signature.input_specs
               if hasattr(s.arg, "name")}
    graph = ep.graph
    # getitem folding: node -> (producer, index)
    alias: dict[Any, Any] = {}
    used_outputs: dict[Any, set[int]] = {}
    for node in graph.nodes:
        if node.op == "call_function" and node.target is operator.getitem:
            prod = node.args[0]
            while prod in alias:
                prod = alias[prod]
            prod_val = prod.meta.get("val")
            if isinstance(prod_val, list | tuple):
                alias[node] = prod
                idx = node.args[1]
                used_outputs.setdefault(prod, set()).add(int(idx) if isinstance(idx, int)
                                                         else -1)
    records: list[OpNode] = []
    uncounted: list[str] = []
    unused: list[str] = []
    needs_grad: dict[str, bool] = {}
    estimated: list[str] = []
    for node in graph.nodes:
        if node.op == "output" or node in alias:
            continue
        val = node.meta.get("val")
        if node.op == "placeholder":
            spec = spec_of.get(node.name)
            kind = kinds.get(spec.kind) if spec is not None else "input"
            if kind is None:
                what = spec.kind.name if spec is not None else "?"
                raise InputError(f"unsupported graph input {node.name!r} of kind "
                                 f"{what}", source=name)
            tens = _tensors(val)
            if not tens:
                continue  # a non-tensor input (int, None): no node
            if not node.users and kind != "input":
                unused.append(node.name)  # e.g. BatchNorm's num_batches_tracked in eval
                continue
            target = getattr(spec, "target", None) or node.name
            outs = tuple(_tensor_info(t, f"input {node.name!r}") for t in tens)
            module = str(target).rpartition(".")[0] if kind != "input" else ""
            records.append(OpNode(id=node.name, kind=kind, op_type=kind, out_tensors=outs,
                                  label=str(target), module=module))
            if training:
                needs_grad[node.name] = kind == "parameter" and any(
                    t.dtype.is_floating_point for t in tens)
                records[-1].extra["needs_grad"] = needs_grad[node.name]
            continue
        if node.op == "get_attr":
            tens = _tensors(val)
            if not tens:
                continue
            outs = tuple(_tensor_info(t, f"constant {node.name!r}") for t in tens)
            records.append(OpNode(id=node.name, kind="constant", op_type="constant",
                                  out_tensors=outs, label=str(node.target)))
            needs_grad[node.name] = False
            continue
        if node.op != "call_function":
            raise InputError(f"unsupported node kind {node.op!r} (node {node.name!r})",
                             source=name)
        target = node.target
        op_name = str(getattr(target, "__name__", target)) if not hasattr(target, "_schema") \
            else str(target)
        if isinstance(target, torch._ops.HigherOrderOperator):
            raise InputError(f"unsupported operator {op_name} (node {node.name!r}): "
                             "control flow and other higher-order operators cannot be "
                             "priced per operator", source=name)
        what = f"operator {op_name} (node {node.name!r})"
        out_t = _tensors(val)
        if not out_t and not node.users:
            continue  # assertions and other calls without a tensor result
        inputs: list[str] = []
        in_tensors: list[Tensor] = []
        seen: set[str] = set()

        def visit(a: Any, inputs: list[str] = inputs, in_tensors: list[Tensor] = in_tensors,
                  seen: set[str] = seen, what: str = what) -> Any:
            src = alias.get(a, a)
            if src.name not in seen:
                seen.add(src.name)
                inputs.append(src.name)
            v = a.meta.get("val")
            for t in _tensors(v):
                in_tensors.append(_tensor_info(t, f"input of {what}"))
            return a

        torch.fx.node.map_arg((node.args, node.kwargs), visit)
        try:
            outs = tuple(_tensor_info(t, what) for t in out_t)
        except InputError as exc:
            raise InputError(exc.problem, source=name) from None
        sent = None
        if node in used_outputs and -1 not in used_outputs[node] \
                and isinstance(val, list | tuple):
            sent = tuple(_tensor_info(t, what)
                         for i, v in enumerate(val) if i in used_outputs[node]
                         for t in _tensors(v))
        view = _is_view(node)
        flops = 0.0
        if not view:
            try:
                margs = torch.fx.node.map_arg(node.args, lambda a: _meta_copy(a.meta["val"]))
                mkw = torch.fx.node.map_arg(node.kwargs, lambda a: _meta_copy(a.meta["val"]))
                if op_name in EXTRA_FLOPS:
                    flops = float(EXTRA_FLOPS[op_name](margs, mkw))
                else:
                    flops = count_flops(target, margs, mkw)
            except Exception as exc:  # an operator without a meta kernel: no FLOPs known
                log.warning("%s: cannot count FLOPs of %s (%s); its work is memory-bound "
                            "only", name, what, exc)
                uncounted.append(op_name)
        records.append(OpNode(
            id=node.name, kind="view" if view else "op", op_type=op_name,
            inputs=tuple(inputs), in_tensors=tuple(in_tensors), out_tensors=outs,
            sent_tensors=sent, flops=flops, label=_module_path(node) or node.name,
            module=_module_path(node),
        ))
        if training:
            _backward_info(node, records[-1], alias, needs_grad, estimated, what, name)
    if uncounted:
        records[0].extra["uncounted_flops"] = sorted(set(uncounted))
    if estimated:
        records[0].extra["backward_flops_estimated"] = sorted(set(estimated))
    if unused:
        records[0].extra["unused_sources"] = len(unused)
    return records


def _backward_info(node: Any, rec: OpNode, alias: Mapping[Any, Any],
                   needs_grad: dict[str, bool], estimated: list[str], what: str,
                   name: str) -> None:
    """Fill ``needs_grad``, ``backward_flops`` and ``grad_in_tensors`` of one operator."""
    torch = _torch()
    grad_in: list[Tensor] = []

    def src_needs(a: Any) -> bool:
        return needs_grad.get(alias.get(a, a).name, False)

    def collect(a: Any) -> Any:
        if src_needs(a):
            for t in _tensors(a.meta.get("val")):
                if t.dtype.is_floating_point:
                    grad_in.append(_tensor_info(t, f"input of {what}"))
        return a

    torch.fx.node.map_arg((node.args, node.kwargs), collect)
    floating_out = any(t.dtype.is_floating_point for t in _tensors(node.meta.get("val")))
    need = bool(grad_in) and floating_out
    needs_grad[node.name] = need
    rec.extra["needs_grad"] = need
    if not need or rec.kind == "view":
        return
    rec.extra["grad_in_tensors"] = tuple(grad_in)
    op_name = rec.op_type
    if op_name in EXTRA_FLOPS:  # custom kernels: no derivative on meta tensors
        rec.extra["backward_flops"] = 2.0 * rec.flops
        return
    # map each traced value to "needs a gradient" through the fx node it came from
    val_needs: dict[int, bool] = {}

    def mark(a: Any) -> Any:
        for t in _tensors(a.meta.get("val")):
            val_needs[id(t)] = val_needs.get(id(t), False) or src_needs(a)
        return a

    torch.fx.node.map_arg((node.args, node.kwargs), mark)
    try:
        margs = torch.fx.node.map_arg(node.args, lambda a: a.meta["val"])
        mkw = torch.fx.node.map_arg(node.kwargs, lambda a: a.meta["val"])
        rec.extra["backward_flops"] = backward_flops(
            node.target, margs, mkw, lambda t: val_needs.get(id(t), False))
    except Exception as exc:  # no derivative / meta kernel: the 2x rule of matmuls
        log.debug("%s: backward of %s not countable (%s); 2 x forward FLOPs", name, what,
                  exc)
        rec.extra["backward_flops"] = 2.0 * rec.flops
        estimated.append(op_name)


def _versions() -> dict[str, str]:
    torch = _torch()
    out = {"torch": str(torch.__version__)}
    try:
        import transformers

        out["transformers"] = str(transformers.__version__)
    except ImportError:
        pass
    return out


def import_exported(ep: Any, *, cost_model: CostModel | None = None,
                    hardware: str | None = None,
                    compute_dtype: str | None = "bfloat16", level: str = "operator",
                    layer_depth: int = 2, layer_extra: int = 0, name: str = "model",
                    decompose: bool = False,
                    metadata: Mapping[str, Any] | None = None,
                    training: bool = False, optimizer_states: int = 2) -> Instance:
    """Price an ``ExportedProgram`` (see :func:`import_module` for the parameters)."""
    cm = (cost_model if cost_model is not None
          else CostModel(hardware or DEFAULT_HARDWARE, compute_dtype))
    if decompose:
        try:
            ep = ep.run_decompositions()
        except Exception as exc:
            first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
            raise InputError(f"cannot decompose {name} to core ATen: {type(exc).__name__}: "
                             f"{first[:300]}") from exc
    records = graph_from_exported(ep, name=name, training=training)
    meta: dict[str, Any] = {"importer": "pytorch (torch.export + FlopCounterMode)",
                            "ir": "core-aten" if decompose else "aten (export IR)",
                            "versions": _versions()}
    if records:
        for key in ("uncounted_flops", "unused_sources", "backward_flops_estimated"):
            if key in records[0].extra:
                meta[key] = records[0].extra[key]
    meta.update(metadata or {})
    inst = build_instance(records, cm, name=name, level=level, layer_depth=layer_depth,
                          layer_extra=layer_extra, metadata=meta, source=name,
                          training=training, optimizer_states=optimizer_states)
    if cost_model is None:  # record which profile priced it and whether it was the default
        inst = with_cost_model_info(inst, importer="pytorch", hardware_name=cm.profile.name,
                                    hardware_default=hardware is None)
    return inst


def import_module(module: Any, args: Sequence[Any] = (),
                  kwargs: Mapping[str, Any] | None = None, *,
                  cost_model: CostModel | None = None, hardware: str | None = None,
                  compute_dtype: str | None = "bfloat16", level: str = "operator",
                  layer_depth: int = 2, layer_extra: int = 0, name: str | None = None,
                  strict: bool = False,
                  decompose: bool = False,
                  metadata: Mapping[str, Any] | None = None,
                  training: bool = False, optimizer_states: int = 2) -> Instance:
    """Trace a ``torch.nn.Module`` on example inputs and return its priced operator graph.

    Parameters
    ----------
    module : torch.nn.Module
        The model (put in eval mode). It may live on the ``meta`` device.
    args, kwargs
        Example inputs; their shapes (batch size included) fix the graph's costs.
    cost_model : CostModel, optional
        Overrides ``hardware`` and ``compute_dtype``.
    hardware : str, optional
        Bundled profile name or a TOML path (``instances/hardware``); default ``a100``,
        recorded as the default in ``metadata["cost_model"]``.
    compute_dtype : str or None
        Dtype the costs assume for floating tensors (``None``: as traced).
    level : {"operator", "layer"}
        One node per operator, or per layer (see :func:`instances.costmodel.layer_key`).
    layer_depth, layer_extra : int
        Layer keys (:func:`instances.costmodel.layer_key`) for ``level="layer"``.
    name : str, optional
        Instance name (default: the module's class name).
    decompose : bool
        Lower the exported graph to core ATen operators first (``run_decompositions``):
        finer graphs (``linear`` becomes ``permute`` + ``addmm``, attention its matmuls
        and softmax).
    training : bool
        Build the training graph: forward + backward nodes, each forward node and its
        backward node in one co-location group, gradient and stash edges data-only, memory
        of weights, gradients, optimizer state and stashed activations (see the module
        docstring).
    optimizer_states : int
        Optimizer tensors per parameter counted in training memory (2 = Adam).

    Examples
    --------
    >>> import torch                                              # doctest: +SKIP
    >>> inst = import_module(torch.nn.Linear(4, 2), (torch.zeros(3, 4),))  # doctest: +SKIP
    """
    label = name or type(module).__name__
    ep = trace(module, args, kwargs, strict=strict, name=label)
    return import_exported(ep, cost_model=cost_model, hardware=hardware,
                           compute_dtype=compute_dtype, level=level,
                           layer_depth=layer_depth, layer_extra=layer_extra, name=label,
                           decompose=decompose,
                           metadata=metadata, training=training,
                           optimizer_states=optimizer_states)


def load_factory(spec: str) -> Callable[..., Any]:
    """Resolve ``"package.module:function"`` to the callable it names."""
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise InputError(f"factory {spec!r} is not of the form module:function")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise InputError(f"cannot import module {mod_name!r} of factory {spec!r}: {exc}") \
            from None
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"factory {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def call_factory(factory: Callable[..., Any], *, batch_size: int | None = None,
                 options: Mapping[str, Any] | None = None,
                 spec: str = "factory") -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """Call a model factory and normalise its result to ``(module, args, kwargs)``.

    A factory returns ``(module, example_inputs)`` where ``example_inputs`` is a tuple of
    positional inputs, one tensor, or a dict of keyword inputs, or ``(module, args,
    kwargs)``. ``batch_size`` (and ``options``) are passed as keyword arguments.
    """
    kw = dict(options or {})
    if batch_size is not None:
        kw["batch_size"] = int(batch_size)
    try:
        sig = inspect.signature(factory)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        missing = [k for k in kw if k not in sig.parameters and not accepts_any]
    except (TypeError, ValueError):
        missing = []
    if missing:
        raise InputError(f"factory {spec!r} does not accept {', '.join(missing)}")
    out = factory(**kw)
    torch = _torch()
    if isinstance(out, torch.nn.Module):
        raise InputError(f"factory {spec!r} returned a module without example inputs; "
                         "return (module, example_inputs)")
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise InputError(f"factory {spec!r} must return (module, example_inputs) or "
                         f"(module, args, kwargs), got {type(out).__name__}")
    module = out[0]
    if len(out) == 3:
        args, kwargs = tuple(out[1] or ()), dict(out[2] or {})
    else:
        ex = out[1]
        if isinstance(ex, Mapping):
            args, kwargs = (), dict(ex)
        elif isinstance(ex, torch.Tensor):
            args, kwargs = (ex,), {}
        else:
            args, kwargs = tuple(ex), {}
    return module, args, kwargs


def import_factory(spec: str, *, batch_size: int | None = None,
                   options: Mapping[str, Any] | None = None, name: str | None = None,
                   **kwargs: Any) -> Instance:
    """Import the model built by factory ``module:function`` (``pipecert import-torch``).

    ``kwargs`` go to :func:`import_module` (hardware, compute_dtype, level, ...).
    """
    factory = load_factory(spec)
    module, args, kw = call_factory(factory, batch_size=batch_size, options=options, spec=spec)
    meta = {"factory": spec, "batch_size": batch_size}
    meta.update(kwargs.pop("metadata", None) or {})
    return import_module(module, args, kw, name=name or spec.partition(":")[2],
                         metadata=meta, **kwargs)
