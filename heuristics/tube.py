"""Tube search: the exact down-set DP restricted to a tube around a partition (a VLNS).

Local moves change one node or one pair of stages at a time; when all ``k`` stages of a good
partition cost nearly the same, improving it needs every cut to shift a little at once.
The tube search finds the best partition in a neighbourhood that allows exactly that.

**The tube.** Let ``P`` be a feasible partition with stages ``0..m-1`` and prefix down-sets
``P_b = S_0 ∪ ... ∪ S_b``. For a down-set ``Q`` let ``hi(Q)`` be the largest stage of ``P``
with a node in ``Q`` (``-1`` if ``Q`` is empty) and ``lo(Q)`` the smallest stage of ``P``
with a node outside ``Q`` (``m`` if ``Q = V``). The tube of width ``w`` is

    T_w(P) = { Q down-set : hi(Q) <= lo(Q) + w },

the down-sets that differ from some prefix ``P_b`` only inside ``w + 1`` consecutive stages
of ``P``. It contains ``∅``, ``V`` and every ``P_b`` (``hi(P_b) = b``,
``lo(P_b) >= b + 1``).

**Why the restricted DP is exact on the tube.** The down-set DP
(:mod:`heuristics.downset_dp`) run on the lattice of ``T_w(P)`` (ideals enumerated from
``∅`` by adding one node at a time, keeping only members of the tube) returns the best
partition ``I_1 ⊆ ... ⊆ I_k = V`` with every ``I_b`` in the tube:

* *Every member is enumerated.* For ``Q`` in the tube take the chain
  ``∅ = P_{-1} ⊆ P_0 ⊆ ... ⊆ P_{j-1} ⊆ Q`` with ``j = lo(Q)``, each step filled in one node
  at a time in stage order, then topological order. The steps between ``P_{i-1}`` and
  ``P_i`` have ``hi <= i`` and ``lo >= i``; those between ``P_{j-1}`` and ``Q`` have
  ``lo >= j`` and ``hi <= hi(Q)``. All stay in the tube.
* *Block costs are exact.* For ``I' ⊆ I`` both in the tube, adding the nodes of
  ``I \\ I'`` in stage order, then topological order, gives down-sets ``J`` with
  ``hi(J) <= max(hi(I'), j)`` and ``lo(J) >= min(lo(I), j)`` (``j`` the stage being
  filled), hence ``J`` is in the tube; so the DP's lattice search from ``I'`` reaches ``I``
  (its incremental cost is a function of the set ``I \\ I'``, not of the path) and its
  pruning ``w(I \\ I') + c(In) >= U`` is monotone along that path.

The incumbent's own chain ``P_0 ⊆ ... ⊆ P_{m-1}`` lies in the tube, so the result is never
worse. Width 0 lets every cut move anywhere inside the two stages it separates, all cuts at
once; width 1 also lets a cut pass a whole stage, and holds every re-split of a pair of
adjacent stages (such a re-split replaces ``P_s`` by a down-set between
``P_{s-1}`` and ``P_{s+1}``, which has ``hi <= s + 1 <= lo + 1``). A tube that leaves no
down-set out is the whole lattice: the DP is then the exact one and its result optimal.

:func:`tube_search` re-centres the tube on each improvement until none is found (a partition
optimal in its own tube), then widens it by one up to ``max_width``; it stops early when the
budget ends or a tube has more than ``max_ideals`` down-sets.

**Constrained instances** (co-location groups, the memory cap, data-only edges: ``handles``
all three). Everything above holds with *units* in place of nodes and ideals of the unit
DAG in place of down-sets (:mod:`heuristics.downset_dp`): ``P`` is feasible, so each unit
lies in one stage of ``P`` and ``hi``/``lo`` are taken over units; the two chains above are
built one unit at a time in stage order, then in a topological order of the unit DAG, so
they stay in the tube. The DP over the tube charges every block with the reference cost
over all data edges and excludes blocks over the memory cap; the memory of ``J \\ I'``
along the chain from ``I'`` to ``I`` is at most that of ``I \\ I'`` (memory is
non-negative), so a feasible block is never cut off by the DP's memory pruning. Hence the
result is the best feasible partition (groups whole, stages ordered along ordering edges
only, every stage within the cap) whose prefix ideals all lie in ``T_w(P)``: optimal in
the tube, never worse than ``P``, and optimal outright when the tube leaves no ideal out.

The search runs on the instance reduced by the exact reductions of
:mod:`heuristics.downset_dp` (rules 1-4 then A-B on the paper's problem, A-B on a
constrained one), after moving every removed or merged node beside its host (which the
reductions' exchanges show never raises a stage's cost and keeps the partition feasible);
every result is lifted back, re-scored by the reference cost function and checked for
feasibility, and kept only if it is strictly better. :class:`TubeSearch` starts from its
base heuristic's partition when the base handles the instance's constraints and that
partition is feasible, and on a constrained instance from the better of it and the
unit-order slicing (:func:`heuristics.downset_dp.slice_units`).

:class:`TubeSearch` is an improvement step (:class:`heuristics.base.Improver`): given an
incumbent partition in the run context it improves that one (the portfolio of
``pipecert solve`` runs it on its best partition).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from heuristics.base import HEURISTICS, Improver, run_base
from heuristics.downset_dp import downset_solve, reductions, slice_units
from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["tube_search", "TubeSearch"]


def _compact(stage: np.ndarray) -> np.ndarray:
    """Renumber the used stages ``0..m-1`` in order (empty stages dropped)."""
    used = np.unique(stage)
    remap = np.full(int(stage.max()) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return remap[stage]


def tube_search(
    instance: Instance,
    partition: Partition,
    k: int,
    budget: Budget | None = None,
    *,
    width: int = 1,
    max_width: int | None = None,
    max_ideals: int = 100_000,
    max_rounds: int = 100,
    max_bytes: float = 256e6,
) -> tuple[Partition, dict[str, Any]]:
    """Improve ``partition`` by exact DPs over its tube until it is optimal in its tube.

    Parameters
    ----------
    instance : Instance
    partition : Partition
        A feasible partition into at most ``k`` stages.
    k : int
    budget : Budget, optional
    width : int
        Tube width ``w`` (module docstring); the tube grows quickly with ``w``.
    max_width : int, optional
        When the partition is optimal in its tube of width ``w < max_width``, go on with
        width ``w + 1`` (a larger tube contains the smaller one). Default: ``width``.
    max_ideals : int
        Stop (keeping the best partition so far) when a tube has more down-sets.
    max_rounds : int
        Cap on DPs (over all widths).
    max_bytes : float
        Memory cap of one DP, about ``ideals * (n / 8 + 12 (k + 1))`` bytes; lowers
        ``max_ideals`` on large graphs.

    Returns
    -------
    (Partition, dict)
        The best partition found (never worse than ``partition``) and stats ``tube_rounds``,
        ``tube_before``, ``tube_after``, ``tube_ideals`` (largest tube), ``tube_width``
        (last width), ``tube_width_done`` (largest width whose tube the result is optimal
        in, -1 if none), ``tube_optimal`` (the tube held every down-set, so the result is
        optimal), ``tube_stop`` (why it stopped), ``tube_time_s``.
    """
    t0 = time.perf_counter()
    budget = budget if budget is not None else Budget()
    before = evaluate(instance, partition)
    stats: dict[str, Any] = {"tube_before": before, "tube_rounds": 0, "tube_ideals": 0,
                             "tube_width_done": -1}
    red, lift, normalize = reductions(instance, k)
    best, best_val = partition, before
    # put every removed or merged node with its host (never worse, by the reductions'
    # exchanges)
    norm = normalize(partition)
    lifted = None if norm is None else lift(norm.stage_of)
    if lifted is not None and evaluate(instance, lifted) <= best_val \
            and not check_feasible(instance, lifted, k=k):
        best, best_val = lifted, evaluate(instance, lifted)
        cur = norm.stage_of  # type: ignore[union-attr]
    else:  # not expected; search from the input as given on the full instance
        red = instance

        def lift(st: np.ndarray) -> Partition:
            return Partition(st, k)

        cur = partition.stage_of
    cur_val = evaluate(red, Partition(cur, k))
    cap = max(1, min(max_ideals, int(max_bytes / (red.n_nodes / 8 + 12 * (k + 1)))))
    last_width = width if max_width is None else max(width, max_width)
    w = width
    stop = "max_rounds"
    for _ in range(max_rounds):
        if budget.expired():
            stop = "budget"
            break
        tube = _compact(np.asarray(cur, dtype=np.int64))
        status, part, st = downset_solve(red, k, budget, max_ideals=cap,
                                         upper=(cur_val, Partition(tube, k)),
                                         tube=(tube, w))
        stats["tube_rounds"] += 1
        stats["tube_ideals"] = max(stats["tube_ideals"], int(st.get("n_ideals", 0)))
        stats["tube_width"] = w
        if status is not Status.OPTIMAL or part is None:
            stop = f"width {w}: " + str(st.get("reason", status))
            break
        whole = st.get("tube_left_out") == 0
        val = evaluate(red, part)
        improved = val < cur_val
        if improved:
            cur, cur_val = part.stage_of, val
            lifted = lift(part.stage_of)
            lval = evaluate(instance, lifted)
            if lval < best_val and not check_feasible(instance, lifted, k=k):
                best, best_val = lifted, lval
        if whole:  # every down-set was in the tube: the DP was the full exact DP
            stop = "optimal (the tube was the whole down-set lattice)"
            stats["tube_optimal"] = True
            stats["tube_width_done"] = red.n_nodes
            break
        if not improved:
            stats["tube_width_done"] = w
            if w < last_width:
                w += 1
                continue
            stop = f"optimal in its tube of width {w}"
            break
    stats.update(tube_after=best_val, tube_stop=stop, tube_time_s=time.perf_counter() - t0)
    return best, stats


@HEURISTICS.register
class TubeSearch(Improver):
    """Improve the incumbent partition by :func:`tube_search` (exact DPs over its tube).

    The partition improved is the run context's incumbent (``context.partition``);
    without one, the partition of ``base`` (default ``brkga-100``). See
    :class:`heuristics.base.Improver`.

    Parameters
    ----------
    base : str, optional
        Method spec of a starting heuristic, e.g. ``"brkga-100"``: when set it always runs
        (on half of a finite budget) and its partition is improved, the incumbent ignored.
    width, max_width : int
        First and last tube width (0: every cut moves within its two neighbouring stages,
        all at once; each step up also lets a cut pass one more whole stage).
    max_ideals : int
        Largest tube searched.
    """

    name = "tube"
    citation = "pipecert (down-set DP restricted to a tube around a partition)"
    handles = frozenset({"groups", "memory", "data_only_edges"})
    start: ClassVar[str] = "brkga-100"
    base_share: ClassVar[float] = 0.5

    def __init__(self, *, base: str | None = None, width: int = 1, max_width: int = 3,
                 max_ideals: int = 100_000) -> None:
        self.base = base
        self.width = width
        self.max_width = max_width
        self.max_ideals = max_ideals

    def starting_partition(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> tuple[HeuristicResult, dict[str, Any]]:
        """The incumbent (:meth:`Improver.starting_partition`), else a starting heuristic's.

        Without an incumbent (or with ``base`` set), the start is ``base``'s partition (if
        the base handles the instance's constraints and its partition is feasible) and, on
        a constrained instance, the better of it and the unit-order slicing
        (:func:`heuristics.downset_dp.slice_units`).
        """
        if self.base is None and context is not None and context.partition is not None:
            return super().starting_partition(instance, k, budget, rng, context)
        spec = self.start if self.base is None else self.base
        inner = HEURISTICS.make(spec)
        start: Partition | None = None
        history: tuple[tuple[float, int, float], ...] = ()
        status = Status.FEASIBLE
        if inner.supports_variant(instance)[0]:
            res, stats = run_base(self, spec, instance, k, budget, rng, context,
                                  self.base_share)
            history, status = res.history, res.status
            if res.partition is not None and not check_feasible(instance, res.partition, k=k):
                start = res.partition
        else:
            stats = {"base": inner.method_id(),
                     "base_skipped": "the base does not handle the instance's constraints"}
        if instance.constraints:
            sliced = slice_units(instance, k, budget=budget)
            if sliced is not None and (start is None
                                       or sliced[0] < evaluate(instance, start)):
                start = sliced[1]
                stats["start"] = "unit-order slicing"
        if start is None:
            stats["reason"] = ("no feasible starting partition (the base gave none and no "
                               "split of a unit order fits the memory cap)")
            return HeuristicResult(None, Status.NO_SOLUTION if status is Status.FEASIBLE
                                   else status, stats, history), stats
        return HeuristicResult(start, status, stats, history), stats

    def improve(
        self,
        instance: Instance,
        k: int,
        partition: Partition,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> tuple[Partition, Status, dict[str, Any]]:
        """:func:`tube_search` from ``partition``; ``optimal`` when the last DP ran over
        every ideal (stats ``tube_*``)."""
        part, st = tube_search(instance, partition, k, budget, width=self.width,
                               max_width=self.max_width, max_ideals=self.max_ideals)
        return part, Status.OPTIMAL if st.get("tube_optimal") else Status.FEASIBLE, st
