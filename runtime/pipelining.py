"""A pipecert partition as a ``torch.distributed.pipelining`` ``split_spec``.

``torch.distributed.pipelining.pipeline(module, mb_args, split_spec=...)`` splits a model
where a submodule's ``forward`` begins (``SplitPoint.BEGINNING``) or ends
(``SplitPoint.END``): it wraps those ``forward`` methods so that they call ``pipe_split()``,
traces the model with ``torch.export`` and cuts the traced graph at every ``pipe_split``
marker (``torch.fx`` ``split_module``): an operator lands in stage ``s`` = the number of
markers before it in the trace order. :func:`split_spec_for` decides whether a partition of
a graph imported from PyTorch (:func:`instances.torch_import.import_module`) can be written
that way and returns ``{fqn: SplitPoint.BEGINNING}``, one entry per stage boundary.

The condition (:func:`split_spec_for`)
--------------------------------------
Let the *operators* be the instance's nodes in its node order, which is the trace order of
the exported graph (operator level: one node per ATen call, its module path in the node's
label; layer level: one node per maximal run of operators with the same layer key
:func:`instances.costmodel.layer_key`, the run's key as id, ``#n`` appended to the n-th run
of a key, ``<top>`` for operators outside any submodule). Parameters, buffers, constants and
model inputs (operator level) are ignored: they are not traced operators, ``pipeline()`` puts
each parameter into every stage that reads it.

1. *Contiguous*: along the operators, the stage index never decreases; the non-empty stages
   ``s_0 < s_1 < ... < s_m`` are the pipe's stages ``0..m`` (empty stages are dropped).
2. *Each boundary opens a module*: for each non-empty stage after the first, its first
   operator ``o`` lies in a submodule ``P`` (an FQN of ``module``, not a ``ModuleList`` or
   ``ModuleDict``, which are never called) such that no earlier operator lies in ``P``:
   ``o`` is the first operator ``P`` runs. Operator level: ``P`` is the shallowest prefix of
   ``o``'s module path with that property; layer level: ``P`` is ``o``'s layer key, and a
   ``#n`` run (n >= 2) or ``<top>`` fails, since the layer's operators are not the start
   of a module call.

Why the pipe's stages are exactly the partition's stages: ``SplitPoint.BEGINNING`` at ``P``
puts a marker just before the first operator ``P`` runs, that is just before ``o``. With one
marker before each boundary operator and operators contiguous by stage, the number of
markers before an operator is the (renumbered) stage pipecert gives it. This needs every
``P`` to be *called once* (a module called twice gets a marker before each call); that is
not visible in the graph, so :func:`run_pipeline_cpu` checks ``pipe.num_stages``.

What differs from the partition:

* parameters and buffers: pipecert's graph puts a parameter in one stage and charges its
  transfer to the other readers; ``pipeline()`` replicates a parameter read by several stages
  (tied embeddings) into each of them (``MultiUseParameterConfig.REPLICATE``), so nothing is
  sent for it at run time;
* at the layer level the parameters of a layer are in the layer's stage, as in the pipe;
* a model input read by a later stage is an input of that stage module too (the pipe's root
  graph passes it), while pipecert charges it as a tensor leaving the stage of the input
  node.

Running it
----------
:func:`run_pipeline_cpu` builds the pipe on a copy of the module (``pipeline()`` patches the
``forward`` of the split modules in place), checks ``pipe.num_stages``, runs the stage
modules ``pipe.get_stage_module(i)`` in order in one process on one micro-batch and
compares with the unsplit model. :func:`run_gpipe_cpu` runs the real schedule
(``ScheduleGPipe``, one process per stage, ``gloo`` on CPU) on several micro-batches.
"""

from __future__ import annotations

import copy
import os
import socket
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipecert.errors import InputError
from pipecert.instance import Instance
from pipecert.partition import Partition

__all__ = [
    "SOURCE_KINDS",
    "PipelineRun",
    "split_spec_for",
    "format_split_spec",
    "run_pipeline_cpu",
    "run_gpipe_cpu",
    "spec_for_stages",
    "split_spec_text",
    "pipe_stage_of",
    "verify_split_spec",
]

#: op types of the operator-level nodes that are not traced operators
SOURCE_KINDS = frozenset({"parameter", "buffer", "constant", "input"})


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency of runtime
        raise InputError("torch.distributed.pipelining needs PyTorch (pip install torch)") \
            from exc
    return torch


def _under(path: str, prefix: str) -> bool:
    """Whether module path ``path`` is ``prefix`` or inside it (component-wise)."""
    return path == prefix or path.startswith(prefix + ".")


def _callable_module(module: Any, fqn: str) -> str | None:
    """None if ``fqn`` names a submodule ``pipeline()`` can split at, else why not."""
    torch = _torch()
    try:
        sub = module.get_submodule(fqn)
    except AttributeError:
        return f"{fqn!r} is not a submodule of {type(module).__name__}"
    if isinstance(sub, torch.nn.ModuleList | torch.nn.ModuleDict):
        return f"{fqn!r} is a {type(sub).__name__}, which is never called"
    return None


def _operators(instance: Instance) -> tuple[list[int], list[str], str]:
    """Indices of the traced operators in node order, their module paths, and the level."""
    meta: Mapping[str, Any] = instance.metadata or {}
    level = str(meta.get("level", "operator"))
    if "torch.export" not in str(meta.get("importer", "")):  # import-torch or profile
        raise InputError(f"instance {instance.name!r} was not imported from PyTorch "
                         "(metadata.importer); a split_spec needs module paths")
    if meta.get("training"):
        raise InputError("a split_spec is for a forward graph; this instance is a "
                         "training graph")
    ops = instance.op_types or ("",) * instance.n_nodes
    labels = instance.labels or instance.ids
    if level == "layer":
        return list(range(instance.n_nodes)), list(instance.ids), level
    if level != "operator":
        raise InputError(f"unknown graph level {level!r} in the instance's metadata")
    idx = [i for i in range(instance.n_nodes) if ops[i] not in SOURCE_KINDS]
    # an operator without a module path has its node name as label
    paths = ["" if labels[i] == instance.ids[i] else labels[i] for i in idx]
    return idx, paths, level


def split_spec_for(instance: Instance, partition: Partition, module: Any,
                   ) -> tuple[dict[str, Any] | None, str]:
    """The ``split_spec`` of ``torch.distributed.pipelining`` reproducing ``partition``.

    Parameters
    ----------
    instance : Instance
        A forward graph imported from PyTorch (:func:`instances.torch_import.import_module`,
        operator or layer level).
    partition : Partition
        A partition of ``instance`` (stages in pipeline order).
    module : torch.nn.Module
        The model that was imported (its submodule FQNs are checked).

    Returns
    -------
    spec : dict of str to SplitPoint, or None
        ``{fqn: SplitPoint.BEGINNING}``, one entry per non-empty stage after the first, in
        pipeline order; ``{}`` when one stage holds every operator. None when the partition
        does not follow module boundaries (see the module docstring for the condition).
    reason : str
        Why the spec is None, or a one-line summary of the spec (stages and boundaries).

    Raises
    ------
    InputError
        If the instance was not imported from PyTorch, is a training graph, or the
        partition does not have one stage per node.
    """
    from torch.distributed.pipelining import SplitPoint

    idx, paths, level = _operators(instance)
    stage_of = partition.stage_of
    if stage_of.size != instance.n_nodes:
        raise InputError(f"the partition has {stage_of.size} nodes, the instance "
                         f"{instance.n_nodes}")
    if not idx:
        return None, "the graph has no operator"
    stages = np.asarray(stage_of)[idx]
    ids = instance.ids
    for j in range(1, len(idx)):
        if stages[j] < stages[j - 1]:
            return None, (f"not contiguous in execution order: {ids[idx[j]]!r} (stage "
                          f"{int(stages[j])}) runs after {ids[idx[j - 1]]!r} (stage "
                          f"{int(stages[j - 1])})")
    spec: dict[str, Any] = {}
    for j in range(1, len(idx)):
        if stages[j] == stages[j - 1]:
            continue
        node = ids[idx[j]]
        path = paths[j]
        where = f"stage {int(stages[j])} begins with {node!r}"
        if level == "layer":
            key, sep, run = path.partition("#")
            if key == "<top>" or not key:
                return None, f"{where}, an operator outside any submodule"
            if sep:
                return None, (f"{where}, run {run} of module {key!r}'s operators: no "
                              "submodule call starts there (try the operator level)")
            earlier = [p for p in paths[:j] if _under(p.partition("#")[0], key)]
            if earlier:
                return None, f"{where}, but {earlier[0]!r} already ran inside {key!r}"
            why = _callable_module(module, key)
            if why is not None:
                return None, f"{where}: {why}"
            spec[key] = SplitPoint.BEGINNING
            continue
        if not path:
            return None, f"{where}, an operator outside any submodule"
        parts = path.split(".")
        chosen = None
        tried: list[str] = []
        for d in range(1, len(parts) + 1):
            prefix = ".".join(parts[:d])
            if any(_under(p, prefix) for p in paths[:j]):
                continue
            why = _callable_module(module, prefix)
            if why is None:
                chosen = prefix
                break
            tried.append(why)
        if chosen is None:
            extra = f" ({tried[-1]})" if tried else ""
            return None, (f"{where} in {path!r}, but an earlier operator already ran inside "
                          f"every enclosing module{extra}")
        spec[chosen] = SplitPoint.BEGINNING
    n = len(spec) + 1
    bounds = ", ".join(spec) if spec else "none"
    return spec, f"{n} pipeline stage(s) at module boundaries; splits before: {bounds}"


def format_split_spec(spec: Mapping[str, Any]) -> str:
    """Python code a user pastes to build ``spec`` (import line included).

    Examples
    --------
    >>> from torch.distributed.pipelining import SplitPoint
    >>> print(format_split_spec({"layers.2": SplitPoint.BEGINNING}))
    from torch.distributed.pipelining import SplitPoint
    <BLANKLINE>
    split_spec = {
        "layers.2": SplitPoint.BEGINNING,
    }
    """
    lines = ["from torch.distributed.pipelining import SplitPoint", "", "split_spec = {"]
    for fqn, point in spec.items():
        name = getattr(point, "name", str(point))
        lines.append(f"    {fqn!r}: SplitPoint.{name},".replace("'", '"'))
    lines.append("}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PipelineRun:
    """What :func:`run_pipeline_cpu` or :func:`run_gpipe_cpu` ran and found.

    Attributes
    ----------
    num_stages : int
        ``pipe.num_stages``.
    stage_inputs : tuple of int
        Number of values each stage module receives (activations crossing the boundary
        and model inputs it reads).
    max_abs_error : float
        Largest absolute difference from the unsplit model's outputs.
    n_microbatches : int
        Micro-batches run (1 for the single-process check).
    """

    num_stages: int
    stage_inputs: tuple[int, ...]
    max_abs_error: float
    n_microbatches: int


def _as_tuple(x: Any) -> tuple[Any, ...]:
    return tuple(x) if isinstance(x, tuple | list) else (x,)


def _flat(x: Any) -> list[Any]:
    torch = _torch()
    return [t for t in torch.utils._pytree.tree_leaves(x) if isinstance(t, torch.Tensor)]


def _compare(got: Any, want: Any) -> float:
    torch = _torch()
    g, w = _flat(got), _flat(want)
    if len(g) != len(w):
        raise AssertionError(f"the pipeline returns {len(g)} tensors, the model {len(w)}")
    err = 0.0
    for a, b in zip(g, w, strict=True):
        torch.testing.assert_close(a, b)
        if a.numel():
            err = max(err, float((a.double() - b.double()).abs().max()))
    return err


def _build_pipe(module: Any, mb_args: tuple[Any, ...], split_spec: Mapping[str, Any],
                mb_kwargs: Mapping[str, Any] | None) -> Any:
    from torch.distributed.pipelining import pipeline

    model = copy.deepcopy(module).eval()  # pipeline() patches forward() in place
    return pipeline(model, mb_args=mb_args, mb_kwargs=dict(mb_kwargs or {}) or None,
                    split_spec=dict(split_spec))


def run_pipeline_cpu(module: Any, example_inputs: Any, split_spec: Mapping[str, Any],
                     n_microbatches: int = 1, *,
                     example_kwargs: Mapping[str, Any] | None = None) -> PipelineRun:
    """Build the pipe of ``split_spec`` and run its stage modules in order on CPU.

    Parameters
    ----------
    module : torch.nn.Module
        The model (not modified: the pipe is built on a deep copy, in eval mode).
    example_inputs : tensor or tuple
        Positional inputs of one full batch; the batch (dimension 0) must divide by
        ``n_microbatches``.
    split_spec : mapping
        From :func:`split_spec_for`.
    n_microbatches : int
        The pipe is traced on micro-batches of ``batch / n_microbatches`` rows and run on
        the first one.
    example_kwargs : mapping, optional
        Keyword inputs (kept whole).

    Returns
    -------
    PipelineRun

    Raises
    ------
    AssertionError
        If ``pipe.num_stages != len(split_spec) + 1`` (a split module called several
        times) or the outputs differ from the unsplit model's (``assert_close``).
    """
    torch = _torch()
    args = _as_tuple(example_inputs)
    if n_microbatches < 1:
        raise InputError(f"n_microbatches must be >= 1, got {n_microbatches}")
    mb = tuple(a.chunk(n_microbatches)[0] if isinstance(a, torch.Tensor) else a
               for a in args)
    with torch.no_grad():
        want = copy.deepcopy(module).eval()(*mb, **dict(example_kwargs or {}))
        pipe = _build_pipe(module, mb, split_spec, example_kwargs)
        k = len(split_spec) + 1
        if pipe.num_stages != k:
            raise AssertionError(f"pipe has {pipe.num_stages} stages, the split_spec "
                                 f"makes {k}: a split module is called more than once")
        got, inputs = _run_stages(pipe, mb, dict(example_kwargs or {}))
    err = _compare(got, want)
    return PipelineRun(num_stages=int(pipe.num_stages), stage_inputs=inputs,
                       max_abs_error=err, n_microbatches=1)


def _run_stages(pipe: Any, args: tuple[Any, ...],
                kwargs: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """Interpret the pipe's root graph, calling ``pipe.get_stage_module(i)`` for stage i."""
    torch = _torch()
    gm = pipe.split_gm
    # the root graph takes the model's inputs flattened as pytree leaves
    flat = torch.utils._pytree.tree_leaves((tuple(args), dict(kwargs)))
    env: dict[Any, Any] = {}
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != len(flat):
        raise AssertionError(f"the pipe takes {len(placeholders)} inputs, "
                             f"{len(flat)} given")
    for node, value in zip(placeholders, flat, strict=True):
        env[node] = value
    inputs: list[int] = []
    stage = 0
    out: Any = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        a = torch.fx.node.map_arg(node.args, lambda n: env[n])
        kw = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "call_module":
            mod = pipe.get_stage_module(stage)
            if mod is not gm.get_submodule(node.target):
                raise AssertionError(f"stage {stage} is not {node.target}")
            inputs.append(len(a) + len(kw))
            env[node] = mod(*a, **kw)
            stage += 1
        elif node.op == "call_function":
            env[node] = node.target(*a, **kw)
        elif node.op == "output":
            out = a[0]
        else:
            raise AssertionError(f"unexpected node {node.op} in the pipe's root graph")
    if stage != pipe.num_stages:
        raise AssertionError(f"ran {stage} stage modules of {pipe.num_stages}")
    return out, tuple(inputs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _gpipe_worker(rank: int, world: int, port: int, module: Any, args: tuple[Any, ...],
                  split_spec: dict[str, Any], n_microbatches: int, out_path: str) -> None:
    torch = _torch()
    import torch.distributed as dist
    from torch.distributed.pipelining import ScheduleGPipe

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        mb = tuple(a.chunk(n_microbatches)[0] if isinstance(a, torch.Tensor) else a
                   for a in args)
        with torch.no_grad():
            pipe = _build_pipe(module, mb, split_spec, None)
            if pipe.num_stages != world:
                raise AssertionError(f"pipe has {pipe.num_stages} stages for {world} ranks")
            stage = pipe.build_stage(rank, torch.device("cpu"))
            schedule = ScheduleGPipe(stage, n_microbatches)
            out = schedule.step(*args) if rank == 0 else schedule.step()
        if rank == world - 1:
            torch.save(out, out_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def run_gpipe_cpu(module: Any, example_inputs: Any, split_spec: Mapping[str, Any],
                  n_microbatches: int = 2, *, start_method: str | None = None,
                  ) -> PipelineRun:
    """Run ``split_spec``'s pipe with ``ScheduleGPipe``, one CPU process per stage (gloo).

    Starts ``len(split_spec) + 1`` processes (``torch.multiprocessing.start_processes``, a
    free local TCP port for the rendezvous); rank ``r`` builds the pipe, its stage ``r``,
    and runs one forward step of the schedule over ``n_microbatches`` micro-batches of the
    batch ``example_inputs`` (positional tensors, batch on dimension 0), the activations
    sent between ranks by gloo. The last rank's merged output is compared with the unsplit
    model (``assert_close``).

    Parameters
    ----------
    start_method : {"fork", "spawn"}, optional
        Default ``"fork"`` where the platform has it: the children share the parent's
        imported torch (about 3 s for two ranks on a loaded 2-core machine, against about
        25 s with ``"spawn"``, where each child imports torch again). With ``"spawn"`` the
        module and inputs must pickle (the module's class importable by the children).

    Returns
    -------
    PipelineRun
        ``stage_inputs`` is empty (the stages run in other processes).
    """
    torch = _torch()
    import multiprocessing

    import torch.multiprocessing as mp

    if start_method is None:
        start_method = "fork" if "fork" in multiprocessing.get_all_start_methods() \
            else "spawn"
    if n_microbatches < 1:
        raise InputError(f"n_microbatches must be >= 1, got {n_microbatches}")
    args = _as_tuple(example_inputs)
    world = len(split_spec) + 1
    with torch.no_grad():
        want = copy.deepcopy(module).eval()(*args)
    with tempfile.TemporaryDirectory(prefix="pipecert-gpipe-") as tmp:
        out_path = os.path.join(tmp, "out.pt")
        mp.start_processes(_gpipe_worker,
                           args=(world, _free_port(), module, args, dict(split_spec),
                                 n_microbatches, out_path),
                           nprocs=world, join=True, start_method=start_method)
        got = torch.load(out_path, weights_only=False)
    err = _compare(got, want)
    return PipelineRun(num_stages=world, stage_inputs=(), max_abs_error=err,
                       n_microbatches=n_microbatches)


def spec_for_stages(instance: Instance, stages: Sequence[Sequence[str]], module: Any,
                    ) -> tuple[dict[str, Any] | None, str]:
    """:func:`split_spec_for` of a partition given as node-id lists (one per stage)."""
    return split_spec_for(instance, Partition.from_stages(instance, stages), module)


def split_spec_text(instance: Instance, partition: Partition, module: Any) -> str:
    """What ``pipecert export`` prints: the spec as pasteable code, or why there is none.

    The code of :func:`format_split_spec` preceded by a comment with the summary, or one
    comment line ``# no split_spec: REASON`` when the partition does not follow module
    boundaries.
    """
    spec, reason = split_spec_for(instance, partition, module)
    if spec is None:
        return f"# no split_spec: {reason}"
    return f"# {reason}\n{format_split_spec(spec)}"


def pipe_stage_of(module: Any, example_inputs: Any, split_spec: Mapping[str, Any], *,
                  example_kwargs: Mapping[str, Any] | None = None) -> dict[str, int]:
    """The pipe stage of every traced operator, by ATen node name, as ``pipeline()`` cuts.

    Annotates a deep copy of ``module`` with ``split_spec`` (``annotate_split_points``, what
    ``pipeline()`` does), exports it with the importer's :func:`instances.torch_import.trace`
    (so node names are those of an operator-level instance of the same model and inputs) and
    numbers each ``call_function`` node by the ``pipe_split`` markers before it, as
    ``pipeline()``'s ``split_module`` callback does.
    """
    torch = _torch()
    from torch.distributed.pipelining._IR import annotate_split_points

    from instances.torch_import import trace

    model = copy.deepcopy(module).eval()
    annotate_split_points(model, dict(split_spec))
    ep = trace(model, _as_tuple(example_inputs), example_kwargs)
    marker = torch.ops.pippy._pipe_split.default
    stage = 0
    out: dict[str, int] = {}
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is marker:
            stage += 1
            continue
        out[node.name] = stage
    return out


def verify_split_spec(instance: Instance, partition: Partition, module: Any,
                      example_inputs: Any, split_spec: Mapping[str, Any], *,
                      example_kwargs: Mapping[str, Any] | None = None) -> list[str]:
    """Operators whose pipe stage differs from the partition's (empty: an exact match).

    For an operator-level instance: every traced operator node of ``instance`` (parameters
    and inputs excluded) must be in pipe stage :func:`pipe_stage_of` equal to its partition
    stage renumbered over the non-empty stages (empty stages dropped). ``example_inputs``
    must be the inputs the instance was imported on (same node names).

    Raises
    ------
    InputError
        For a layer-level instance (its nodes are not ATen nodes).
    """
    idx, _, level = _operators(instance)
    if level != "operator":
        raise InputError("verify_split_spec compares ATen nodes: import the model at the "
                         "operator level")
    got = pipe_stage_of(module, example_inputs, split_spec, example_kwargs=example_kwargs)
    stages = np.asarray(partition.stage_of)[idx]
    renumber = {int(s): r for r, s in enumerate(sorted(set(stages.tolist())))}
    bad: list[str] = []
    for i, s in zip(idx, stages.tolist(), strict=True):
        node = instance.ids[i]
        want = renumber[int(s)]
        have = got.get(node)
        if have != want:
            where = "not traced" if have is None else f"pipe stage {have}"
            bad.append(f"{node}: partition stage {want}, {where}")
    return bad
