"""The dnn-partitioning JSON format (msr-fiddle/dnn-partitioning, Tarnawski et al.).

One JSON object with ``maxSizePerFPGA``, ``maxFPGAs``, ``maxCPUs``, ``nodes[]`` and
``edges[]`` (see ``docs/guide/formats.md#formats``). The mapping:

=================  ======================================================================
file               :class:`~pipecert.Instance`
=================  ======================================================================
``id``             node id ``str(id)``
``name``           label
``fpgaLatency``    work ``w(v)``
edge ``cost``      comm ``c(v)`` of the edge's source; every out-edge of a node must carry the
                   same cost, exactly (else :class:`FormatError` naming the node); 0
                   without out-edges (unless ``pipecertComm`` gives it)
``size``           memory
``colorClass``     co-location group (``-1`` where absent)
``maxFPGAs``       suggested ``k``
``maxSizePerFPGA`` memory cap per stage (enforced: ``Instance.memory_limit``)
``isBackwardNode`` an edge with a backward endpoint is *data-only* (charged, no order);
                   the flag is ``true``/``false`` or ``0``/``1`` (anything else is an error)
=================  ======================================================================

``cpuLatency``, ``supportedOnFpga``, ``maxCPUs`` and ``layerId`` are ignored.

Training graphs (the rules of the upstream exact DP, ``throughput-dp/dp.cpp``): nodes with
equal ``colorClass`` share a stage (a layer's forward and backward nodes); the stage order
is imposed by the edges between forward nodes only (upstream checks the DAG property "only
at the forward part" and builds its ideals from the forward edges); every edge with a
backward endpoint carries a tensor (an activation stashed for the backward pass, or a
gradient flowing to an earlier layer) and is charged by the usual In/Out rule, but orders
nothing. The writer sets ``isBackwardNode`` on the nodes whose every edge is data-only,
and refuses an instance whose data-only edges are not exactly the edges touching those
nodes (the format has no other way to say which edges order).

Units (``metadata["units"]``): work and comm in milliseconds (the public files are
PipeDream profiles in ms; the edge ``cost`` is the tensor ``size`` divided by ``2**31`` bytes
per ms), memory in bytes.

Input nodes. The input node of a layer graph carries data-loading time (resnet50: 18.962,
the largest node), like PipeDream's ``Input`` nodes. The reader keeps every value of the
file by default. ``zero_input_work=True`` (CLI ``--zero-input-work``, the same option in
every reader) sets ``w(v) = 0`` for every *forward* node (``isBackwardNode`` false) with
*no incoming edge* and positive work, as some upstream tools do before partitioning, and
records it in the metadata (``input_work``, ``input_work_option``, ``input_work_rule`` and
``input_work_zeroed`` = {node: original work}). Weight nodes of operator graphs also have
no incoming edge, but their work is already 0. ``keep_input_work`` is the older inverse
spelling (``keep_input_work=False`` zeroes).

Writer and round trip. The writer produces the upstream layout (``cpuLatency =
fpgaLatency``, edge ``size = cost * 2**31``, the bytes-per-ms convention of the public
files, omitted where it would overflow) plus keys upstream tools ignore, for what the
upstream schema has no field for: node ``pipecertId`` (ids that are not canonical decimal
integers; ``id`` is then the node index), ``opType``, ``pipecertComm`` (the comm of a node
without out-edges, which the format otherwise cannot hold) and top-level
``pipecertMetadata`` (the instance metadata, units included; read back verbatim instead of
the format's default metadata). ``name`` (labels), ``size`` (memory) and ``colorClass``
(groups) are omitted when the instance has none. What the format cannot carry at all is
refused with an :class:`InputError`, never dropped: precedence-only edges. Reading a
written file gives back an equal instance (ids, work, comm, edges in order, memory, groups,
labels, op types, suggested k, memory limit, metadata) except the name, which comes from
the file name (tests/test_roundtrip.py). On reading, ``name``, ``size``, ``pipecertId`` and
``opType`` must be given for all nodes or none; the comm of every out-edge of a node must
be exactly equal.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from instances.formats.base import (
    FORMATS,
    INPUT_WORK_OPTIONS,
    Format,
    dump_json,
    instance_name,
    load_json,
    read_text,
    wants_zero_input_work,
)
from instances.formats.base import zero_input_work as zero_input_work_of
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = ["DnnPartitioningJSON", "BYTES_PER_MS", "UNITS", "to_dnn_dict"]

#: bandwidth convention of the public files: 2**31 bytes per millisecond
BYTES_PER_MS = float(2**31)
#: units of the public files (metadata["units"])
UNITS = {"work": "ms", "comm": "ms", "memory": "bytes"}
INPUT_RULE = "forward nodes (isBackwardNode false) without an incoming edge"


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@FORMATS.register
class DnnPartitioningJSON(Format):
    """dnn-partitioning JSON (w = fpgaLatency, c = out-edge cost, memory = size)."""

    name = "dnn-partitioning"
    extensions = (".json",)
    options = INPUT_WORK_OPTIONS
    sniff_priority = 50
    writable = True
    description = "msr-fiddle/dnn-partitioning layer and operator graphs (JSON)"

    def sniff(self, path: Path, head: bytes) -> bool:
        text = head.lstrip()
        if not text.startswith(b"{"):
            return False
        return any(key in text for key in (b'"fpgaLatency"', b'"maxFPGAs"', b'"sourceId"',
                                           b'"maxSizePerFPGA"', b'"maxCPUs"'))

    def read(self, path: Path, *, zero_input_work: bool | None = None,
             keep_input_work: bool | None = None, **options: Any) -> Instance:
        source = str(path)
        if options:
            raise InputError(f"unknown option(s) {', '.join(options)}", source=source)
        zero = wants_zero_input_work(zero_input_work, keep_input_work, source)
        d = load_json(read_text(path), source)
        return self.from_dict(d, source=source, name=instance_name(path),
                              zero_input_work=zero)

    @staticmethod
    def from_dict(
        d: Any, *, source: str | None = None, name: str = "instance",
        zero_input_work: bool = False, keep_input_work: bool | None = None,
    ) -> Instance:
        """Build an instance from the parsed JSON object (see the module docstring).

        The file's values are kept unless ``zero_input_work`` (or the legacy
        ``keep_input_work=False``) asks to zero the work of the forward source nodes.
        """
        zero = wants_zero_input_work(zero_input_work or None, keep_input_work, source)

        def fail(msg: str) -> FormatError:
            return FormatError(msg, source=source)

        if not isinstance(d, dict):
            raise fail("top level must be a JSON object")
        nodes = d.get("nodes")
        edges = d.get("edges", [])
        if not isinstance(nodes, list):
            raise fail("missing 'nodes' list")
        if not isinstance(edges, list):
            raise fail("'edges' must be a list")
        n = len(nodes)
        ids: list[str] = []
        index: dict[Any, int] = {}
        labels: list[str] = []
        work = np.empty(n)
        memory = np.empty(n)
        groups = np.full(n, -1, dtype=np.int64)
        backward = np.zeros(n, dtype=bool)
        op_types: list[str] = []
        extra_comm: dict[int, float] = {}
        first = nodes[0] if n and isinstance(nodes[0], dict) else {}
        # optional fields: given for every node or for none (a missing value is an error,
        # never a silently dropped column)
        present = {key: key in first for key in ("name", "size", "pipecertId", "opType")}
        has_group = False  # colorClass is optional per node (absent: no group, -1)
        for j, node in enumerate(nodes):
            if not isinstance(node, dict):
                raise fail(f"nodes[{j}] is not an object")
            nid = node.get("id")
            if isinstance(nid, bool) or not isinstance(nid, int):
                raise fail(f"nodes[{j}]: 'id' must be an integer, got {nid!r}")
            if nid in index:
                raise fail(f"duplicate node id {nid} (nodes[{index[nid]}] and nodes[{j}])")
            index[nid] = j
            lat = node.get("fpgaLatency")
            if not _is_number(lat):
                raise fail(f"node {nid} (nodes[{j}]): 'fpgaLatency' must be a number, "
                           f"got {lat!r}")
            work[j] = lat
            for key, given in present.items():
                if (key in node) != given:
                    raise fail(f"node {nid} (nodes[{j}]): {key!r} must be given for all "
                               "nodes or none")
            pid = node.get("pipecertId", str(nid))
            if not isinstance(pid, str):
                raise fail(f"node {nid}: 'pipecertId' must be a string, got {pid!r}")
            ids.append(pid)
            if present["name"]:
                labels.append(str(node["name"]))
            if present["opType"]:
                op_types.append(str(node["opType"]))
            if present["size"]:
                size = node["size"]
                if not _is_number(size):
                    raise fail(f"node {nid}: 'size' must be a number, got {size!r}")
                memory[j] = size
            if "colorClass" in node:
                cc = node["colorClass"]
                if isinstance(cc, bool) or not isinstance(cc, int):
                    raise fail(f"node {nid}: 'colorClass' must be an integer, got {cc!r}")
                groups[j] = cc
                has_group = True
            if "pipecertComm" in node:
                pc = node["pipecertComm"]
                if not _is_number(pc):
                    raise fail(f"node {nid}: 'pipecertComm' must be a number, got {pc!r}")
                extra_comm[j] = float(pc)
            flag = node.get("isBackwardNode", 0)
            if flag not in (0, 1) or not isinstance(flag, int):  # bools are ints
                raise fail(f"node {nid}: 'isBackwardNode' must be true/false or 0/1, got "
                           f"{flag!r}")
            backward[j] = bool(flag)
        m = len(edges)
        src = np.empty(m, dtype=np.int64)
        dst = np.empty(m, dtype=np.int64)
        comm = np.zeros(n)
        seen_cost = np.zeros(n, dtype=bool)
        for j, e in enumerate(edges):
            if not isinstance(e, dict):
                raise fail(f"edges[{j}] is not an object")
            s, t, cost = e.get("sourceId"), e.get("destId"), e.get("cost")
            if s not in index or isinstance(s, bool):
                raise fail(f"edges[{j}] ({s!r} -> {t!r}) refers to unknown node {s!r}")
            if t not in index or isinstance(t, bool):
                raise fail(f"edges[{j}] ({s!r} -> {t!r}) refers to unknown node {t!r}")
            if not _is_number(cost):
                raise fail(f"edges[{j}] ({s} -> {t}): 'cost' must be a number, got {cost!r}")
            u = index[s]
            src[j] = u
            dst[j] = index[t]
            if not seen_cost[u]:
                comm[u] = cost
                seen_cost[u] = True
            elif cost != comm[u]:
                # exact: a tolerance would silently pick one of two different values
                raise fail(f"node {s}: out-edges disagree on the comm cost ({comm[u]!r} vs "
                           f"{cost!r} on edges[{j}] -> {t})")
        for j, value in extra_comm.items():
            if seen_cost[j]:
                raise fail(f"node {ids[j]}: 'pipecertComm' is only for nodes without "
                           "out-edges (their comm is the out-edge cost)")
            comm[j] = value
        metadata: dict[str, Any] = {
            "format": "dnn-partitioning",
            "work": "fpgaLatency",
            "comm": "out-edge cost",
            "units": dict(UNITS),
        }
        if backward.any():
            metadata["n_backward_nodes"] = int(backward.sum())
        if "pipecertMetadata" in d:  # written by pipecert: the instance's own metadata
            metadata = d["pipecertMetadata"]
            if not isinstance(metadata, dict):
                raise fail("'pipecertMetadata' must be an object")
        sk = d.get("maxFPGAs")
        if sk is not None and (isinstance(sk, bool) or not isinstance(sk, int) or sk < 1):
            raise fail(f"'maxFPGAs' must be a positive integer, got {sk!r}")
        ml = d.get("maxSizePerFPGA")
        if ml is not None and not _is_number(ml):
            raise fail(f"'maxSizePerFPGA' must be a number, got {ml!r}")
        inst = Instance.from_arrays(
            ids, work, comm, src, dst,
            orders=~(backward[src] | backward[dst]),
            memory=memory if present["size"] else None,
            name=name,
            labels=labels if present["name"] else None,
            op_types=op_types if present["opType"] else None,
            groups=groups if has_group else None,
            suggested_k=sk,
            memory_limit=ml,
            metadata=metadata,
            source=source,
        )
        if zero:
            indeg = np.bincount(inst.dst, minlength=n)
            inst = zero_input_work_of(inst, (indeg == 0) & ~backward, INPUT_RULE)
        return inst

    def write(self, instance: Instance, path: Path) -> None:
        """Write the upstream layout plus the ``pipecert*`` keys upstream tools ignore.

        Raises
        ------
        InputError
            For precedence-only edges, and for data-only edges that are not exactly the
            edges touching the backward nodes: the format cannot hold them.
        """
        if instance.n_precedence_edges:
            raise InputError("dnn-partitioning JSON cannot hold precedence-only edges "
                             f"({instance.n_precedence_edges} present); write native JSON",
                             source=str(path))
        try:
            d = to_dnn_dict(instance)
        except InputError as exc:  # name the file being written, not the instance's source
            raise InputError(exc.problem, source=str(path)) from None
        text = dump_json(d, path)
        Path(path).write_text(text, encoding="utf-8")


def backward_nodes(instance: Instance) -> np.ndarray:
    """The nodes to flag ``isBackwardNode``: those with a data-only edge and no ordering one.

    Raises :class:`InputError` when the data-only edges are not exactly the edges touching
    those nodes (the format derives the order from the flags alone).
    """
    n = instance.n_nodes
    back = np.zeros(n, dtype=bool)
    if instance.n_data_only_edges == 0:
        return back
    orders = instance.edge_orders
    has_free = np.zeros(n, dtype=bool)
    has_order = np.zeros(n, dtype=bool)
    for flag, arr in ((~orders, has_free), (orders, has_order)):
        arr[instance.src[flag]] = True
        arr[instance.dst[flag]] = True
    back = has_free & ~has_order
    touching = back[instance.src] | back[instance.dst]
    bad = np.flatnonzero(touching == orders)
    if bad.size:
        j = int(bad[0])
        u, v = instance.ids[int(instance.src[j])], instance.ids[int(instance.dst[j])]
        raise InputError(
            "dnn-partitioning JSON marks an edge data-only exactly when it touches a "
            f"backward node; the data-only edges here do not fit that rule (edge {u!r} -> "
            f"{v!r}); write native JSON", source=instance.source)
    return back


def to_dnn_dict(instance: Instance) -> dict[str, Any]:
    """The dnn-partitioning JSON object of ``instance`` (see the module docstring).

    Upstream fields: ``id`` (the instance id when it is a canonical decimal integer, else
    the node's index), ``name`` (the label; omitted without labels), ``fpgaLatency`` =
    ``cpuLatency`` = work, ``size`` = memory (omitted without memory), ``colorClass`` =
    group (omitted without groups), edge ``cost`` = comm of the source and ``size`` =
    ``cost * 2**31`` (omitted where that overflows). Extra keys for what the upstream schema
    has no field for: node ``pipecertId`` (a non-integer id), ``opType``, ``pipecertComm``
    (comm of a node without out-edges), top-level ``pipecertMetadata``.
    """
    ids = instance.ids
    canonical = all(v.isdecimal() and v.isascii() and str(int(v)) == v for v in ids)
    num = [int(v) for v in ids] if canonical else list(range(instance.n_nodes))
    work = instance.work.tolist()
    comm = instance.comm.tolist()
    mem = instance.memory.tolist() if instance.memory is not None else None
    groups = instance.groups.tolist() if instance.groups is not None else None
    has_out = instance.out_degree > 0
    backward = backward_nodes(instance)
    nodes = []
    for i in range(len(ids)):
        node: dict[str, Any] = {"id": num[i]}
        if instance.labels is not None:
            node["name"] = instance.labels[i]
        node.update(supportedOnFpga=1, cpuLatency=work[i], fpgaLatency=work[i],
                    isBackwardNode=int(backward[i]))
        if groups is not None:
            node["colorClass"] = groups[i]
        if mem is not None:
            node["size"] = mem[i]
        if not canonical:
            node["pipecertId"] = ids[i]
        if instance.op_types is not None:
            node["opType"] = instance.op_types[i]
        if not has_out[i] and comm[i] != 0.0:
            node["pipecertComm"] = comm[i]
        nodes.append(node)
    edges = []
    for u, v in zip(instance.src.tolist(), instance.dst.tolist()):
        edge: dict[str, Any] = {"sourceId": num[u], "destId": num[v], "cost": comm[u]}
        size = comm[u] * BYTES_PER_MS
        if math.isfinite(size):
            edge["size"] = size
        edges.append(edge)
    out: dict[str, Any] = {}
    if instance.memory_limit is not None:
        out["maxSizePerFPGA"] = instance.memory_limit
    if instance.suggested_k is not None:
        out["maxFPGAs"] = instance.suggested_k
    out["maxCPUs"] = 1
    out["nodes"] = nodes
    out["edges"] = edges
    out["pipecertMetadata"] = dict(instance.metadata)  # last: the head stays sniffable
    return out
