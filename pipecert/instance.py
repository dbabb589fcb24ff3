"""The problem instance: an immutable DAG with work, communication and memory costs.

An :class:`Instance` holds everything the cost model of docs/theory/problem.md#mtpp needs:

* node ids (strings, unique), optional human labels and op types;
* work ``w(v) >= 0`` and communication cost ``c(v) >= 0`` (the cost of sending ``v``'s output
  once, paid once by the sending stage and once by every other stage that consumes it);
* optional memory per node;
* *data* edges (they carry ``v``'s output and create communication charges); a data edge
  either *orders* the stages (``stage(u) <= stage(v)``, the default) or is *data-only*
  (charged, no order: the gradient edges of a training graph, which flow from later
  stages back to earlier ones);
* *precedence-only* edges (they order stages but carry no data, like REGAL control edges);
* optional co-location groups (nodes of one group share a stage: a layer's forward and
  backward nodes), node memory and a memory cap per stage, a suggested ``k`` and
  free-form metadata.

The three constraints beyond the paper's problem (groups, the memory cap and data-only
edges) are the instance's *variant*, :attr:`Instance.constraints`; the feasible partitions
are those of :func:`pipecert.partition.check_feasible`. The model and its proofs are in
``docs/constraints.md``.

Validation happens once, at construction, and every problem raises :class:`InstanceError`
with one clear line. The array form (CSR adjacency, numpy cost vectors, a topological order)
is computed once so methods run fast.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipecert.errors import InputError, InstanceError

__all__ = ["Instance", "validate_k", "describe_cost_model", "UNIT_KEYS", "UNSPECIFIED",
           "CONSTRAINTS", "CONSTRAINT_NAMES"]

#: The constraints an instance can add to the paper's problem (its *variant*):
#: ``groups`` (co-location groups share a stage), ``memory`` (stage memory <= the cap) and
#: ``data_only_edges`` (charged data edges that impose no stage order).
CONSTRAINTS = ("groups", "memory", "data_only_edges")
#: Human-readable name of each constraint.
CONSTRAINT_NAMES = {
    "groups": "co-location groups",
    "memory": "a memory cap",
    "data_only_edges": "data-only (non-ordering) edges",
}

#: The quantities that carry a unit (``Instance.units``).
UNIT_KEYS = ("work", "comm", "memory")
#: The unit of a quantity whose source does not state one.
UNSPECIFIED = "unspecified"

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def validate_k(k: object, *, source: str | None = None) -> int:
    """Return ``k`` as an int, or raise :class:`InputError` if it is not an integer >= 1.

    Examples
    --------
    >>> validate_k(4)
    4
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InputError(f"k must be an integer >= 1, got {k!r}", source=source)
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}", source=source)
    return int(k)


def describe_cost_model(cm: Any) -> str:
    """One phrase saying what priced the costs, e.g. ``costs priced by the roofline model
    for a100 (default hardware)``.

    Reads ``kind`` (or ``name``), ``hardware`` (a profile dict with ``name``, or a string),
    ``compute_dtype`` and a default-hardware flag (``hardware_default`` or
    ``default_hardware`` true, or ``hardware_source == "default"``).
    """
    if not isinstance(cm, dict):
        cm = dict(cm) if hasattr(cm, "items") else {}
    kind = cm.get("kind") or cm.get("name") or "a"
    hw = cm.get("hardware")
    hw_name = hw.get("name") if isinstance(hw, dict) else hw
    default = (cm.get("hardware_default") is True or cm.get("default_hardware") is True
               or cm.get("hardware_source") == "default"
               or (isinstance(hw, dict) and hw.get("default") is True))
    text = f"costs priced by the {kind} cost model" if kind != "a" else "costs priced by a model"
    if hw_name:
        text += f" for {hw_name}" + (" (default hardware)" if default else "")
    dtype = cm.get("compute_dtype")
    if dtype:
        text += f", {dtype}"
    return text


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _csr(n: int, src: IntArray, dst: IntArray) -> tuple[IntArray, IntArray]:
    """CSR adjacency (ptr, idx) of the edges src -> dst, neighbours sorted by index."""
    order = np.lexsort((dst, src))
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=ptr[1:])
    return _readonly(ptr), _readonly(dst[order].astype(np.int64, copy=True))


def _dedupe_edges(n: int, src: IntArray, dst: IntArray) -> tuple[IntArray, IntArray]:
    if src.size == 0:
        return src.astype(np.int64), dst.astype(np.int64)
    key = np.unique(src.astype(np.int64) * n + dst.astype(np.int64))
    return key // n, key % n


def _dedupe_flagged(
    n: int, src: IntArray, dst: IntArray, flag: NDArray[np.bool_]
) -> tuple[IntArray, IntArray, NDArray[np.bool_]]:
    """Merge duplicate edges (sorted by (src, dst)); a merged edge's flag is the OR."""
    if src.size == 0:
        return src.astype(np.int64), dst.astype(np.int64), np.zeros(0, dtype=bool)
    key = src.astype(np.int64) * n + dst.astype(np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    out = np.zeros(uniq.size, dtype=bool)
    np.logical_or.at(out, inv.ravel(), flag)
    return uniq // n, uniq % n, out


class Instance:
    """An immutable MTPP instance (docs/theory/problem.md#input).

    Parameters
    ----------
    nodes : sequence of str
        Unique node ids. Their order is the instance's *input order*.
    work, comm : array_like of float
        ``w(v)`` and ``c(v)`` per node, finite and non-negative.
    edges : iterable of (str, str)
        Data edges ``(u, v)``: ``v`` consumes ``u``'s output. Duplicates are merged.
    precedence_edges : iterable of (str, str), optional
        Precedence-only edges: ``stage(u) <= stage(v)`` but no communication.
    data_only_edges : iterable of (str, str), optional
        Data edges that impose no stage order (``v`` consumes ``u``'s output, charged as
        every data edge, but ``v`` may sit in an earlier stage than ``u``): the gradient
        edges of a training graph. A pair given both here and in ``edges`` orders.
    memory : array_like of float, optional
        Memory per node (bytes or any unit), finite and non-negative.
    name : str
        Instance id used in results and messages.
    labels, op_types : sequence of str, optional
        Human-readable name and operator type per node (kept, never interpreted).
    groups : array_like of int, optional
        Co-location group per node (``-1`` = none); nodes sharing a group must share a
        stage (dnn-partitioning ``colorClass``; a layer's forward and backward nodes).
    suggested_k : int, optional
        The number of stages the source suggests (dnn-partitioning ``maxFPGAs``).
    memory_limit : float, optional
        Memory cap per stage (dnn-partitioning ``maxSizePerFPGA``): the node memory of a
        stage must not exceed it. Enforced whenever set (``replace(memory_limit=None)``
        drops it); a cap without node memory constrains nothing.
    metadata : mapping, optional
        Free-form JSON-serialisable data (units, provenance, cost model).
    source : str, optional
        Where the instance came from (a file path); prefixed to every error message.

    Raises
    ------
    InstanceError
        On an empty graph, duplicate ids, a non-finite or negative cost, an edge to an
        unknown node, a self-loop or a cycle (the message names the nodes on it).

    Examples
    --------
    >>> inst = Instance(["a", "b"], work=[1.0, 2.0], comm=[3.0, 0.0], edges=[("a", "b")])
    >>> inst.n_nodes, inst.n_edges
    (2, 1)
    """

    def __init__(
        self,
        nodes: Sequence[str],
        work: ArrayLike,
        comm: ArrayLike,
        edges: Iterable[tuple[str, str]] = (),
        precedence_edges: Iterable[tuple[str, str]] = (),
        *,
        data_only_edges: Iterable[tuple[str, str]] = (),
        memory: ArrayLike | None = None,
        name: str = "instance",
        labels: Sequence[str] | None = None,
        op_types: Sequence[str] | None = None,
        groups: ArrayLike | None = None,
        suggested_k: int | None = None,
        memory_limit: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> None:
        ids = tuple(str(v) for v in nodes)
        index: dict[str, int] = {}
        for i, v in enumerate(ids):
            if v in index:
                raise InstanceError(f"duplicate node id {v!r}", source=source)
            index[v] = i

        def to_idx(pairs: Iterable[tuple[str, str]], what: str) -> tuple[IntArray, IntArray]:
            s: list[int] = []
            d: list[int] = []
            for pair in pairs:
                u, v = str(pair[0]), str(pair[1])
                iu = index.get(u)
                iv = index.get(v)
                if iu is None or iv is None:
                    bad = u if iu is None else v
                    raise InstanceError(
                        f"{what} ({u!r} -> {v!r}) refers to unknown node {bad!r}", source=source
                    )
                s.append(iu)
                d.append(iv)
            return np.asarray(s, dtype=np.int64), np.asarray(d, dtype=np.int64)

        src, dst = to_idx(edges, "edge")
        psrc, pdst = to_idx(precedence_edges, "precedence edge")
        osrc, odst = to_idx(data_only_edges, "data-only edge")
        orders = np.concatenate([np.ones(src.size, dtype=bool), np.zeros(osrc.size, dtype=bool)])
        self._init_arrays(
            ids,
            work,
            comm,
            np.concatenate([src, osrc]),
            np.concatenate([dst, odst]),
            psrc,
            pdst,
            orders=orders,
            memory=memory,
            name=name,
            labels=labels,
            op_types=op_types,
            groups=groups,
            suggested_k=suggested_k,
            memory_limit=memory_limit,
            metadata=metadata,
            source=source,
            index=index,
        )

    @classmethod
    def from_arrays(
        cls,
        nodes: Sequence[str],
        work: ArrayLike,
        comm: ArrayLike,
        src: ArrayLike,
        dst: ArrayLike,
        prec_src: ArrayLike | None = None,
        prec_dst: ArrayLike | None = None,
        orders: ArrayLike | None = None,
        **kwargs: Any,
    ) -> Instance:
        """Build an instance from integer edge arrays (indices into ``nodes``), fast.

        ``orders`` (bool per data edge ``src[i] -> dst[i]``, default all True) marks the
        data edges that order the stages; False makes an edge data-only. Accepts the same
        keyword arguments as the constructor and runs the same validation.
        """
        self = cls.__new__(cls)
        ids = tuple(str(v) for v in nodes)
        source = kwargs.get("source")
        index: dict[str, int] = {}
        for i, v in enumerate(ids):
            if v in index:
                raise InstanceError(f"duplicate node id {v!r}", source=source)
            index[v] = i
        n = len(ids)
        arrays = []
        for name_, arr in (("edge", src), ("edge", dst), ("precedence edge", prec_src),
                           ("precedence edge", prec_dst)):
            a = np.asarray([] if arr is None else arr, dtype=np.int64).ravel()
            if a.size and (a.min() < 0 or a.max() >= n):
                bad = int(a[(a < 0) | (a >= n)][0])
                raise InstanceError(f"{name_} refers to unknown node index {bad}", source=source)
            arrays.append(a)
        s, d, ps, pd = arrays
        if s.size != d.size or ps.size != pd.size:
            raise InstanceError("edge source and target arrays differ in length", source=source)
        o = (np.ones(s.size, dtype=bool) if orders is None
             else np.asarray(orders, dtype=bool).ravel())
        if o.size != s.size:
            raise InstanceError(f"orders has {o.size} entries for {s.size} data edges",
                                source=source)
        self._init_arrays(ids, work, comm, s, d, ps, pd, orders=o, index=index, **kwargs)
        return self

    # ------------------------------------------------------------------ construction
    def _init_arrays(
        self,
        ids: tuple[str, ...],
        work: ArrayLike,
        comm: ArrayLike,
        src: IntArray,
        dst: IntArray,
        psrc: IntArray,
        pdst: IntArray,
        *,
        orders: NDArray[np.bool_] | None = None,
        memory: ArrayLike | None = None,
        name: str = "instance",
        labels: Sequence[str] | None = None,
        op_types: Sequence[str] | None = None,
        groups: ArrayLike | None = None,
        suggested_k: int | None = None,
        memory_limit: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str | None = None,
        index: dict[str, int] | None = None,
    ) -> None:
        n = len(ids)
        if n == 0:
            raise InstanceError("the graph has no nodes", source=source)
        self._ids = ids
        self.source = source
        self.name = str(name)
        self.work = self._cost_vector(work, "work", n, ids, source)
        self.comm = self._cost_vector(comm, "comm", n, ids, source)
        self.memory = (
            None if memory is None else self._cost_vector(memory, "memory", n, ids, source)
        )
        for s, d, what in ((src, dst, "edge"), (psrc, pdst, "precedence edge")):
            loops = np.flatnonzero(s == d)
            if loops.size:
                v = ids[int(s[loops[0]])]
                raise InstanceError(f"self-loop {what} on node {v!r}", source=source)
        src, dst, ordering = _dedupe_flagged(
            n, src, dst, np.ones(src.size, dtype=bool) if orders is None else orders)
        psrc, pdst = _dedupe_edges(n, psrc, pdst)
        if psrc.size and src.size:
            # a precedence edge that is also an ordering data edge adds nothing
            keep = ~np.isin(psrc * n + pdst, src[ordering] * n + dst[ordering])
            psrc, pdst = psrc[keep], pdst[keep]
        self.src = _readonly(src)
        self.dst = _readonly(dst)
        #: True for a data edge ``src[i] -> dst[i]`` that orders the stages, False for a
        #: data-only edge (charged, imposes no order).
        self.edge_orders = _readonly(ordering)
        self.prec_src = _readonly(psrc)
        self.prec_dst = _readonly(pdst)
        self.labels = None if labels is None else tuple(str(x) for x in labels)
        self.op_types = None if op_types is None else tuple(str(x) for x in op_types)
        for what, seq in (("labels", self.labels), ("op_types", self.op_types)):
            if seq is not None and len(seq) != n:
                raise InstanceError(f"{what} has {len(seq)} entries for {n} nodes", source=source)
        if groups is None:
            self.groups = None
        else:
            g = np.asarray(groups, dtype=np.int64).ravel()
            if g.size != n:
                raise InstanceError(f"groups has {g.size} entries for {n} nodes", source=source)
            self.groups = _readonly(g.copy())
        if suggested_k is not None:
            suggested_k = validate_k(suggested_k, source=source)
        self.suggested_k = suggested_k
        if memory_limit is not None:
            ml = float(memory_limit)
            if not math.isfinite(ml) or ml < 0:
                raise InstanceError(f"memory limit {memory_limit!r} is not finite and >= 0",
                                    source=source)
            memory_limit = ml
        self.memory_limit = memory_limit
        self.metadata = MappingProxyType(dict(metadata or {}))
        # every stage cost is at most W + 2 sum(c): it must stay finite (costs near the
        # float maximum would turn bounds and values into inf)
        span = float(self.work.sum()) + 2.0 * float(self.comm.sum())
        if not math.isfinite(span):
            raise InstanceError(
                "costs overflow: the total work plus twice the total comm is not a finite "
                "float (rescale the costs, e.g. to other units)", source=source)
        if index is not None:
            self.index = index  # given by the caller: seeds the cached property
        self._topo = self._toposort_or_raise()

    @staticmethod
    def _cost_vector(
        values: ArrayLike, what: str, n: int, ids: tuple[str, ...], source: str | None
    ) -> FloatArray:
        try:
            a = np.array(values, dtype=np.float64).ravel()
        except (TypeError, ValueError) as exc:
            raise InstanceError(f"{what} costs are not numbers ({exc})", source=source) from None
        if a.size != n:
            raise InstanceError(f"{what} has {a.size} values for {n} nodes", source=source)
        bad = ~np.isfinite(a)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "NaN" if math.isnan(a[i]) else "infinite"
            raise InstanceError(f"node {ids[i]!r} has {kind} {what} {a[i]}", source=source)
        neg = a < 0
        if neg.any():
            i = int(np.flatnonzero(neg)[0])
            raise InstanceError(f"node {ids[i]!r} has negative {what} {a[i]}", source=source)
        return _readonly(a)

    def _toposort_or_raise(self) -> IntArray:
        """Lexicographically smallest topological order (by node index) of all edges.

        It equals the input order whenever the input order is topological. Raises
        :class:`InstanceError` naming the nodes of a cycle if there is one.
        """
        n = self.n_nodes
        # fast path: input order is topological
        if self.all_src.size == 0 or bool(np.all(self.all_src < self.all_dst)):
            return _readonly(np.arange(n, dtype=np.int64))
        ptr, succ = self.order_succ_csr
        indeg = np.bincount(succ, minlength=n).tolist()
        ptr_l = ptr.tolist()
        succ_l = succ.tolist()
        heap = [v for v in range(n) if indeg[v] == 0]
        heapq.heapify(heap)
        order: list[int] = []
        push, pop = heapq.heappush, heapq.heappop
        while heap:
            u = pop(heap)
            order.append(u)
            for j in range(ptr_l[u], ptr_l[u + 1]):
                v = succ_l[j]
                indeg[v] -= 1
                if indeg[v] == 0:
                    push(heap, v)
        if len(order) < n:
            cyc = self._find_cycle(set(range(n)) - set(order), ptr_l, succ_l)
            names = " -> ".join(repr(self._ids[v]) for v in cyc + cyc[:1])
            raise InstanceError(f"the graph has a cycle: {names}", source=self.source)
        return _readonly(np.asarray(order, dtype=np.int64))

    @staticmethod
    def _find_cycle(rest: set[int], ptr: list[int], succ: list[int]) -> list[int]:
        """Return the nodes of one cycle among ``rest`` (nodes Kahn could not order)."""
        # every node left by Kahn has a predecessor in ``rest``; walking successors inside
        # ``rest`` that themselves still have an unresolved cycle finds one.
        start = min(rest)
        color: dict[int, int] = {}
        stack: list[tuple[int, int]] = [(start, ptr[start])]
        path: list[int] = [start]
        color[start] = 1
        while stack:
            u, j = stack[-1]
            if j < ptr[u + 1]:
                stack[-1] = (u, j + 1)
                v = succ[j]
                if v not in rest:
                    continue
                c = color.get(v, 0)
                if c == 1:
                    return path[path.index(v):]
                if c == 0:
                    color[v] = 1
                    path.append(v)
                    stack.append((v, ptr[v]))
            else:
                color[u] = 2
                path.pop()
                stack.pop()
                if not stack:
                    left = [v for v in rest if color.get(v, 0) == 0]
                    if left:
                        s = min(left)
                        color[s] = 1
                        path = [s]
                        stack = [(s, ptr[s])]
        return sorted(rest)[:2]  # pragma: no cover - Kahn guarantees a cycle exists

    # ------------------------------------------------------------------ units
    @property
    def units(self) -> dict[str, str]:
        """Units of ``work``, ``comm`` and ``memory`` (``metadata["units"]``).

        A cost whose unit the source does not state is ``"unspecified"``. Readers set the
        units their format defines (PipeDream and dnn-partitioning: ms and bytes; the
        torch/ONNX cost model: us and bytes); generators use ``"unit"`` (dimensionless).
        """
        given = self.metadata.get("units") or {}
        if isinstance(given, str):  # one unit for the time costs
            given = {"work": given, "comm": given}
        if not isinstance(given, Mapping):
            given = {}
        return {k: str(given.get(k) or UNSPECIFIED) for k in UNIT_KEYS}

    @property
    def time_unit(self) -> str:
        """The unit of stage costs (work + comm): the work unit, or ``"work/comm"`` when the
        source gives the two in different units (their sum is then only a model)."""
        u = self.units
        if u["comm"] in (u["work"], UNSPECIFIED) or u["work"] == UNSPECIFIED:
            return u["work"] if u["work"] != UNSPECIFIED else u["comm"]
        return f"{u['work']}/{u['comm']}"

    @property
    def memory_unit(self) -> str:
        """The unit of node memory and of the memory limit."""
        return self.units["memory"]

    @property
    def cost_model(self) -> Mapping[str, Any] | None:
        """Where the costs come from when a model priced them (``metadata["cost_model"]``:
        name, hardware profile, dtype, batch size ...), else None (costs as given)."""
        cm = self.metadata.get("cost_model")
        return cm if isinstance(cm, Mapping) else None

    # ------------------------------------------------------------------ fingerprints
    @cached_property
    def structure_fingerprint(self) -> str:
        """sha256 (32 hex digits) of the node ids and the edges: what a partition refers to.

        Two instances with the same fingerprint accept the same partitions (costs aside).
        """
        h = hashlib.sha256(b"pipecert-structure-1\0")
        h.update("\0".join(self._ids).encode())
        for a in (self.src, self.dst, self.prec_src, self.prec_dst):
            h.update(b"|")
            h.update(np.ascontiguousarray(a, dtype="<i8").tobytes())
        if not self.edge_orders.all():  # (absent when every data edge orders: old values)
            h.update(b"|data-only|")
            h.update(np.packbits(~self.edge_orders).tobytes())
        return h.hexdigest()[:32]

    @cached_property
    def fingerprint(self) -> str:
        """sha256 (32 hex digits) of everything that defines the problem: the structure,
        work, comm, memory, groups and the memory limit. Equal fingerprints mean equal
        optima; any changed cost changes it."""
        h = hashlib.sha256(b"pipecert-instance-1\0")
        h.update(self.structure_fingerprint.encode())
        for a in (self.work, self.comm, self.memory, self.groups):
            h.update(b"|")
            if a is not None:
                h.update(np.ascontiguousarray(a).astype("<f8" if a.dtype.kind == "f" else "<i8")
                         .tobytes())
        h.update(repr(self.memory_limit).encode())
        return h.hexdigest()[:32]

    # ------------------------------------------------------------------ basic views
    @property
    def ids(self) -> tuple[str, ...]:
        """Node ids in input order."""
        return self._ids

    @cached_property
    def index(self) -> dict[str, int]:
        """Map from node id to node index."""
        return {v: i for i, v in enumerate(self._ids)}

    @property
    def n_nodes(self) -> int:
        """Number of nodes ``n``."""
        return len(self._ids)

    @property
    def n_edges(self) -> int:
        """Number of data edges ``m`` (after merging duplicates)."""
        return int(self.src.size)

    @property
    def n_precedence_edges(self) -> int:
        """Number of precedence-only edges."""
        return int(self.prec_src.size)

    @cached_property
    def n_data_only_edges(self) -> int:
        """Number of data edges that impose no stage order."""
        return int(self.edge_orders.size - np.count_nonzero(self.edge_orders))

    @property
    def topo_order(self) -> IntArray:
        """A topological order of all edges (data and precedence), cached."""
        return self._topo

    @cached_property
    def total_work(self) -> float:
        """``W = sum_v w(v)``."""
        return float(self.work.sum())

    @cached_property
    def total_comm(self) -> float:
        """``sum_v c(v)`` over nodes with at least one data successor."""
        has_succ = np.zeros(self.n_nodes, dtype=bool)
        has_succ[self.src] = True
        return float(self.comm[has_succ].sum())

    @property
    def comm_work_ratio(self) -> float:
        """Total communication over total work (inf if the work is 0)."""
        return self.total_comm / self.total_work if self.total_work > 0 else math.inf

    # ------------------------------------------------------------------ adjacency
    @cached_property
    def succ_csr(self) -> tuple[IntArray, IntArray]:
        """Data-edge successors as CSR ``(ptr, idx)``: ``idx[ptr[u]:ptr[u+1]]``."""
        return _csr(self.n_nodes, self.src, self.dst)

    @cached_property
    def pred_csr(self) -> tuple[IntArray, IntArray]:
        """Data-edge predecessors as CSR ``(ptr, idx)``."""
        return _csr(self.n_nodes, self.dst, self.src)

    @cached_property
    def all_src(self) -> IntArray:
        """Sources of all ordering edges (ordering data edges, then precedence edges).

        Data-only edges are not ordering edges; everything built on ``all_src`` /
        ``all_dst`` (``order_*_csr``, ``topo_order``, ``longest_path``) ignores them.
        """
        src = self.src if self.edge_orders.all() else self.src[self.edge_orders]
        return _readonly(np.concatenate([src, self.prec_src]))

    @cached_property
    def all_dst(self) -> IntArray:
        """Targets of all ordering edges (ordering data edges, then precedence edges)."""
        dst = self.dst if self.edge_orders.all() else self.dst[self.edge_orders]
        return _readonly(np.concatenate([dst, self.prec_dst]))

    @cached_property
    def order_succ_csr(self) -> tuple[IntArray, IntArray]:
        """Successors over all ordering edges (data and precedence) as CSR."""
        return _csr(self.n_nodes, self.all_src, self.all_dst)

    @cached_property
    def order_pred_csr(self) -> tuple[IntArray, IntArray]:
        """Predecessors over all ordering edges (data and precedence) as CSR."""
        return _csr(self.n_nodes, self.all_dst, self.all_src)

    def successors(self, v: int) -> IntArray:
        """Data successors of node index ``v``."""
        ptr, idx = self.succ_csr
        return idx[ptr[v] : ptr[v + 1]]

    def predecessors(self, v: int) -> IntArray:
        """Data predecessors of node index ``v``."""
        ptr, idx = self.pred_csr
        return idx[ptr[v] : ptr[v + 1]]

    @cached_property
    def out_degree(self) -> IntArray:
        """Number of data successors per node."""
        return _readonly(np.bincount(self.src, minlength=self.n_nodes).astype(np.int64))

    # ------------------------------------------------------------------ variant
    @cached_property
    def constraints(self) -> frozenset[str]:
        """The constraints of :data:`CONSTRAINTS` that are *active* on this instance.

        * ``groups``: some co-location group has two or more nodes;
        * ``memory``: a memory cap is set and the total node memory exceeds it beyond the
          relative tolerance 1e-12 of :func:`pipecert.partition.check_feasible` (a cap the
          whole graph fits under constrains nothing);
        * ``data_only_edges``: some data edge imposes no stage order.

        An empty set is the paper's problem; every method declares which constraints it
        handles (:attr:`pipecert.registry.Method.handles`).
        """
        out = set()
        if self.groups is not None:
            g = self.groups[self.groups >= 0]
            if g.size and np.unique(g).size < g.size:
                out.add("groups")
        if self.memory_limit is not None and self.memory is not None \
                and float(self.memory.sum()) > self.memory_limit * (1 + 1e-12):
            out.add("memory")
        if self.n_data_only_edges:
            out.add("data_only_edges")
        return frozenset(out)

    def relaxed(self, *constraints: str) -> Instance:
        """A copy without some constraints: ``"groups"`` and/or ``"memory"``.

        Dropping a constraint enlarges the set of feasible partitions, so OPT of the copy
        is at most OPT of this instance: a lower bound for the copy is one for this
        instance. ``data_only_edges`` cannot be relaxed this way (making them ordering
        would *restrict* the problem).
        """
        changes: dict[str, Any] = {}
        for c in constraints:
            if c == "groups":
                changes["groups"] = None
            elif c == "memory":
                changes["memory_limit"] = None
            else:
                raise ValueError(f"cannot relax {c!r} (only 'groups' and 'memory')")
        return self.replace(**changes) if changes else self

    @cached_property
    def _units(self) -> tuple[IntArray, int]:
        n = self.n_nodes
        if "groups" not in self.constraints:  # ordering edges are acyclic: singletons
            return _readonly(np.arange(n, dtype=np.int64)), n
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import connected_components

        src = [self.all_src]
        dst = [self.all_dst]
        if "groups" in self.constraints:
            g = self.groups
            assert g is not None
            idx = np.flatnonzero(g >= 0)
            idx = idx[np.argsort(g[idx], kind="stable")]
            gs = g[idx]
            same = gs[1:] == gs[:-1]
            # a cycle through every group: consecutive members, and last -> first
            a, b = idx[:-1][same], idx[1:][same]
            starts = np.flatnonzero(np.r_[True, ~same])
            ends = np.r_[starts[1:] - 1, idx.size - 1]
            src += [a, idx[ends]]
            dst += [b, idx[starts]]
        s = np.concatenate(src)
        d = np.concatenate(dst)
        graph = csr_matrix((np.ones(s.size, dtype=np.int8), (s, d)), shape=(n, n))
        nu, lab = connected_components(graph, directed=True, connection="strong")
        return _readonly(np.asarray(lab, dtype=np.int64)), int(nu)

    @cached_property
    def unit_of(self) -> IntArray:
        """The *unit* of every node: nodes that must share a stage form one unit.

        Units are the strongly connected components of the ordering edges plus, for every
        co-location group, a cycle through its members: ``stage(u) <= stage(v)`` along
        every such edge forces a whole component into one stage, and nothing else is
        forced. Units are numbered ``0..n_units-1`` in a topological order of the unit DAG
        (smallest first member first), so a unit's ordering predecessors have smaller
        numbers. Without active groups every node is its own unit.
        """
        lab, nu = self._units
        n = self.n_nodes
        if nu == n and "groups" not in self.constraints:  # unit = position in topo order
            pos = np.empty(n, dtype=np.int64)
            pos[self._topo] = np.arange(n)
            return _readonly(pos)
        # condensed DAG, topological numbering (heap by smallest topo position of members)
        pos = np.empty(n, dtype=np.int64)
        pos[self._topo] = np.arange(n)
        key = np.full(nu, n, dtype=np.int64)
        np.minimum.at(key, lab, pos)
        cs, cd = lab[self.all_src], lab[self.all_dst]
        keep = cs != cd
        cs, cd = _dedupe_edges(nu, cs[keep], cd[keep])
        ptr, succ = _csr(nu, cs, cd)
        indeg = np.bincount(succ, minlength=nu).tolist()
        ptr_l, succ_l, key_l = ptr.tolist(), succ.tolist(), key.tolist()
        heap = [(key_l[u], u) for u in range(nu) if indeg[u] == 0]
        heapq.heapify(heap)
        new = np.empty(nu, dtype=np.int64)
        nxt = 0
        while heap:
            _, u = heapq.heappop(heap)
            new[u] = nxt
            nxt += 1
            for j in range(ptr_l[u], ptr_l[u + 1]):
                v = succ_l[j]
                indeg[v] -= 1
                if indeg[v] == 0:
                    heapq.heappush(heap, (key_l[v], v))
        return _readonly(new[lab])

    @property
    def n_units(self) -> int:
        """Number of units (:attr:`unit_of`); equals ``n_nodes`` without active groups."""
        return self._units[1]

    @cached_property
    def unit_members(self) -> tuple[IntArray, IntArray]:
        """Members of every unit as CSR ``(ptr, idx)``, members in node order."""
        u = self.unit_of
        order = np.argsort(u, kind="stable")
        ptr = np.zeros(self.n_units + 1, dtype=np.int64)
        np.cumsum(np.bincount(u, minlength=self.n_units), out=ptr[1:])
        return _readonly(ptr), _readonly(order.astype(np.int64))

    @cached_property
    def unit_succ_csr(self) -> tuple[IntArray, IntArray]:
        """Ordering successors of every unit (the unit DAG, no self-loops) as CSR."""
        u = self.unit_of
        cs, cd = u[self.all_src], u[self.all_dst]
        keep = cs != cd
        cs, cd = _dedupe_edges(self.n_units, cs[keep], cd[keep])
        return _csr(self.n_units, cs, cd)

    @cached_property
    def unit_pred_csr(self) -> tuple[IntArray, IntArray]:
        """Ordering predecessors of every unit as CSR."""
        u = self.unit_of
        cs, cd = u[self.all_src], u[self.all_dst]
        keep = cs != cd
        cs, cd = _dedupe_edges(self.n_units, cs[keep], cd[keep])
        return _csr(self.n_units, cd, cs)

    def unit_sums(self, values: ArrayLike) -> FloatArray:
        """Per-unit sums of a per-node vector (work, memory ...)."""
        sums = np.bincount(self.unit_of, weights=np.asarray(values, dtype=np.float64),
                           minlength=self.n_units)
        return np.asarray(sums, dtype=np.float64)

    def infeasible_reason(self, k: int) -> str | None:
        """Why no partition into ``k`` stages can meet the memory cap, or None.

        Two necessary conditions (each proves infeasibility when it fails): every unit
        fits under the cap (a unit shares one stage), and the total memory fits in
        ``k`` stages (``sum(memory) <= k * cap``, i.e. at least ``ceil(sum / cap)``
        stages). None does not prove feasibility; the exact DP decides it.
        """
        if "memory" not in self.constraints:
            return None
        assert self.memory is not None and self.memory_limit is not None
        cap = self.memory_limit
        unit_mem = self.unit_sums(self.memory)
        worst = int(np.argmax(unit_mem))
        unit = self.memory_unit if self.memory_unit != UNSPECIFIED else ""

        def amount(x: float) -> str:
            if unit in ("bytes", "byte", "B") and x >= 1e8:  # also in GB, as devices are
                return f"{x / 1e9:.4g} GB ({x:.6g} bytes)"
            return f"{x:.6g}{' ' + unit if unit else ''}"
        if unit_mem[worst] > cap * (1 + 1e-12):
            ptr, idx = self.unit_members
            members = idx[ptr[worst]:ptr[worst + 1]]
            who = (f"node {self._ids[int(members[0])]!r}" if members.size == 1 else
                   f"the {members.size} nodes that must share a stage with "
                   f"{self._ids[int(members[0])]!r}")
            return f"{who} need memory {amount(unit_mem[worst])} > the cap {amount(cap)}"
        total = float(self.memory.sum())
        if total > k * cap * (1 + 1e-12):
            need = math.ceil(total / cap * (1 - 1e-12))
            return (f"total memory {amount(total)} > k x cap = {k} x {amount(cap)} "
                    f"(at least {need} stages are needed)")
        return None

    # ------------------------------------------------------------------ helpers
    def node_index(self, v: str | int) -> int:
        """Index of node id ``v`` (an int is taken as an index and range-checked)."""
        if isinstance(v, int | np.integer) and not isinstance(v, bool):
            if 0 <= int(v) < self.n_nodes:
                return int(v)
            raise InputError(f"node index {v} out of range [0, {self.n_nodes})",
                             source=self.source)
        i = self.index.get(str(v))
        if i is None:
            raise InputError(f"unknown node {v!r}", source=self.source)
        return i

    def replace(self, **changes: Any) -> Instance:
        """A copy with some constructor arguments changed (validated again).

        ``src``/``dst`` (new data edges) take ``orders`` (a flag per new edge); without
        it the new edges all order, and an instance with data-only edges raises
        :class:`InstanceError` (its flags belong to the old edges).
        """
        kw: dict[str, Any] = dict(
            memory=self.memory,
            name=self.name,
            labels=self.labels,
            op_types=self.op_types,
            groups=self.groups,
            suggested_k=self.suggested_k,
            memory_limit=self.memory_limit,
            metadata=dict(self.metadata),
            source=self.source,
        )
        base: dict[str, Any] = dict(
            nodes=self._ids, work=self.work, comm=self.comm, src=self.src, dst=self.dst,
            prec_src=self.prec_src, prec_dst=self.prec_dst, orders=self.edge_orders,
        )
        for key, value in changes.items():
            if key in base:
                base[key] = value
            elif key in kw:
                kw[key] = value
            else:
                raise TypeError(f"Instance.replace() got an unexpected argument {key!r}")
        if ("src" in changes or "dst" in changes) and "orders" not in changes:
            # the flags belong to the old edges: new edges order (as before data-only
            # edges existed) unless the caller says which of them are data-only
            if self.n_data_only_edges:
                raise InstanceError("Instance.replace(src=, dst=) on an instance with "
                                    "data-only edges needs orders= (one flag per new edge)",
                                    source=self.source)
            base["orders"] = None
        return Instance.from_arrays(**base, **kw)

    def longest_path(self, weights: ArrayLike | None = None) -> float:
        """Weight of the heaviest path over ordering edges (default weights: work)."""
        wts = self.work if weights is None else np.asarray(weights, dtype=np.float64)
        ptr, pred = self.order_pred_csr
        dist = np.zeros(self.n_nodes)
        ptr_l = ptr.tolist()
        pred_l = pred.tolist()
        w_l = wts.tolist()
        d = dist.tolist()
        for v in self._topo.tolist():
            best = 0.0
            for j in range(ptr_l[v], ptr_l[v + 1]):
                x = d[pred_l[j]]
                if x > best:
                    best = x
            d[v] = best + w_l[v]
        return max(d) if d else 0.0

    def depth_levels(self) -> IntArray:
        """Longest-path level of every node in edges (sources are level 0)."""
        ptr, pred = self.order_pred_csr
        lev = [0] * self.n_nodes
        ptr_l = ptr.tolist()
        pred_l = pred.tolist()
        for v in self._topo.tolist():
            best = -1
            for j in range(ptr_l[v], ptr_l[v + 1]):
                x = lev[pred_l[j]]
                if x > best:
                    best = x
            lev[v] = best + 1
        return np.asarray(lev, dtype=np.int64)

    def width_estimate(self) -> int:
        """Largest number of nodes on one longest-path level (a lower bound on the width)."""
        return int(np.bincount(self.depth_levels()).max())

    def __repr__(self) -> str:
        extra = "".join(f", {c}" for c in sorted(self.constraints))
        return (
            f"Instance(name={self.name!r}, n_nodes={self.n_nodes}, n_edges={self.n_edges}, "
            f"n_precedence_edges={self.n_precedence_edges}{extra})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instance):
            return NotImplemented
        return self is other or (
            self._ids == other._ids
            and np.array_equal(self.work, other.work)
            and np.array_equal(self.comm, other.comm)
            and np.array_equal(self.src, other.src)
            and np.array_equal(self.dst, other.dst)
            and np.array_equal(self.edge_orders, other.edge_orders)
            and np.array_equal(self.prec_src, other.prec_src)
            and np.array_equal(self.prec_dst, other.prec_dst)
            and _opt_equal(self.memory, other.memory)
            and _opt_equal(self.groups, other.groups)
            and self.labels == other.labels
            and self.op_types == other.op_types
            and self.suggested_k == other.suggested_k
            and self.memory_limit == other.memory_limit
            and self.name == other.name
            and dict(self.metadata) == dict(other.metadata)
        )

    __hash__ = None  # type: ignore[assignment]


def _opt_equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))
