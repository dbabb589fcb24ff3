"""PipeDream profiler graphs (``graph.txt``, msr-fiddle/pipedream).

One line per node, then edge lines starting with a TAB::

    node4 -- Conv2d(64, 64, ...) -- forward_compute_time=1.2, backward_compute_time=2.1, \
activation_size=1024.0, parameter_size=36864.0
    <TAB>node3 -- node4

(the node line is one line; it is wrapped here).

The mapping:

* id: the node name (``nodeX``); label: the op description; op type: the description up to
  its first ``(`` (``Conv2d``, ``ReLU``, ``Input``, ...);
* work ``w(v) = forward_compute_time`` (ms);
* comm ``c(v) = activation_size / bandwidth`` with ``bandwidth`` in bytes per ms, default
  ``2**31``: the comm costs then equal those of the matching dnn-partitioning layer graph,
  which was made from the same profiles;
* memory = ``activation_size + parameter_size`` (bytes; the dnn-partitioning ``size``).

A field written as a list ``[a; b; c]`` (a node with a tuple output, e.g. an LSTM's
output and states in GNMT) counts as the sum of its entries.

Training instances (reader option ``training=True``, CLI ``--training``). Without the option
the reader builds the inference graph above, unchanged. With it, every node ``v`` of the file
gets a *backward node* ``vgrad`` (id ``<id>grad``, the dnn-partitioning naming; a clash with
an id of the file is an error), and the instance is the training graph of the
dnn-partitioning ``*_training.json`` layer graphs, which were made from these profiles:

The rule is :func:`instances.training.add_backward_nodes` (shared with the PyTorch
importer) with these costs:

* forward node ``v``: as above (work ``forward_compute_time``, comm ``activation_size /
  bandwidth``);
* backward node ``vgrad``: work ``w = backward_compute_time`` (ms; required on every node
  line), comm ``c = activation_size(v) / bandwidth`` (the gradient of ``v``'s output has the
  shape of the output), label ``backward of <op description>``, op type ``<op
  type>Backward``;
* co-location: ``v`` and ``vgrad`` form one group (group id = the node's line index), so
  they share a stage (PipeDream keeps a layer's backward pass where its weights and stashed
  activations are);
* edges: every forward edge ``u -> v`` orders the stages (as in inference); its mirror
  ``ugrad -> vgrad`` is a *data-only* edge (charged, no order) carrying the gradient of
  ``u``'s output between the two layers' stages, so it costs ``c(ugrad) = activation_size(u)
  / bandwidth``: the gradient tensor. The edge points from ``ugrad`` to ``vgrad`` as in the
  dnn-partitioning training graphs (the physical gradient flows from ``vgrad`` back to
  ``ugrad``): with per-producer charges this is the only orientation whose charge is the
  gradient of ``u``'s output whatever the number of inputs of ``v``, and the In/Out rule
  charges the same two stages once each in either direction (for ``u`` consumed in several
  other stages the sending stage is charged ``c(u)`` once, as for the forward tensor);
* a data-only edge ``v -> vgrad`` (the activation ``v`` stashes for its backward pass);
  ``v`` and ``vgrad`` share a stage, so it is never charged in a feasible partition (and
  in a relaxation without groups it only adds charges, so bounds stay valid);
* memory (bytes): ``v`` holds ``parameter_size + activation_size`` (the weights and the
  stashed output activation), ``vgrad`` holds ``parameter_size + activation_size`` (the
  weight gradient and the gradient of the output): a layer needs ``2 x (parameter_size +
  activation_size)``, exactly the ``size`` of the dnn-partitioning training graphs (whose
  ``resnet50_training`` totals 38.8 GB). Optimizer state and the stash of several
  micro-batches in flight are not counted; no memory cap is set (the profile has none:
  set it with ``pipecert solve --memory-limit``).

Read with the same bandwidth, ``resnet50.graph.txt`` and ``gnmt_large.graph.txt`` with
``training=True`` give the dnn-partitioning ``resnet50_training`` and ``gnmt_training``
graphs (same work, comm, memory, groups and edges) plus the stash edges, which change no
feasible partition's cost (tests/test_constrained_formats.py checks both).

Units (``metadata["units"]``): work and comm in ms (``comm`` = bytes / (bytes per ms)),
memory in bytes.

Input nodes: a node whose description starts with ``Input`` (``Input``, ``Input0``, ...)
carries data-loading time (636 ms on alexnet), which some upstream tools set to 0 before
partitioning. The reader keeps the file's values by default; ``zero_input_work=True``
(CLI ``--zero-input-work``, the same option in every reader) zeroes them and records the
nodes and their original work in the metadata (``input_work_zeroed``);
``keep_input_work`` is the older inverse spelling.

Truncated and malformed files are errors naming the file and line: every node line must
have ``forward_compute_time`` and ``activation_size``, and every field must be
``key=value`` with a complete number (``2.``, ``1e``, ``nan`` are not); a graph of several
nodes must have edge lines and no node without an edge (profiled models are connected), so
a file cut in its node section (no edge line follows) or in its edge section (nodes left
without an edge) does not pass as a smaller graph. A cut that leaves every node with an
edge and every line complete, or a cut inside the first line (a one-node graph), cannot be
told from a complete file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from instances.formats.base import (
    FORMATS,
    INPUT_WORK_OPTIONS,
    Format,
    instance_name,
    read_text,
    wants_zero_input_work,
)
from instances.formats.base import zero_input_work as zero_input_work_of
from instances.training import add_backward_nodes
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = ["PipeDreamGraph", "DEFAULT_BANDWIDTH"]

#: bytes per millisecond; makes comm equal the dnn-partitioning layer graphs' edge costs
DEFAULT_BANDWIDTH = float(2**31)

_NODE_RE = re.compile(r"^(\S+) -- (.*) -- (\w+=.*)$")
_EDGE_RE = re.compile(r"^\s+(\S+) -- (\S+)\s*$")
_NUMBER_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$")
_REQUIRED = ("forward_compute_time", "activation_size")
UNITS = {"work": "ms", "comm": "ms", "memory": "bytes"}
INPUT_RULE = "nodes whose op description starts with 'Input'"
_SNIFF_RE = re.compile(rb"^\S+ -- .* -- forward_compute_time=", re.MULTILINE)


def _number(raw: str) -> float:
    """One complete decimal number as the profiler prints it (``12.345``, ``1e-05``);
    anything else (``2.``, ``1e``, ``nan``) raises :class:`ValueError`."""
    raw = raw.strip()
    if not _NUMBER_RE.match(raw):
        raise ValueError(raw)
    return float(raw)


def _value(raw: str) -> float:
    """A field value: a number, or ``[a; b; ...]`` (a tuple output) summed."""
    raw = raw.strip()
    if raw.startswith("[") and raw.endswith("]"):
        parts = [x for x in raw[1:-1].split(";") if x.strip()]
        if not parts:
            raise ValueError(raw)
        return float(sum(_number(x) for x in parts))
    return _number(raw)


def _op_type(desc: str) -> str:
    head = desc.split("(", 1)[0].strip()
    return head or desc.strip()


@FORMATS.register
class PipeDreamGraph(Format):
    """PipeDream profile graph.txt (w = forward time, c = activation_size / bandwidth)."""

    name = "pipedream"
    extensions = (".graph.txt", ".txt")
    options = ("bandwidth", "training", *INPUT_WORK_OPTIONS)
    sniff_priority = 40
    description = "PipeDream profiler graph.txt"

    def sniff(self, path: Path, head: bytes) -> bool:
        return _SNIFF_RE.search(head) is not None

    def read(
        self,
        path: Path,
        *,
        bandwidth: float = DEFAULT_BANDWIDTH,
        zero_input_work: bool | None = None,
        keep_input_work: bool | None = None,
        training: bool = False,
        **options: Any,
    ) -> Instance:
        source = str(path)
        if options:
            raise InputError(f"unknown option(s) {', '.join(options)}", source=source)
        if not isinstance(training, bool | np.bool_):
            raise InputError(f"training must be True or False, got {training!r}",
                             source=source)
        zero = wants_zero_input_work(zero_input_work, keep_input_work, source)
        try:
            bw = float(bandwidth)
        except (TypeError, ValueError):
            raise InputError(f"bandwidth must be a number, got {bandwidth!r}",
                             source=source) from None
        if not (math.isfinite(bw) and bw > 0):
            raise InputError(f"bandwidth must be finite and > 0, got {bandwidth!r}",
                             source=source)
        ids: list[str] = []
        index: dict[str, int] = {}
        labels: list[str] = []
        fwd: list[float] = []
        act: list[float] = []
        param: list[float] = []
        bwd: list[float | None] = []
        src: list[int] = []
        dst: list[int] = []
        edge_lines: list[tuple[int, str, str]] = []
        for lineno, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            if line[0] in " \t":
                m = _EDGE_RE.match(line)
                if not m:
                    raise FormatError(f"malformed edge line {line.strip()!r} (expected "
                                      "'<TAB>nodeA -- nodeB')", source=source, line=lineno)
                edge_lines.append((lineno, m.group(1), m.group(2)))
                continue
            m = _NODE_RE.match(line)
            if not m:
                raise FormatError(
                    f"malformed node line {line[:60]!r} (expected 'nodeX -- <op> -- "
                    "forward_compute_time=..., activation_size=...')",
                    source=source, line=lineno,
                )
            nid, desc, fields = m.group(1), m.group(2), m.group(3)
            if nid in index:
                raise FormatError(f"duplicate node id {nid!r}", source=source, line=lineno)
            vals: dict[str, float] = {}
            for item in fields.split(","):
                key, sep, raw = item.strip().partition("=")
                if not sep:
                    raise FormatError(f"node {nid!r}: malformed field {item.strip()!r}",
                                      source=source, line=lineno)
                try:
                    vals[key] = _value(raw)
                except ValueError:
                    raise FormatError(f"node {nid!r}: {key} = {raw!r} is not a number",
                                      source=source, line=lineno) from None
            for key in _REQUIRED:
                if key not in vals:
                    raise FormatError(f"node {nid!r}: missing {key} (truncated or malformed "
                                      "line)", source=source, line=lineno)
            for key, value in vals.items():
                if not math.isfinite(value) or value < 0:
                    raise FormatError(f"node {nid!r}: {key} = {value} is not finite and >= 0",
                                      source=source, line=lineno)
            index[nid] = len(ids)
            ids.append(nid)
            labels.append(desc)
            fwd.append(vals["forward_compute_time"])
            act.append(vals["activation_size"])
            param.append(vals.get("parameter_size", 0.0))
            bwd.append(vals.get("backward_compute_time"))
            if training and bwd[-1] is None:
                raise FormatError(f"node {nid!r}: missing backward_compute_time (needed to "
                                  "build the training graph)", source=source, line=lineno)
        if not ids:
            raise FormatError("no node lines found", source=source)
        if len(ids) > 1 and not edge_lines:
            raise FormatError(f"{len(ids)} nodes but no edge lines: the file looks truncated "
                              "(a profiled model is connected)", source=source)
        for lineno, a, b in edge_lines:
            for x in (a, b):
                if x not in index:
                    raise FormatError(f"edge {a} -> {b} refers to unknown node {x!r}",
                                      source=source, line=lineno)
            if a == b:
                raise FormatError(f"self-loop edge on node {a!r}", source=source, line=lineno)
            src.append(index[a])
            dst.append(index[b])
        if len(ids) > 1:
            touched = np.zeros(len(ids), dtype=bool)
            touched[src] = True
            touched[dst] = True
            if not touched.all():
                lonely = [ids[i] for i in np.flatnonzero(~touched)[:3]]
                raise FormatError(
                    f"node {lonely[0]!r} has no edge ({int((~touched).sum())} such nodes): "
                    "the edge section looks truncated (a profiled model is connected)",
                    source=source)
        work = np.asarray(fwd)
        op_types = [_op_type(x) for x in labels]
        metadata: dict[str, Any] = {
            "format": "pipedream",
            "work": "forward_compute_time (ms)",
            "comm": "activation_size / bandwidth",
            "bandwidth": bw,
            "memory": "activation_size + parameter_size (bytes)",
        }
        metadata["units"] = dict(UNITS)
        if training:
            inst = _training_instance(ids, labels, op_types, work, np.asarray(act),
                                      np.asarray(param), np.asarray(bwd, dtype=np.float64),
                                      src, dst, bw, metadata, instance_name(path), source)
            if zero:
                n = len(ids)
                is_input = np.zeros(2 * n, dtype=bool)
                is_input[:n] = [x.startswith("Input") for x in labels]
                inst = zero_input_work_of(inst, is_input, INPUT_RULE + " (forward nodes)")
            return inst
        inst = Instance.from_arrays(
            ids,
            work,
            np.asarray(act) / bw,
            src,
            dst,
            memory=np.asarray(act) + np.asarray(param),
            name=instance_name(path),
            labels=labels,
            op_types=op_types,
            metadata=metadata,
            source=source,
        )
        if zero:
            is_input = np.array([x.startswith("Input") for x in labels], dtype=bool)
            inst = zero_input_work_of(inst, is_input, INPUT_RULE)
        return inst


def _training_instance(ids: list[str], labels: list[str], op_types: list[str],
                       fwd: np.ndarray, act: np.ndarray, param: np.ndarray, bwd: np.ndarray,
                       src: list[int], dst: list[int], bw: float, metadata: dict[str, Any],
                       name: str, source: str) -> Instance:
    """The training graph of a profile (the rule is in the module docstring)."""
    memory = act + param
    forward = Instance.from_arrays(ids, fwd, act / bw, src, dst, memory=memory, name=name,
                                   labels=labels, op_types=op_types, metadata=metadata,
                                   source=source)
    return add_backward_nodes(forward, backward_work=bwd, backward_memory=memory, metadata={
        "work": "forward_compute_time (ms) for a node, backward_compute_time (ms) for its "
                "backward node <id>grad",
        "comm": "activation_size / bandwidth for a node and for its backward node (the "
                "gradient of its output)",
        "memory": "activation_size + parameter_size (bytes) for a node (stashed activation "
                  "+ weights) and again for its backward node (output gradient + weight "
                  "gradient)",
        "groups": "a node and its backward node share a group (group = line index)",
        "data_only_edges": "ugrad -> vgrad for every edge u -> v (the gradient of u's "
                           "output) and v -> vgrad (the stashed activation)",
    })
