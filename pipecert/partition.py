"""Partitions and the one reference cost function of pipecert (spec §2.3, §2.4).

Every number pipecert reports as the value of a partition comes from :func:`evaluate` (or
:func:`stage_costs`, which it is built on). Methods never grade themselves.

The block cost of a node set ``S`` is::

    f(S) = sum_{v in S} w(v) + sum_{u in In(S)} c(u) + sum_{u in Out(S)} c(u)

with ``In(S)`` the producers outside ``S`` with a data successor in ``S`` and ``Out(S)`` the
producers in ``S`` with a data successor outside ``S``. Each producer is charged at most once
per block on each side; precedence-only edges are never charged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from pipecert.errors import FormatError, InputError
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

    def stages(self, instance: Instance | None = None) -> list[list[Any]]:
        """Node lists per stage (ids if ``instance`` is given, else indices), in node order."""
        order = np.argsort(self.stage_of, kind="stable")
        counts = np.bincount(self.stage_of, minlength=self.k)
        out: list[list[Any]] = []
        pos = 0
        for b in range(self.k):
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
        used = np.unique(self.stage_of)
        remap = np.zeros(max(self.k, int(used.max()) + 1), dtype=np.int64)
        remap[used] = np.arange(used.size)
        return Partition(remap[self.stage_of], self.k)

    def with_k(self, k: int) -> Partition:
        """The same stages, declared for ``k`` stages (must hold every used index)."""
        return Partition(self.stage_of, k)

    # ------------------------------------------------------------------ files
    def to_json(self, instance: Instance) -> dict[str, Any]:
        """``{"k": K, "stages": [[node id, ...], ...]}`` (the partition file format)."""
        return {"k": self.k, "stages": self.stages(instance)}

    def write(self, path: str | Path, instance: Instance) -> None:
        """Write the partition file (JSON, see :meth:`to_json`)."""
        Path(path).write_text(json.dumps(self.to_json(instance), indent=1) + "\n")

    @classmethod
    def from_json(
        cls, data: Any, instance: Instance, *, source: str | None = None
    ) -> Partition:
        """Parse the partition file format; errors name ``source``."""
        if not isinstance(data, dict) or "stages" not in data:
            raise FormatError('a partition file must be {"k": K, "stages": [[...], ...]}',
                              source=source)
        stages = data["stages"]
        if not isinstance(stages, list) or not all(isinstance(s, list) for s in stages):
            raise FormatError('"stages" must be a list of lists of node ids', source=source)
        k = data.get("k")
        try:
            if k is not None:
                k = validate_k(k)
            return cls.from_stages(instance, stages, k)
        except InputError as exc:
            raise FormatError(exc.problem, source=source) from None

    @classmethod
    def read(cls, path: str | Path, instance: Instance) -> Partition:
        """Read a partition file written by :meth:`write`."""
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as exc:
            raise InputError(f"cannot read partition file ({exc.strerror})", source=str(p)) \
                from None
        except json.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON: {exc.msg}", source=str(p), line=exc.lineno) \
                from None
        return cls.from_json(data, instance, source=str(p))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Partition):
            return NotImplemented
        return self.k == other.k and bool(np.array_equal(self.stage_of, other.stage_of))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Partition(k={self.k}, n_nodes={self.stage_of.size}, used={self.n_nonempty})"


@dataclass(frozen=True, slots=True)
class StageCosts:
    """Per-stage breakdown of the cost model: arrays of length ``k``.

    ``total = work + comm_in + comm_out``; the partition's value is ``total.max()``.
    """

    work: NDArray[np.float64]
    comm_in: NDArray[np.float64]
    comm_out: NDArray[np.float64]
    total: NDArray[np.float64]
    memory: NDArray[np.float64] | None

    @property
    def bottleneck(self) -> float:
        """The maximum stage cost (the objective)."""
        return float(self.total.max())

    @property
    def bottleneck_stage(self) -> int:
        """Index of the first stage attaining the bottleneck."""
        return int(np.argmax(self.total))


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
    k = partition.k
    work = np.bincount(s, weights=instance.work, minlength=k)
    su = s[instance.src]
    sv = s[instance.dst]
    cross = su != sv
    comm = instance.comm
    if cross.any():
        u = instance.src[cross]
        has_out = np.zeros(instance.n_nodes, dtype=bool)
        has_out[u] = True
        comm_out = np.bincount(s[has_out], weights=comm[has_out], minlength=k)
        key = np.unique(u * k + sv[cross])
        comm_in = np.bincount(key % k, weights=comm[key // k], minlength=k)
    else:
        comm_out = np.zeros(k)
        comm_in = np.zeros(k)
    mem = (
        None if instance.memory is None
        else np.bincount(s, weights=instance.memory, minlength=k)
    )
    return StageCosts(work, comm_in, comm_out, work + comm_in + comm_out, mem)


def evaluate(instance: Instance, partition: Partition) -> float:
    """The objective: the bottleneck ``max_b f(S_b)`` of a partition (spec §2.4).

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


def check_feasible(
    instance: Instance,
    partition: Partition,
    *,
    k: int | None = None,
    memory_limit: float | None = None,
    colocation: bool = False,
    max_reports: int = 20,
) -> list[str]:
    """Every reason why ``partition`` is not a feasible solution; empty if it is feasible.

    Checks that the partition covers exactly the instance's nodes, every stage index is in
    ``0..k-1`` (``k`` defaults to ``partition.k``; a larger ``partition.k`` than the asked
    ``k`` is fine as long as at most ``k`` stages are used), every data and precedence edge
    goes forward or stays inside a stage, and optionally the memory limit per stage and the
    co-location groups.

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
    for srcs, dsts, what in (
        (instance.src, instance.dst, "edge"),
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
    if memory_limit is not None:
        if instance.memory is None:
            problems.append("a memory limit was given but the instance has no memory data")
        else:
            mem = np.bincount(s, weights=instance.memory, minlength=partition.k)
            for b in np.flatnonzero(mem > memory_limit * (1 + 1e-12)):
                problems.append(f"stage {int(b)} uses memory {mem[b]:g} > limit {memory_limit:g}")
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
