"""Conversion between :class:`Instance` and :class:`networkx.DiGraph`.

Node attributes: ``work``, ``comm``, and when present ``memory``, ``label``, ``op_type``,
``group``. Edge attribute ``kind`` is ``"data"`` (a data edge that orders the stages),
``"data_only"`` (a data edge that imposes no order: :attr:`Instance.edge_orders` False) or
``"precedence"`` (ordering only, no data); a pair that is both a data-only edge and a
precedence edge of the instance (one edge of a DiGraph) is ``"data_only+precedence"``.
Graph attributes: ``name``, ``suggested_k``,
``memory_limit``, ``metadata``. ``from_networkx(to_networkx(inst)) == inst`` for every
instance (ids, costs, all three edge kinds, memory, groups, cap, metadata).
"""

from __future__ import annotations

from typing import Any

import networkx as nx
import numpy as np

from pipecert.errors import InstanceError
from pipecert.instance import Instance

__all__ = ["to_networkx", "from_networkx"]


def to_networkx(instance: Instance) -> nx.DiGraph:
    """A :class:`networkx.DiGraph` with the instance's nodes, costs and both edge kinds.

    Nodes are the instance ids, added in input order.
    """
    G = nx.DiGraph(name=instance.name)
    if instance.suggested_k is not None:
        G.graph["suggested_k"] = instance.suggested_k
    if instance.memory_limit is not None:
        G.graph["memory_limit"] = instance.memory_limit
    if instance.metadata:
        G.graph["metadata"] = dict(instance.metadata)
    ids = instance.ids
    work = instance.work.tolist()
    comm = instance.comm.tolist()
    for i, v in enumerate(ids):
        attrs: dict[str, Any] = {"work": work[i], "comm": comm[i]}
        if instance.memory is not None:
            attrs["memory"] = float(instance.memory[i])
        if instance.labels is not None:
            attrs["label"] = instance.labels[i]
        if instance.op_types is not None:
            attrs["op_type"] = instance.op_types[i]
        if instance.groups is not None:
            attrs["group"] = int(instance.groups[i])
        G.add_node(v, **attrs)
    for u, v, o in zip(instance.src.tolist(), instance.dst.tolist(),
                       instance.edge_orders.tolist()):
        G.add_edge(ids[u], ids[v], kind="data" if o else "data_only")
    for u, v in zip(instance.prec_src.tolist(), instance.prec_dst.tolist()):
        a, b = ids[u], ids[v]
        # a precedence edge never duplicates an ordering data edge (Instance drops those)
        both = G.has_edge(a, b) and G.edges[a, b]["kind"] == "data_only"
        G.add_edge(a, b, kind="data_only+precedence" if both else "precedence")
    return G


def from_networkx(
    G: nx.DiGraph,
    *,
    work: str = "work",
    comm: str = "comm",
    memory: str | None = "memory",
    label: str | None = "label",
    op_type: str | None = "op_type",
    group: str | None = "group",
    kind: str = "kind",
    default_work: float | None = None,
    default_comm: float | None = None,
    name: str | None = None,
    source: str | None = None,
) -> Instance:
    """Build an :class:`Instance` from a directed graph.

    Parameters
    ----------
    G : networkx.DiGraph
        Node keys become ids (``str(node)``), in ``G.nodes`` order.
    work, comm : str
        Node attributes holding ``w(v)`` and ``c(v)``. A node without them is an
        :class:`InstanceError` unless ``default_work`` / ``default_comm`` is given.
    memory, label, op_type, group : str or None
        Optional node attributes; kept if every node has them (``None`` disables).
    kind : str
        Edge attribute: ``"precedence"`` makes a precedence-only edge, ``"data_only"`` a
        data edge that imposes no stage order, ``"data_only+precedence"`` both; ``"data"``
        or a missing attribute is a data edge that orders. Any other value is an
        :class:`InstanceError` naming the edge.
    name, source : str, optional
        Instance name (default ``G.graph["name"]``) and error-message prefix.
    """
    if G.is_multigraph() or not G.is_directed():
        G = nx.DiGraph(G)
    nodes = list(G.nodes)
    ids = [str(v) for v in nodes]
    n = len(nodes)

    def column(attr: str, default: float | None) -> np.ndarray:
        out = np.empty(n)
        for i, v in enumerate(nodes):
            x = G.nodes[v].get(attr, default)
            if x is None:
                raise InstanceError(f"node {ids[i]!r} has no {attr!r} attribute", source=source)
            try:
                out[i] = float(x)
            except (TypeError, ValueError):
                raise InstanceError(f"node {ids[i]!r}: {attr!r} = {x!r} is not a number",
                                    source=source) from None
        return out

    def optional(attr: str | None) -> list[Any] | None:
        if attr is None or n == 0:
            return None
        vals = [G.nodes[v].get(attr) for v in nodes]
        return None if any(x is None for x in vals) else vals

    lists: dict[Any, list[tuple[str, str]]] = {None: [], "data": [], "data_only": [],
                                               "precedence": [], "data_only+precedence": []}
    for u, v, d in G.edges(data=True):
        k = d.get(kind)
        if k not in lists:
            raise InstanceError(f"edge ({str(u)!r} -> {str(v)!r}): {kind!r} = {k!r} is not "
                                "'data', 'data_only', 'precedence' or "
                                "'data_only+precedence'", source=source)
        lists[k].append((str(u), str(v)))
    data = lists[None] + lists["data"]
    prec = lists["precedence"] + lists["data_only+precedence"]
    return Instance(
        ids,
        column(work, default_work),
        column(comm, default_comm),
        data,
        prec,
        data_only_edges=lists["data_only"] + lists["data_only+precedence"],
        memory=optional(memory),
        name=name if name is not None else str(G.graph.get("name") or "instance"),
        labels=optional(label),
        op_types=optional(op_type),
        groups=optional(group),
        suggested_k=G.graph.get("suggested_k"),
        memory_limit=G.graph.get("memory_limit"),
        metadata=G.graph.get("metadata"),
        source=source,
    )
