"""Partitions and the one reference cost function of pipecert (docs/theory/problem.md).

Every number pipecert reports as the value of a partition comes from :func:`evaluate` (or
:func:`stage_costs`, which it is built on). Methods never grade themselves.

The block cost of a node set ``S`` is::

    f(S) = sum_{v in S} w(v) + sum_{u in In(S)} c(u) + sum_{u in Out(S)} c(u)

with ``In(S)`` the producers outside ``S`` with a data successor in ``S`` and ``Out(S)`` the
producers in ``S`` with a data successor outside ``S``. Each producer is charged at most once
per block on each side; precedence-only edges are never charged, data-only edges are
charged like every data edge.

A partition is *feasible* (:func:`check_feasible`) when it uses at most ``k`` stages, every
ordering edge (ordering data edges and precedence edges) goes forward or stays in a stage,
every co-location group lies in one stage and every stage's memory is within the
instance's cap: the instance's variant (:attr:`pipecert.instance.Instance.constraints`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipecert.errors import InputError
from pipecert.instance import Instance, validate_k

__all__ = [
    "Partition",
    "StageCosts",
    "block_cost",
    "stage_costs",
    "evaluate",
    "check_feasible",
    "is_feasible",
]


class Partition:
    """An ordered partition of the nodes into ``k`` (possibly empty) stages.

    Parameters
    ----------
    stage_of : array_like of int
        Stage index in ``0..k-1`` for every node, in instance node order.
    k : int
        Number of stages (>= 1). Stages are in pipeline order.

    Notes
    -----
    A partition does not know its instance; :func:`check_feasible` checks it against one.

    Examples
    --------
    >>> Partition([0, 0, 1], k=2).stage_of.tolist()
    [0, 0, 1]
    """

    __slots__ = ("stage_of", "k")

    def __init__(self, stage_of: ArrayLike, k: int) -> None:
        self.k = validate_k(k)
        a = np.array(stage_of, dtype=np.int64).ravel()
        a.setflags(write=False)
        self.stage_of: NDArray[np.int64] = a

    @classmethod
    def from_stages(
        cls, instance: Instance, stages: Sequence[Iterable[str | int]], k: int | None = None
    ) -> Partition:
        """Build from lists of node ids (or indices), one list per stage in pipeline order.

        Raises :class:`InputError` on an unknown node, a node in two stages, a node in no
        stage, or more stages than ``k``.
        """
        k = len(stages) if k is None else validate_k(k)
        if len(stages) > k:
            raise InputError(f"partition has {len(stages)} stages but k = {k}")
        stage_of = np.full(instance.n_nodes, -1, dtype=np.int64)
        for b, stage in enumerate(stages):
            for v in stage:
                i = instance.node_index(v)
                if stage_of[i] >= 0:
                    raise InputError(
                        f"node {instance.ids[i]!r} is in stages {int(stage_of[i])} and {b}"
                    )
                stage_of[i] = b
        missing = np.flatnonzero(stage_of < 0)
        if missing.size:
            names = ", ".join(repr(instance.ids[i]) for i in missing[:5])
            more = f" and {missing.size - 5} more" if missing.size > 5 else ""
            raise InputError(f"nodes in no stage: {names}{more}")
        return cls(stage_of, max(k, 1))

    @classmethod
    def from_slices(cls, order: ArrayLike, cuts: Sequence[int], k: int) -> Partition:
        """Slice a node order at positions ``cuts`` (block b = order[cuts[b-1]:cuts[b]]).

        ``cuts`` lists the end positions of the first blocks; the last block runs to the end.
        """
        order_a = np.asarray(order, dtype=np.int64)
        n = order_a.size
        bounds = [0, *[int(c) for c in cuts], n]
        if len(bounds) - 1 > k:
            raise InputError(f"{len(bounds) - 1} slices for k = {k}")
        stage_of = np.empty(n, dtype=np.int64)
        for b in range(len(bounds) - 1):
            stage_of[order_a[bounds[b] : bounds[b + 1]]] = b
        return cls(stage_of, k)

    def stage_index(self) -> NDArray[np.int64]:
        """The stages :meth:`stages` and :func:`stage_costs` list, in pipeline order.

        ``0..k-1`` when ``k <= max(n, FULL_LISTING_MAX_K)`` (n = number of nodes, the cap
        is 65,536). Above that at most ``n`` stages can hold a node, so only ``n`` stages
        are listed: ``0..n-1`` when every stage index used is below ``n``, else the
        non-empty stages. Every stage not listed is empty (cost 0). Memory stays
        O(n + 65,536) whatever ``k`` is.
        """
        listed = _listed_stages(self.stage_of, self.k)
        if listed is None:
            return np.arange(_dense_length(self.stage_of.size, self.k), dtype=np.int64)
        return listed

    def stages(self, instance: Instance | None = None) -> list[list[Any]]:
        """Node lists per listed stage (ids if ``instance`` is given, else indices).

        One list per stage of :meth:`stage_index`: all ``k`` stages unless ``k`` exceeds
        both ``n`` and 65,536, then at most ``n`` lists (the stages not listed are empty),
        so a huge ``k`` never allocates O(k). Nodes are in node order within a stage.
        """
        s = self.stage_of
        if s.size and (int(s.min()) < 0 or int(s.max()) >= self.k):
            raise InputError(f"partition uses a stage outside 0..{self.k - 1}")
        index = self.stage_index()
        labels = np.searchsorted(index, s)
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=index.size)
        out: list[list[Any]] = []
        pos = 0
        for b in range(index.size):
            idx = order[pos : pos + counts[b]].tolist()
            pos += counts[b]
            out.append([instance.ids[i] for i in idx] if instance is not None else idx)
        return out

    @property
    def n_nonempty(self) -> int:
        """Number of stages holding at least one node."""
        return int(np.unique(self.stage_of).size)

    def compact(self) -> Partition:
        """The same partition with empty stages moved to the end (costs unchanged)."""
        used = np.unique(self.stage_of)  # O(n) memory whatever k is
        return Partition(np.searchsorted(used, self.stage_of), self.k)

    def with_k(self, k: int) -> Partition:
        """The same stages, declared for ``k`` stages (must hold every used index)."""
        return Partition(self.stage_of, k)

    # ------------------------------------------------------------------ files
    def to_json(self, instance: Instance, **provenance: Any) -> dict[str, Any]:
        """The partition file object (schema in :mod:`pipecert.partition_file`).

        ``provenance`` are the keyword arguments of
        :func:`pipecert.partition_file.partition_json` (graph path, lower bound, methods ...).
        """
        from pipecert.partition_file import partition_json

        return partition_json(self, instance, **provenance)

    def write(self, path: str | Path, instance: Instance, **provenance: Any) -> None:
        """Write the partition file (JSON, see :meth:`to_json`), atomically."""
        from pipecert.partition_file import write_partition

        write_partition(path, self, instance, **provenance)

    @classmethod
    def from_json(
        cls, data: Any, instance: Instance, *, source: str | None = None
    ) -> Partition:
        """Parse a partition file object (any schema version); errors name ``source``."""
        from pipecert.partition_file import PartitionFile

        return PartitionFile.from_json(data, source=source).partition(instance)

    @classmethod
    def read(cls, path: str | Path, instance: Instance) -> Partition:
        """Read a partition file written by :meth:`write` (or an old ``{k, stages}`` file)."""
        from pipecert.partition_file import PartitionFile

        return PartitionFile.read(path).partition(instance)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Partition):
            return NotImplemented
        return self.k == other.k and bool(np.array_equal(self.stage_of, other.stage_of))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Partition(k={self.k}, n_nodes={self.stage_of.size}, used={self.n_nonempty})"


@dataclass(frozen=True, slots=True)
class StageCosts:
    """Per-stage breakdown of the cost model, one entry per listed stage.

    ``total = work + comm_in + comm_out``; the partition's value is ``total.max()``.
    The entries are the stages of :meth:`Partition.stage_index`: all ``k`` stages unless
    ``k`` exceeds both ``n`` and :data:`FULL_LISTING_MAX_K`, else at most ``n`` of them
    (``stage_index`` says which; every stage not listed is empty and costs 0, which never
    changes the maximum since costs are >= 0).
    """

    work: NDArray[np.float64]
    comm_in: NDArray[np.float64]
    comm_out: NDArray[np.float64]
    total: NDArray[np.float64]
    memory: NDArray[np.float64] | None
    #: Number of stages of the partition (0: as many as listed).
    k: int = 0
    #: Stage of each entry; None when entry ``b`` is stage ``b``.
    stage_index: NDArray[np.int64] | None = None

    @property
    def stages(self) -> NDArray[np.int64]:
        """The stage index of every entry."""
        if self.stage_index is not None:
            return self.stage_index
        return np.arange(self.total.size, dtype=np.int64)

    @property
    def n_unlisted(self) -> int:
        """How many (empty) stages have no entry: ``k`` minus the entries."""
        return max(0, self.k - self.total.size)

    @property
    def bottleneck(self) -> float:
        """The maximum stage cost (the objective)."""
        return float(self.total.max()) if self.total.size else 0.0

    @property
    def bottleneck_stage(self) -> int:
        """Index of the first stage attaining the bottleneck."""
        return int(self.stages[int(np.argmax(self.total))]) if self.total.size else 0


#: Every stage gets an entry in :func:`stage_costs` and :meth:`Partition.stages` while
#: ``k <= max(n, FULL_LISTING_MAX_K)``: a fixed cap of 65,536 entries (512 KiB per array)
#: keeps code that indexes stage costs by stage working for every practical ``k``; a larger
#: ``k`` above ``n`` lists at most ``n`` stages, so memory never grows with ``k``.
FULL_LISTING_MAX_K = 1 << 16


def _dense_length(n: int, k: int) -> int:
    """Entries of a dense listing: ``k``, or ``n`` when ``k`` exceeds ``n`` and the cap."""
    return k if k <= max(n, FULL_LISTING_MAX_K) else max(n, 1)


def _listed_stages(stage_of: NDArray[np.int64], k: int) -> NDArray[np.int64] | None:
    """None when entry ``b`` is stage ``b`` (the dense listing holds every used stage), else
    the sorted used stages (only when ``k`` exceeds both ``n`` and the cap)."""
    if stage_of.size == 0 or int(stage_of.max()) < _dense_length(stage_of.size, k):
        return None
    return np.unique(stage_of)


def _stage_vector(instance: Instance, partition: Partition) -> NDArray[np.int64]:
    s = partition.stage_of
    if s.size != instance.n_nodes:
        raise InputError(
            f"partition has {s.size} nodes, instance {instance.name!r} has {instance.n_nodes}"
        )
    if s.size and (s.min() < 0 or s.max() >= partition.k):
        raise InputError(f"partition uses a stage outside 0..{partition.k - 1}")
    return s


def stage_costs(instance: Instance, partition: Partition) -> StageCosts:
    """Compute ``f(S_b)`` and its parts for every stage ``b`` (vectorized, O(n + m log m)).

    Memory is O(n + m + 65,536) whatever ``k`` is: when ``k`` exceeds ``n`` and
    :data:`FULL_LISTING_MAX_K`, only the stages of :meth:`Partition.stage_index` are listed
    (the others are empty, cost 0, see :class:`StageCosts`). Every listed entry is exactly
    ``f(S_b)``.

    Parameters
    ----------
    instance : Instance
    partition : Partition
        Stage indices must lie in ``0..k-1``; feasibility of the order is *not* required
        (the cost of any node set is defined), use :func:`check_feasible` for that.

    Returns
    -------
    StageCosts
    """
    s = _stage_vector(instance, partition)
    index = _listed_stages(s, partition.k)
    if index is None:  # entry b is stage b
        k = _dense_length(s.size, partition.k)
        lab = s
    else:  # k > n and a stage >= n is used: list the used stages only
        lab = np.searchsorted(index, s).astype(np.int64)
        k = index.size

    def sums(labels: NDArray[np.int64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(np.bincount(labels, weights=weights, minlength=k), dtype=np.float64)

    work = sums(lab, instance.work)
    sv = lab[instance.dst]
    cross = lab[instance.src] != sv
    comm = instance.comm
    if cross.any():
        u = instance.src[cross]
        has_out = np.zeros(instance.n_nodes, dtype=bool)
        has_out[u] = True
        comm_out = sums(lab[has_out], comm[has_out])
        key = np.unique(u * k + sv[cross])  # k <= max(n, 2^16): no int64 overflow
        comm_in = sums(key % k, comm[key // k])
    else:
        comm_out = np.zeros(k)
        comm_in = np.zeros(k)
    mem = None if instance.memory is None else sums(lab, instance.memory)
    return StageCosts(work, comm_in, comm_out, work + comm_in + comm_out, mem,
                      partition.k, index)


def evaluate(instance: Instance, partition: Partition) -> float:
    """The objective: the bottleneck ``max_b f(S_b)`` (docs/theory/problem.md#feasibility).

    Examples
    --------
    >>> inst = Instance(["a", "b"], work=[1, 2], comm=[3, 0], edges=[("a", "b")])
    >>> evaluate(inst, Partition([0, 1], k=2))
    4.0
    """
    return stage_costs(instance, partition).bottleneck


def block_cost(instance: Instance, nodes: ArrayLike) -> float:
    """``f(S)`` for one node set, given as a boolean mask or an array of node indices."""
    a = np.asarray(nodes)
    if a.dtype == bool:
        if a.size != instance.n_nodes:
            raise InputError("mask length differs from the number of nodes")
        mask = a
    else:
        mask = np.zeros(instance.n_nodes, dtype=bool)
        mask[a.astype(np.int64)] = True
    in_u = mask[instance.src]
    in_v = mask[instance.dst]
    out_nodes = np.unique(instance.src[in_u & ~in_v])
    in_nodes = np.unique(instance.src[~in_u & in_v])
    return float(
        instance.work[mask].sum() + instance.comm[in_nodes].sum() + instance.comm[out_nodes].sum()
    )


class _FromInstance:
    def __repr__(self) -> str:
        return "<the instance's>"


#: Default of :func:`check_feasible`'s ``memory_limit``: the instance's own cap.
FROM_INSTANCE: Any = _FromInstance()


def check_feasible(
    instance: Instance,
    partition: Partition,
    *,
    k: int | None = None,
    memory_limit: float | None = FROM_INSTANCE,
    colocation: bool = True,
    max_reports: int = 20,
) -> list[str]:
    """Every reason why ``partition`` is not a feasible solution; empty if it is feasible.

    Checks that the partition covers exactly the instance's nodes, every stage index is in
    ``0..k-1`` (``k`` defaults to ``partition.k``; a larger ``partition.k`` than the asked
    ``k`` is fine as long as at most ``k`` stages are used), every ordering edge (ordering
    data edges and precedence edges; data-only edges impose no order) goes forward or stays
    inside a stage, every co-location group lies in one stage, and the memory of every
    stage is at most the cap (relative tolerance 1e-12).

    Parameters
    ----------
    memory_limit : float or None
        The cap to check; defaults to the instance's ``memory_limit`` (None: no check).
    colocation : bool
        Check the co-location groups (default True; False checks the relaxed problem).

    Examples
    --------
    >>> inst = Instance(["a", "b"], work=[1, 2], comm=[3, 0], edges=[("a", "b")])
    >>> check_feasible(inst, Partition([1, 0], k=2))
    ["edge 'a' -> 'b' goes backward (stage 1 -> 0)"]
    """
    problems: list[str] = []
    s = partition.stage_of
    if s.size != instance.n_nodes:
        return [f"partition has {s.size} nodes, instance has {instance.n_nodes}"]
    kk = partition.k if k is None else validate_k(k)
    bad = np.flatnonzero((s < 0) | (s >= partition.k))
    for i in bad[:max_reports]:
        problems.append(f"node {instance.ids[i]!r} has stage {int(s[i])} outside "
                        f"0..{partition.k - 1}")
    if bad.size:
        return problems
    used = np.unique(s)
    if used.size > kk:
        problems.append(f"{used.size} non-empty stages for k = {kk}")
    elif k is not None and partition.k > kk and used.max() >= kk:
        problems.append(f"stage index {int(used.max())} outside 0..{kk - 1}")
    orders = instance.edge_orders
    for srcs, dsts, what in (
        (instance.src[orders], instance.dst[orders], "edge"),
        (instance.prec_src, instance.prec_dst, "precedence edge"),
    ):
        back = np.flatnonzero(s[srcs] > s[dsts])
        for j in back[:max_reports]:
            u, v = int(srcs[j]), int(dsts[j])
            problems.append(
                f"{what} {instance.ids[u]!r} -> {instance.ids[v]!r} goes backward "
                f"(stage {int(s[u])} -> {int(s[v])})"
            )
        if back.size > max_reports:
            problems.append(f"... and {back.size - max_reports} more backward {what}s")
    if memory_limit is FROM_INSTANCE:
        memory_limit = instance.memory_limit if instance.memory is not None else None
    if memory_limit is not None:
        if instance.memory is None:
            problems.append("a memory limit was given but the instance has no memory data")
        else:
            mem = np.bincount(np.searchsorted(used, s), weights=instance.memory)  # O(n)
            for b in np.flatnonzero(mem > memory_limit * (1 + 1e-12)):
                problems.append(f"stage {int(used[b])} uses memory {mem[b]:g} > limit "
                                f"{memory_limit:g}")
    if colocation and instance.groups is not None:
        g = instance.groups
        has = g >= 0
        if has.any():
            gs = np.unique(np.stack([g[has], s[has]], axis=1), axis=0)
            groups, counts = np.unique(gs[:, 0], return_counts=True)
            for grp in groups[counts > 1][:max_reports]:
                problems.append(f"co-location group {int(grp)} is split across stages")
    return problems


def is_feasible(instance: Instance, partition: Partition, **kwargs: Any) -> bool:
    """``check_feasible(...) == []``."""
    return not check_feasible(instance, partition, **kwargs)
