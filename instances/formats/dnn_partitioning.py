"""The dnn-partitioning JSON format (msr-fiddle/dnn-partitioning, Tarnawski et al.).

One JSON object with ``maxSizePerFPGA``, ``maxFPGAs``, ``maxCPUs``, ``nodes[]`` and
``edges[]`` (see ``../shared/instances/README.md``). The mapping:

=================  ======================================================================
file               :class:`~pipecert.Instance`
=================  ======================================================================
``id``             node id ``str(id)``
``name``           label
``fpgaLatency``    work ``w(v)``
edge ``cost``      comm ``c(v)`` of the edge's source; every out-edge of a node must carry the
                   same cost (else :class:`FormatError` naming the node); 0 without out-edges
``size``           memory
``colorClass``     co-location group (``-1`` where absent)
``maxFPGAs``       suggested ``k``
``maxSizePerFPGA`` memory limit per stage
=================  ======================================================================

``cpuLatency``, ``supportedOnFpga``, ``maxCPUs`` and ``layerId`` are ignored;
``isBackwardNode`` only matters for the input rule below.

Input nodes. The input node of a layer graph carries data-loading time (resnet50: 18.962,
the largest node), like PipeDream's ``Input`` nodes, and upstream tools zero it before
partitioning. By default (``keep_input_work=False``) the reader sets ``w(v) = 0`` for every
*forward* node (``isBackwardNode`` false) with *no incoming edge* and positive work, and
records the zeroed nodes and their original work in ``metadata["input_work_zeroed"]``.
Weight nodes of operator graphs also have no incoming edge, but their work is already 0,
so the rule does not change them. ``keep_input_work=True`` keeps every work value.

The writer produces the same layout: integer ids (the instance ids when they are all
decimal integers, else ``0..n-1`` with the ids as names), ``cpuLatency = fpgaLatency``,
edge ``size = cost * 2**31`` (the bytes-per-ms convention of the public files).
Precedence-only edges cannot be written. Reading a written file back zeroes the input
work unless ``keep_input_work=True``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from instances.formats.base import FORMATS, Format, instance_name, read_text
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = ["DnnPartitioningJSON", "BYTES_PER_MS"]

#: bandwidth convention of the public files: 2**31 bytes per millisecond
BYTES_PER_MS = float(2**31)
_COST_RTOL = 1e-9


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


@FORMATS.register
class DnnPartitioningJSON(Format):
    """dnn-partitioning JSON (w = fpgaLatency, c = out-edge cost, memory = size)."""

    name = "dnn-partitioning"
    extensions = (".json",)
    options = ("keep_input_work",)
    sniff_priority = 50
    writable = True
    description = "msr-fiddle/dnn-partitioning layer and operator graphs (JSON)"

    def sniff(self, path: Path, head: bytes) -> bool:
        text = head.lstrip()
        if not text.startswith(b"{"):
            return False
        return any(key in text for key in (b'"fpgaLatency"', b'"maxFPGAs"', b'"sourceId"',
                                           b'"maxSizePerFPGA"'))

    def read(self, path: Path, *, keep_input_work: bool = False, **options: Any) -> Instance:
        source = str(path)
        if options:
            raise InputError(f"unknown option(s) {', '.join(options)}", source=source)
        try:
            d = json.loads(read_text(path))
        except json.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source,
                              line=exc.lineno) from None
        return self.from_dict(d, source=source, name=instance_name(path),
                              keep_input_work=keep_input_work)

    @staticmethod
    def from_dict(
        d: Any, *, source: str | None = None, name: str = "instance",
        keep_input_work: bool = False,
    ) -> Instance:
        """Build an instance from the parsed JSON object (see the module docstring)."""

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
        memory: list[float] | None = []
        groups = np.full(n, -1, dtype=np.int64)
        has_group = False
        backward = np.zeros(n, dtype=bool)
        for j, node in enumerate(nodes):
            if not isinstance(node, dict):
                raise fail(f"nodes[{j}] is not an object")
            nid = node.get("id")
            if isinstance(nid, bool) or not isinstance(nid, int):
                raise fail(f"nodes[{j}]: 'id' must be an integer, got {nid!r}")
            if nid in index:
                raise fail(f"duplicate node id {nid} (nodes[{index[nid]}] and nodes[{j}])")
            index[nid] = j
            ids.append(str(nid))
            labels.append(str(node.get("name", nid)))
            lat = node.get("fpgaLatency")
            if not _is_number(lat):
                raise fail(f"node {nid} (nodes[{j}]): 'fpgaLatency' must be a number, "
                           f"got {lat!r}")
            work[j] = lat
            size = node.get("size")
            if memory is not None:
                if _is_number(size):
                    memory.append(float(size))
                elif j == 0 or size is None:
                    memory = None
                else:
                    raise fail(f"node {nid}: 'size' must be a number, got {size!r}")
            cc = node.get("colorClass")
            if cc is not None:
                if isinstance(cc, bool) or not isinstance(cc, int):
                    raise fail(f"node {nid}: 'colorClass' must be an integer, got {cc!r}")
                groups[j] = cc
                has_group = True
            backward[j] = bool(node.get("isBackwardNode", 0))
        if memory is not None and len(memory) != n:
            memory = None
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
            elif cost != comm[u] and not math.isclose(cost, comm[u], rel_tol=_COST_RTOL):
                raise fail(f"node {s}: out-edges disagree on the comm cost ({comm[u]!r} vs "
                           f"{cost!r} on edges[{j}] -> {t})")
        metadata: dict[str, Any] = {
            "format": "dnn-partitioning",
            "work": "fpgaLatency",
            "comm": "out-edge cost",
        }
        if not keep_input_work and n:
            indeg = np.bincount(dst, minlength=n)
            mask = (indeg == 0) & ~backward & (work > 0)
            if mask.any():
                metadata["input_work_zeroed"] = {ids[i]: float(work[i])
                                                 for i in np.flatnonzero(mask)}
                work = work.copy()
                work[mask] = 0.0
        metadata["input_work"] = "kept" if keep_input_work else "zeroed"
        if backward.any():
            metadata["n_backward_nodes"] = int(backward.sum())
        sk = d.get("maxFPGAs")
        if sk is not None and (isinstance(sk, bool) or not isinstance(sk, int) or sk < 1):
            raise fail(f"'maxFPGAs' must be a positive integer, got {sk!r}")
        ml = d.get("maxSizePerFPGA")
        if ml is not None and not _is_number(ml):
            raise fail(f"'maxSizePerFPGA' must be a number, got {ml!r}")
        return Instance.from_arrays(
            ids, work, comm, src, dst,
            memory=memory,
            name=name,
            labels=labels,
            groups=groups if has_group else None,
            suggested_k=sk,
            memory_limit=ml,
            metadata=metadata,
            source=source,
        )

    def write(self, instance: Instance, path: Path) -> None:
        if instance.n_precedence_edges:
            raise InputError("dnn-partitioning JSON cannot hold precedence-only edges "
                             f"({instance.n_precedence_edges} present)", source=str(path))
        ids = instance.ids
        if all(v.isdecimal() and str(int(v)) == v for v in ids):
            num = [int(v) for v in ids]
            names = list(instance.labels) if instance.labels is not None else list(ids)
        else:
            num = list(range(instance.n_nodes))
            names = list(ids)
        work = instance.work.tolist()
        comm = instance.comm.tolist()
        mem = instance.memory.tolist() if instance.memory is not None else [0.0] * len(ids)
        groups = instance.groups.tolist() if instance.groups is not None else num
        nodes = [
            {"name": names[i], "id": num[i], "supportedOnFpga": 1, "cpuLatency": work[i],
             "fpgaLatency": work[i], "isBackwardNode": 0, "colorClass": groups[i],
             "size": mem[i]}
            for i in range(len(ids))
        ]
        edges = [
            {"sourceId": num[u], "destId": num[v], "cost": comm[u],
             "size": comm[u] * BYTES_PER_MS}
            for u, v in zip(instance.src.tolist(), instance.dst.tolist())
        ]
        out: dict[str, Any] = {}
        if instance.memory_limit is not None:
            out["maxSizePerFPGA"] = instance.memory_limit
        if instance.suggested_k is not None:
            out["maxFPGAs"] = instance.suggested_k
        out["maxCPUs"] = 1
        out["nodes"] = nodes
        out["edges"] = edges
        Path(path).write_text(json.dumps(out, allow_nan=False), encoding="utf-8")
