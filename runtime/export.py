"""Split the ``torch.export`` program of a model into pipeline stage modules.

Design
------
The model is re-exported exactly as :func:`instances.torch_import.import_module` does
(:func:`instances.torch_import.trace`: ``torch.export.export``, non-strict, eval mode, under
``no_grad``; ``run_decompositions()`` when the instance's metadata says ``ir: core-aten``),
so the FX node names of the exported graph are the instance's node ids. Each FX node gets
a stage:

* operator level: an operator, parameter, buffer, constant or input node is in the stage
  the partition gives its id; a ``getitem`` that unpacks a multi-output operator (folded
  into the operator by the importer) is in its producer's stage;
* layer level: every FX node maps to the layer node the importer made of it, by the same
  segmentation as :func:`instances.costmodel.aggregate_layers` (records in topological
  order, each source just before its first consumer, maximal runs of one
  :func:`instances.costmodel.layer_key` = one layer, ``key#2`` for a later run of the same
  key); the segment names and sizes are checked against the instance;
* FX nodes the importer does not price (assertions, unused inputs, non-tensor inputs) go to
  the last stage of their inputs, or the first stage of their consumers.

Each stage becomes a :class:`torch.fx.GraphModule` built from the exported graph's nodes of
that stage (``Graph.node_copy``, so every ATen call and its arguments are the exported
ones). Stages form a chain, as in a pipeline where stage ``i`` only talks to stage
``i + 1``: stage ``i`` is called as ``stage_i(*received, *model_inputs_i)`` and returns the
tuple it sends to stage ``i + 1`` (the last stage returns the model's flat outputs, which
:meth:`StagedModel.run` unflattens with the exported output spec). A tensor crosses every
boundary between its producer's stage and its last consumer's stage: a skip connection
produced in stage 0 and read in stage 3 is sent by stage 0, received and sent unchanged by
stages 1 and 2 (listed as *forwarded* in :attr:`StageBoundary.forwarded`), and received by
stage 3. A model input the partition places in stage ``s`` is fed by :meth:`StagedModel.run`
into stage ``s`` and forwarded the same way when later stages read it.

Parameters, buffers and constants live in the stage the partition puts their node in, as
attributes of that stage module (``get_attr``). A parameter read by several stages (tied
embeddings: GPT-2's ``wte`` is also the LM head) is, by default, held by its own stage and
sent to the later ones as a boundary tensor -- exactly what the cost model prices for that
cut. With ``replicate_parameters=True`` each stage reading it holds its own copy instead and
no weight crosses a boundary (more memory, no transfer; not what the partition's cost says).

The partition must be feasible for the graph's order constraints (:func:`pipecert.
check_feasible` with no memory cap: memory decides where stages fit, not whether they run);
an infeasible one is refused with its first violation.

When the stages follow module boundaries (each begins where a module call begins, in
the traced order), ``StagedModel.info["split_spec"]`` is the ``split_spec`` that
``torch.distributed.pipelining.pipeline`` takes (``{fqn: "BEGINNING"}``, i.e.
``SplitPoint.BEGINNING``; :func:`runtime.pipelining.split_spec_for`); otherwise it is None and
``info["split_spec_reason"]`` says why.

Saving writes ``stage_<i>.pt`` (``torch.save`` of the GraphModule, weights included) and
``manifest.json`` (stages, their nodes, boundary tensors with shapes and bytes, the input
and output pytree specs); :func:`load_staged` reads it back.
"""

from __future__ import annotations

import json
import logging
import operator
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecert.errors import InputError
from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible

__all__ = [
    "BoundaryTensor",
    "StageBoundary",
    "StagedModel",
    "export_stages",
    "export_from_factory",
    "export_from_files",
    "fx_stage_map",
    "load_staged",
    "MANIFEST_FORMAT",
]

#: The ``format`` field of ``manifest.json``.
MANIFEST_FORMAT = "pipecert-stages"
_MANIFEST_VERSION = 1
_PARAM_KINDS = ("parameter", "buffer", "constant")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundaryTensor:
    """A value that crosses at least one stage boundary (or is a model input).

    Attributes
    ----------
    name : str
        The FX node name (the instance node id at operator level).
    producer : int
        The stage computing it (for a model input: the stage it is fed into).
    consumers : tuple of int
        The other stages reading it (the last stage too when it is a model output).
    shape : tuple of int or None
        Its shape (None for a non-tensor or a tuple value).
    dtype : str
        Its dtype (``""`` when unknown).
    nbytes : int
        Its size in bytes (summed over a tuple value).
    kind : str
        ``"activation"``, ``"input"`` (a model input) or ``"parameter"``/``"buffer"``/
        ``"constant"`` (a weight sent to a later stage).
    """

    name: str
    producer: int
    consumers: tuple[int, ...]
    shape: tuple[int, ...] | None
    dtype: str
    nbytes: int
    kind: str = "activation"

    @property
    def last_consumer(self) -> int:
        """The last stage reading it (its producer when no other stage does)."""
        return max(self.consumers, default=self.producer)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"name": self.name, "producer": self.producer,
                "consumers": list(self.consumers),
                "shape": None if self.shape is None else list(self.shape),
                "dtype": self.dtype, "nbytes": self.nbytes, "kind": self.kind}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BoundaryTensor:
        """Inverse of :meth:`to_json`."""
        shape = d.get("shape")
        return cls(str(d["name"]), int(d["producer"]), tuple(int(c) for c in d["consumers"]),
                   None if shape is None else tuple(int(s) for s in shape),
                   str(d.get("dtype", "")), int(d.get("nbytes", 0)),
                   str(d.get("kind", "activation")))


@dataclass(frozen=True)
class StageBoundary:
    """What one stage receives, is fed and sends (FX node names, in call order).

    Attributes
    ----------
    receives : tuple of str
        Tensors received from the previous stage (its ``sends``), first positional inputs.
    inputs : tuple of str
        Model inputs fed into this stage by :meth:`StagedModel.run`, after ``receives``.
    sends : tuple of str
        Tensors returned for the next stage (empty for the last stage, which returns the
        model's flat outputs).
    forwarded : tuple of str
        The part of ``sends`` this stage only relays (received or fed, sent unchanged,
        produced by an earlier stage or needed by a later one only).
    nodes : tuple of str
        The instance nodes of the partition's stage.
    fx_nodes : int
        FX nodes computed in the stage (operators, weights, unpacking ``getitem``).
    """

    receives: tuple[str, ...]
    inputs: tuple[str, ...]
    sends: tuple[str, ...]
    forwarded: tuple[str, ...]
    nodes: tuple[str, ...]
    fx_nodes: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"receives": list(self.receives), "inputs": list(self.inputs),
                "sends": list(self.sends), "forwarded": list(self.forwarded),
                "nodes": list(self.nodes), "fx_nodes": self.fx_nodes}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StageBoundary:
        """Inverse of :meth:`to_json`."""
        def names(key: str) -> tuple[str, ...]:
            return tuple(str(x) for x in d[key])

        return cls(receives=names("receives"), inputs=names("inputs"), sends=names("sends"),
                   forwarded=names("forwarded"), nodes=names("nodes"),
                   fx_nodes=int(d["fx_nodes"]))


@dataclass
class StagedModel:
    """A model split into stage modules that run in order (see the module docstring).

    Attributes
    ----------
    stages : list of torch.nn.Module
        One :class:`torch.fx.GraphModule` per stage, in pipeline order.
    boundary : list of StageBoundary
        What each stage receives, is fed and sends.
    tensors : dict of str to BoundaryTensor
        Every value named in ``boundary`` (shapes, dtypes, bytes).
    in_spec, out_spec : torch.utils._pytree.TreeSpec
        The exported program's input ``(args, kwargs)`` and output specs.
    user_inputs : tuple of str
        The exported graph's user input names, in flat input order.
    info : dict
        Provenance (instance name, level, k, replicate_parameters, ...), saved in the
        manifest.
    """

    stages: list[Any]
    boundary: list[StageBoundary]
    tensors: dict[str, BoundaryTensor]
    in_spec: Any
    out_spec: Any
    user_inputs: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of stages."""
        return len(self.stages)

    def flat_inputs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The model inputs by graph input name (flattened along the exported input spec).

        Raises
        ------
        InputError
            When the inputs do not have the structure the model was exported with.
        """
        import torch.utils._pytree as pytree

        flat, spec = pytree.tree_flatten((tuple(args), dict(kwargs)))
        if spec != self.in_spec:
            try:
                from torch.export._tree_utils import reorder_kwargs

                kw = reorder_kwargs(dict(kwargs), self.in_spec)
                flat, spec = pytree.tree_flatten((tuple(args), kw))
            except Exception:  # not the same keys: reported below
                pass
        if spec != self.in_spec or len(flat) != len(self.user_inputs):
            raise InputError(f"the inputs do not match the exported model's inputs "
                             f"({len(flat)} leaves vs {len(self.user_inputs)} exported)")
        return dict(zip(self.user_inputs, flat, strict=True))

    def stage_feeds(self, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        """Run the stages in order and return the positional inputs each stage got."""
        fed = self.flat_inputs(*args, **kwargs)
        carry: tuple[Any, ...] = ()
        feeds = []
        for stage, b in zip(self.stages, self.boundary, strict=True):
            feed = carry + tuple(fed[n] for n in b.inputs)
            feeds.append(feed)
            carry = tuple(stage(*feed))
        return feeds

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Run the stages in order on the model's inputs; the unsplit model's output.

        Each stage gets the previous stage's outputs and the model inputs placed in it; the
        last stage's flat outputs are unflattened along the exported output spec.
        """
        import torch.utils._pytree as pytree

        fed = self.flat_inputs(*args, **kwargs)
        carry: tuple[Any, ...] = ()
        for stage, b in zip(self.stages, self.boundary, strict=True):
            carry = tuple(stage(*(carry + tuple(fed[n] for n in b.inputs))))
        return pytree.tree_unflatten(list(carry), self.out_spec)

    __call__ = run

    def stage_bytes(self, i: int) -> tuple[int, int]:
        """Bytes stage ``i`` receives from the previous stage and sends to the next one."""
        b = self.boundary[i]
        return (sum(self.tensors[n].nbytes for n in b.receives),
                sum(self.tensors[n].nbytes for n in b.sends))

    def skip_connections(self) -> list[BoundaryTensor]:
        """Tensors that cross more than one boundary (forwarded by at least one stage)."""
        return [t for t in self.tensors.values() if t.last_consumer - t.producer > 1]

    def manifest(self) -> dict[str, Any]:
        """The JSON manifest :meth:`save` writes."""
        from torch.utils._pytree import treespec_dumps

        return {
            "format": MANIFEST_FORMAT, "version": _MANIFEST_VERSION,
            "k": self.k, "info": self.info,
            "stages": [dict(b.to_json(), file=f"stage_{i}.pt",
                            received_bytes=self.stage_bytes(i)[0],
                            sent_bytes=self.stage_bytes(i)[1])
                       for i, b in enumerate(self.boundary)],
            "tensors": [t.to_json() for t in self.tensors.values()],
            "user_inputs": list(self.user_inputs),
            "in_spec": treespec_dumps(self.in_spec),
            "out_spec": treespec_dumps(self.out_spec),
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``stage_<i>.pt`` per stage and ``manifest.json`` into ``directory``.

        Returns the manifest's path.
        """
        import torch

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        for i, stage in enumerate(self.stages):
            torch.save(stage, d / f"stage_{i}.pt")
        path = d / "manifest.json"
        path.write_text(json.dumps(self.manifest(), indent=1) + "\n")
        return path

    def measure(self, *args: Any, warmup: int = 2, repeats: int = 7,
                **kwargs: Any) -> list[float]:
        """Median wall time (seconds) of each stage run alone on its recorded inputs.

        The stages first run once in order to record each one's inputs; then each stage
        runs ``warmup`` times untimed and ``repeats`` times timed (``time.perf_counter``),
        under ``torch.no_grad``, and its median is reported. Threads are whatever
        ``torch.get_num_threads()`` says (set it to 1 for per-stage numbers that add up).
        """
        import torch

        if warmup < 0 or repeats < 1:
            raise InputError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
        with torch.no_grad():
            feeds = self.stage_feeds(*args, **kwargs)
            out = []
            for stage, feed in zip(self.stages, feeds, strict=True):
                for _ in range(warmup):
                    stage(*feed)
                times = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    stage(*feed)
                    times.append(time.perf_counter() - t0)
                out.append(statistics.median(times))
        return out


def load_staged(directory: str | Path) -> StagedModel:
    """Read a :class:`StagedModel` written by :meth:`StagedModel.save`.

    Raises
    ------
    InputError
        On a missing or foreign manifest or a missing stage file (one line).
    """
    import torch
    from torch.utils._pytree import treespec_loads

    d = Path(directory)
    path = d / "manifest.json"
    try:
        man = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read stage manifest ({exc.strerror})", source=str(path)) \
            from None
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", source=str(path)) from None
    if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
        raise InputError("not a pipecert stage manifest", source=str(path))
    stages = []
    for s in man["stages"]:
        f = d / s["file"]
        if not f.is_file():
            raise InputError(f"missing stage file {s['file']}", source=str(d))
        stages.append(torch.load(f, weights_only=False))
    return StagedModel(
        stages=stages,
        boundary=[StageBoundary.from_json(s) for s in man["stages"]],
        tensors={t["name"]: BoundaryTensor.from_json(t) for t in man["tensors"]},
        in_spec=treespec_loads(man["in_spec"]), out_spec=treespec_loads(man["out_spec"]),
        user_inputs=tuple(man["user_inputs"]), info=dict(man.get("info") or {}))


# ------------------------------------------------------------------------- stage mapping
def _layer_segments(records: Sequence[Any], key: Callable[[Any], str]) -> tuple[
        dict[str, str], list[int]]:
    """Record id -> layer node id, and the layer sizes, as
    :func:`instances.costmodel.aggregate_layers` segments the records."""
    n = len(records)
    index = {nd.id: i for i, nd in enumerate(records)}
    consumers: list[list[int]] = [[] for _ in range(n)]
    for i, nd in enumerate(records):
        for u in nd.inputs:
            consumers[index[u]].append(i)
    order: list[int] = []
    placed = [False] * n
    for i, nd in enumerate(records):
        if nd.is_source and not nd.inputs:
            continue
        for u in nd.inputs:
            j = index[u]
            if not placed[j] and records[j].is_source and not records[j].inputs:
                placed[j] = True
                order.append(j)
        placed[i] = True
        order.append(i)
    order = [i for i in range(n) if not placed[i]] + order
    keys = [key(records[consumers[i][0]]) if records[i].is_source and consumers[i]
            else key(records[i]) for i in range(n)]
    seg_of: dict[str, str] = {}
    sizes: list[int] = []
    counts: dict[str, int] = {}
    prev: int | None = None
    name = ""
    for i in order:
        if prev is None or keys[i] != keys[prev]:
            kk = keys[i] or "<top>"
            counts[kk] = counts.get(kk, 0) + 1
            name = kk if counts[kk] == 1 else f"{kk}#{counts[kk]}"
            sizes.append(0)
        seg_of[records[i].id] = name
        sizes[-1] += 1
        prev = i
    return seg_of, sizes


def fx_stage_map(ep: Any, instance: Instance, partition: Partition) -> dict[str, int]:
    """The stage of every FX node of ``ep``'s graph that some stage computes or is fed.

    See the module docstring for the rules. ``instance`` must be the graph the importer
    made of ``ep`` (operator or layer level); the output node is not in the map.

    Raises
    ------
    InputError
        When the instance's nodes are not those of the re-exported program, or an FX edge
        would go backward (an infeasible partition).
    """
    from instances.costmodel import layer_key
    from instances.torch_import import graph_from_exported

    meta: Mapping[str, Any] = instance.metadata or {}
    level = str(meta.get("level", "operator"))
    records = graph_from_exported(ep, name=instance.name)
    ids = [r.id for r in records]
    if level == "layer":
        lk = meta.get("layer_key") or {}
        depth, extra = int(lk.get("depth", 2)), int(lk.get("extra", 0))
        rec_to_node, sizes = _layer_segments(
            records, lambda nd: layer_key(nd.module, depth, extra))
        names = list(dict.fromkeys(rec_to_node.values()))
        if sorted(names) != sorted(instance.ids):
            raise InputError(f"the layers of the re-exported model ({len(names)}) are not "
                             f"the instance's {instance.n_nodes} nodes: the instance was not "
                             f"imported from this model at this batch size and options",
                             source=instance.name)
        recorded = meta.get("layer_sizes")
        if isinstance(recorded, list) and recorded != sizes:
            raise InputError("the layer sizes of the re-exported model differ from the "
                             "instance's metadata (layer_sizes)", source=instance.name)
    elif level == "operator":
        if sorted(ids) != sorted(instance.ids):
            missing = sorted(set(instance.ids) - set(ids))[:3]
            raise InputError(f"the re-exported model has {len(ids)} nodes, the instance "
                             f"{instance.n_nodes} (e.g. {missing} not found): the instance "
                             f"was not imported from this model at this batch size and "
                             f"options", source=instance.name)
        rec_to_node = {i: i for i in ids}
    else:
        raise InputError(f"unknown graph level {level!r}", source=instance.name)
    totals = meta.get("totals")
    if isinstance(totals, Mapping) and "parameter_elements" in totals:
        elems = sum(n for r in records if r.kind in _PARAM_KINDS for n, _ in r.out_tensors)
        if int(totals["parameter_elements"]) != elems:
            raise InputError(f"the re-exported model has {elems} parameter elements, the "
                             f"instance {int(totals['parameter_elements'])}: the instance was "
                             f"not imported from this model", source=instance.name)
        flops = sum(r.flops for r in records)
        want = float(totals.get("flops", flops))
        if abs(flops - want) > 1e-9 * max(abs(want), 1.0):
            log.warning("%s: the re-exported model has %.6g FLOPs, the instance %.6g (other "
                        "input shapes?): the stages run, but the costs were priced for "
                        "other shapes", instance.name, flops, want)
    stage_of_node = {v: int(partition.stage_of[i]) for i, v in enumerate(instance.ids)}
    nodes = list(ep.graph.nodes)
    stage: dict[str, int] = {}
    for nd in nodes:
        if nd.name in rec_to_node:
            stage[nd.name] = stage_of_node[rec_to_node[nd.name]]
        elif nd.op == "call_function" and nd.target is operator.getitem:
            prod = nd.args[0]
            if prod.name in stage:
                stage[nd.name] = stage[prod.name]
    for nd in reversed(nodes):  # unpriced nodes with consumers: their first consumer's stage
        if nd.name in stage or nd.op == "output" or not nd.users:
            continue
        used = [stage[u.name] for u in nd.users if u.name in stage]
        if used:
            stage[nd.name] = min(used)
        elif any(u.op == "output" for u in nd.users):
            stage[nd.name] = partition.k - 1
    for nd in nodes:  # unpriced nodes without consumers (assertions): their inputs' stage
        if nd.name in stage or nd.op in ("output", "placeholder", "get_attr"):
            continue
        ins = [stage[a.name] for a in nd.all_input_nodes if a.name in stage]
        stage[nd.name] = max(ins, default=0)
    for nd in nodes:
        if nd.name not in stage:
            continue
        for a in nd.all_input_nodes:
            if a.name in stage and stage[a.name] > stage[nd.name]:
                raise InputError(f"the partition puts {a.name!r} (stage {stage[a.name]}) "
                                 f"after its consumer {nd.name!r} (stage {stage[nd.name]})")
    return stage


def _value_info(val: Any) -> tuple[tuple[int, ...] | None, str, int]:
    import torch

    if isinstance(val, torch.Tensor):
        shape = tuple(int(s) for s in val.shape)
        n = 1
        for s in shape:
            n *= s
        return shape, str(val.dtype).replace("torch.", ""), n * val.element_size()
    if isinstance(val, list | tuple):
        total = sum(_value_info(v)[2] for v in val)
        return None, "", total
    return None, "", 0


def export_stages(module: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                  *, instance: Instance, partition: Partition,
                  replicate_parameters: bool = False, ep: Any = None) -> StagedModel:
    """Split ``module`` (traced on ``args``/``kwargs``) into the stages of ``partition``.

    Parameters
    ----------
    module : torch.nn.Module
        The model, with real (not ``meta``) weights; put in eval mode.
    args, kwargs
        The example inputs the instance was imported with (same shapes).
    instance : Instance
        The graph :func:`instances.torch_import.import_module` made of the model, operator
        or layer level (forward only).
    partition : Partition
        A partition of ``instance``; its stage order must respect the graph's edges.
    replicate_parameters : bool
        Give every stage reading a parameter its own copy instead of sending it from the
        stage holding it (module docstring).
    ep : torch.export.ExportedProgram, optional
        The program already traced (skips the re-export; it must be the importer's trace).

    Returns
    -------
    StagedModel

    Raises
    ------
    InputError
        On a training graph, an infeasible partition (its first violation), a model on the
        meta device, or an instance that is not the model's graph (one line each).
    """
    import torch
    from torch.export.graph_signature import InputKind, OutputKind

    from instances.torch_import import trace

    meta: Mapping[str, Any] = instance.metadata or {}
    if meta.get("training"):
        raise InputError("a training graph cannot be exported as stages: import the model "
                         "without --training (forward stages)", source=instance.name)
    if partition.stage_of.size != instance.n_nodes:
        raise InputError(f"the partition has {partition.stage_of.size} nodes, the graph "
                         f"{instance.n_nodes}", source=instance.name)
    bad = check_feasible(instance, partition, memory_limit=None, max_reports=1)
    if bad:
        raise InputError(f"infeasible partition: {bad[0]}", source=instance.name)
    if ep is None:
        if any(p.is_meta for p in module.parameters()) or any(
                isinstance(a, torch.Tensor) and a.is_meta
                for a in torch.utils._pytree.tree_leaves((tuple(args), dict(kwargs or {})))):
            raise InputError("the model or its inputs are on the meta device (no weights): "
                             "export needs a factory that builds it on the CPU")
        ep = trace(module, args, kwargs, name=instance.name)
        if "core-aten" in str(meta.get("ir", "")):
            ep = ep.run_decompositions()
    sig = ep.graph_signature
    bad_out = [s.kind.name for s in sig.output_specs if s.kind != OutputKind.USER_OUTPUT]
    if bad_out:
        raise InputError(f"the exported program mutates state ({bad_out[0]}): only "
                         "inference graphs without buffer updates can be split")
    kind_of = {InputKind.PARAMETER: "parameter", InputKind.BUFFER: "buffer",
               InputKind.CONSTANT_TENSOR: "constant"}
    spec_of = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
    weights: dict[str, tuple[str, Any]] = {}  # placeholder -> (kind, tensor)
    for name, s in spec_of.items():
        if s.kind in kind_of:
            t = ep.state_dict.get(s.target) if s.target in ep.state_dict \
                else ep.constants.get(s.target)
            weights[name] = (kind_of[s.kind], t)
    user_inputs = tuple(s.arg.name for s in sig.input_specs
                        if s.kind == InputKind.USER_INPUT)
    stage = fx_stage_map(ep, instance, partition)
    k = partition.k if partition.k <= instance.n_nodes else max(stage.values(), default=0) + 1
    nodes = list(ep.graph.nodes)
    out_node = nodes[-1]
    assert out_node.op == "output"
    pos = {nd.name: i for i, nd in enumerate(nodes)}
    by_name = {nd.name: nd for nd in nodes}

    def kind(nd: Any) -> str:
        if nd.name in weights:
            return weights[nd.name][0]
        if nd.op == "get_attr":
            return "constant"
        return "input" if nd.name in user_inputs else "activation"

    # consumers per value: stages of its users (+ the last stage when it is an output)
    tensors: dict[str, BoundaryTensor] = {}
    live_until: dict[str, int] = {}
    for nd in nodes:
        if nd.name not in stage:
            continue
        s = stage[nd.name]
        users = {stage[u.name] for u in nd.users if u.op != "output" and u.name in stage}
        if out_node in nd.users:
            users.add(k - 1)
        remote = sorted(u for u in users if u != s)
        if replicate_parameters and kind(nd) in _PARAM_KINDS:
            continue
        if remote or kind(nd) == "input":
            shape, dtype, nbytes = _value_info(nd.meta.get("val"))
            tensors[nd.name] = BoundaryTensor(nd.name, s, tuple(remote), shape, dtype,
                                              nbytes, kind(nd))
            if remote:
                live_until[nd.name] = remote[-1]
    # boundary of each stage (chain): stage i sends what is live across boundary i -> i+1
    sends: list[list[str]] = [[] for _ in range(k)]
    for v, last in live_until.items():
        for i in range(stage[v], last):
            sends[i].append(v)
    for lst in sends:
        lst.sort(key=pos.__getitem__)
    fed = [[v for v in user_inputs if stage.get(v) == i] for i in range(k)]
    stage_nodes: list[list[str]] = [[] for _ in range(k)]
    for i, v in enumerate(instance.ids):
        if int(partition.stage_of[i]) < k:
            stage_nodes[int(partition.stage_of[i])].append(v)
    modules: list[Any] = []
    boundary: list[StageBoundary] = []
    for i in range(k):
        receives = sends[i - 1] if i > 0 else []
        g = torch.fx.Graph()
        root = torch.nn.Module()
        env: dict[Any, Any] = {}
        for v in [*receives, *fed[i]]:
            ph = g.placeholder(v)
            ph.meta = dict(by_name[v].meta)
            env[by_name[v]] = ph

        def attr(nd: Any, g: Any = g, root: Any = root, env: dict[Any, Any] = env) -> Any:
            if nd.name in weights:
                wk, t = weights[nd.name]
                target = nd.name
            else:  # a get_attr of the exported module
                wk, target = "constant", "c_" + str(nd.target).replace(".", "_")
                t = getattr(ep.graph_module, str(nd.target))
            if not hasattr(root, target):
                if isinstance(t, torch.nn.Parameter) or wk == "parameter":
                    root.register_parameter(target, t if isinstance(t, torch.nn.Parameter)
                                            else torch.nn.Parameter(t, requires_grad=False))
                elif isinstance(t, torch.Tensor):
                    root.register_buffer(target, t)
                else:
                    setattr(root, target, t)
            node = g.get_attr(target)
            node.meta = dict(nd.meta)
            env[nd] = node
            return node

        def lookup(a: Any, env: dict[Any, Any] = env, attr: Any = attr) -> Any:
            if a in env:
                return env[a]
            if replicate_parameters and (a.name in weights or a.op == "get_attr"):
                return attr(a)
            raise InputError(f"internal: value {a.name!r} is not available in stage")

        n_fx = 0
        for nd in nodes:
            if stage.get(nd.name) != i or nd in env or nd.op == "output":
                continue
            if nd.op == "placeholder":
                if nd.name in weights:
                    attr(nd)
                    n_fx += 1
                continue  # a user input: fed above (or unused)
            if nd.op == "get_attr":
                attr(nd)
            else:
                env[nd] = g.node_copy(nd, lookup)
            n_fx += 1
        if i == k - 1:
            result = torch.fx.node.map_arg(out_node.args[0], lookup)
            g.output(tuple(result) if isinstance(result, list | tuple) else (result,))
        else:
            g.output(tuple(lookup(by_name[v]) for v in sends[i]))
        g.lint()
        gm = torch.fx.GraphModule(root, g, class_name=f"Stage{i}")
        gm.eval()
        modules.append(gm)
        produced_here = {v for v in sends[i] if stage[v] == i}
        boundary.append(StageBoundary(
            receives=tuple(receives), inputs=tuple(fed[i]), sends=tuple(sends[i]),
            forwarded=tuple(v for v in sends[i] if v not in produced_here),
            nodes=tuple(stage_nodes[i]), fx_nodes=n_fx))
    used = {v for b in boundary for v in (*b.receives, *b.inputs, *b.sends)}
    info = {"instance": instance.name, "level": str(meta.get("level", "operator")),
            "k": k, "n_nodes": instance.n_nodes,
            "structure_fingerprint": instance.structure_fingerprint,
            "replicate_parameters": bool(replicate_parameters),
            "factory": (meta.get("factory") if isinstance(meta.get("factory"), str)
                        else None)}
    from runtime.pipelining import split_spec_for

    points, why = split_spec_for(instance, partition, module)
    spec = None if points is None else {fqn: "BEGINNING" for fqn in points}
    info["split_spec"] = spec
    if spec is None:
        info["split_spec_reason"] = why
    return StagedModel(modules, boundary, {v: t for v, t in tensors.items() if v in used},
                       ep.call_spec.in_spec, ep.call_spec.out_spec, user_inputs, info)


def export_from_factory(spec: str, instance: Instance, partition: Partition, *,
                        batch_size: int | None = None,
                        options: Mapping[str, Any] | None = None,
                        replicate_parameters: bool = False
                        ) -> tuple[StagedModel, Any, Any, Any]:
    """Build the model with factory ``module:function`` and split it.

    Returns ``(staged, module, args, kwargs)``: the stages, the unsplit model and the
    example inputs the factory made (for running or checking them).
    """
    from instances.torch_import import call_factory, load_factory

    module, args, kwargs = call_factory(load_factory(spec), batch_size=batch_size,
                                        options=options, spec=spec)
    staged = export_stages(module, args, kwargs, instance=instance, partition=partition,
                           replicate_parameters=replicate_parameters)
    staged.info.update(factory=spec, batch_size=batch_size,
                       factory_options=dict(options or {}))
    return staged, module, args, kwargs


def export_from_files(model_path: str, partition_path: str, *, factory: str | None = None,
                      options: Mapping[str, Any] | None = None,
                      batch_size: int | None = None, replicate_parameters: bool = False,
                      purpose: str = "export splits",
                      ) -> tuple[Instance, Partition, StagedModel, Any, Any, Any]:
    """Read a graph file and a partition file and export the stages (the CLI's path).

    The factory, its options and the batch size default to the ones ``import-torch`` /
    ``profile`` recorded in the graph's metadata. Used by ``pipecert export`` and
    ``pipecert bench-stages``.

    Returns
    -------
    tuple
        ``(instance, partition, staged, module, args, kwargs)``.

    Raises
    ------
    InputError
        A graph not imported from PyTorch, a training graph, a partition of another graph
        (structure fingerprint), no recorded factory and none given, a bad batch size, a
        model that is not the graph's.
    """
    import os
    import sys

    from instances.io import read_instance
    from pipecert.partition_file import PartitionFile

    if os.getcwd() not in sys.path:  # factories in the current directory, as import-torch
        sys.path.insert(0, os.getcwd())
    inst = read_instance(model_path)
    meta: dict[str, Any] = dict(inst.metadata or {})
    if "torch.export" not in str(meta.get("importer", "")):  # import-torch or profile
        raise InputError("not a graph imported from PyTorch (pipecert import-torch or "
                         "profile): nothing to run", source=model_path)
    if meta.get("training"):
        raise InputError(f"a training graph: {purpose} forward graphs (import-torch without "
                         "--training)", source=model_path)
    pf = PartitionFile.read(partition_path)
    mismatch = pf.structure_mismatch(inst)
    if mismatch:
        raise InputError(mismatch)
    part = pf.partition(inst)
    spec = factory or meta.get("factory")
    if not isinstance(spec, str) or not spec:
        raise InputError("the graph records no factory (imported by the Python API?): "
                         "give --factory MODULE:FACTORY", source=model_path)
    if batch_size is not None and batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    batch = batch_size if batch_size is not None else meta.get("batch_size")
    if options is None:
        recorded = meta.get("factory_options")
        options = dict(recorded) if isinstance(recorded, dict) else {}
    staged, module, f_args, f_kwargs = export_from_factory(
        spec, inst, part, batch_size=batch, options=dict(options),
        replicate_parameters=replicate_parameters)
    return inst, part, staged, module, f_args, f_kwargs
