"""The exact MIP of the paper's Figure 3 (docs/theory/bounds.md#exact-mip), solved for its bound.

Model (code names in brackets; blocks are numbered j = 1..k)
-------------------------------------------------------------
Variables: binaries ``P[v, j]`` (``Chain.var``), v in the prefix S_1 u ... u S_j, for
j = 1..k-1 (the cumulative form; ``form="assign"`` uses Figure 3's ``x[v, b]`` instead);
charges ``y[u, j]`` (``in<j>`` blocks), ``z[u, j]`` (``out<j>``) in [0, 1] for producers u with
``c(u) > 0``; ``T >= 0`` (``T``).

    minimize T
    s.t. P[v, j-1] <= P[v, j]                              (chain: prefixes are nested)
         P[v, j] <= P[u, j]       for every edge (u, v)    (order: edges go forward; Fig. 3 (2))
         y[u, j] >= x[v, j] - x[u, j]                      (u in In(S_j); Fig. 3 (3))
         z[u, j] >= x[u, j] - P_j[v]                       (u in Out(S_j); Fig. 3 (4), tightened)
         sum_v w_v x[v, j] + sum_u c_u (y[u, j] + z[u, j]) <= T   (block_cost; Fig. 3 (5))

with ``x[v, j] = P_j[v] - P_{j-1}[v]``, ``P_0 = 0``, ``P_k = 1``.

Constrained variants (all handled exactly, see :mod:`formulations.mip.chain`): the order
rows run over the ordering edges only and the charges over all data edges (a data-only
edge may point to an earlier block: its out-charge uses Figure 3's ``x[u, j] - x[v, j]``,
and blocks 1 and k get the in / out charges only such edges can cause); every member of a
unit (co-location group, closed under the order) shares the block variables of its first
member; and each block has the memory row ``sum_v mem(v)/M x[v, j] <= 1 + 1e-9`` (scaled by
the cap ``M``). At integer points these rows describe exactly the partitions that are
feasible for the constrained problem, with ``y``, ``z`` the In/Out indicators over all data
edges, so the optimum is the constrained OPT.

Blocks: ``K = min(k, number of units)`` (the framework already caps k at n). A feasible
partition has at most as many non-empty stages as units (each stage holds whole units);
compacted (empty stages moved to the end, keeping the order of the others) it is still
feasible with the same stage costs (every block keeps its node set; ordering edges still go
forward; data-only edges order nothing) and uses only the first K blocks. So
``OPT(k) = OPT(K)`` and the K-block model is exact for k; a partition it finds is declared
for k stages.

Options (docs/theory/bounds.md#exact-mip strengthenings, all valid):

* ``comb_cut``: ``T >= LB_comb``; ``context_lb_cut``: ``T >= context.lower_bound`` (on by
  default: a proven bound never cuts off an optimum);
* ``cutoff``: ``T <= context.upper_bound``; ``warm_start``: ``context.partition`` as the
  first incumbent;
* ``prefix_cuts``: with ``o[u, j] >= P_j[u] - P_j[v]`` on every data edge (u, v) (and
  ``o[u, j] >= P_j[v] - P_j[u]`` on every data-only edge),
  ``j T >= w(P_j) + c o_j`` and ``(k - j) T >= W - w(P_j) + c o_j`` for j = 1..k-1
  (the aggregation lemma of docs/theory/bounds.md#aggregation-lemma);
* ``symmetry``: used-block indicators ``e_j`` (binary) with ``x[v, j] <= e_j``,
  ``e_j >= e_{j+1}``, ``sum_v x[v, j] >= e_j`` (empty blocks can always move to the end).

What it relaxes
---------------
Nothing: at integer points the constraints describe exactly the feasible ordered partitions
(docs/theory/problem.md) and the smallest feasible y, z are the In/Out indicators, so the
optimum is OPT. A time-limited run reports the solver's global dual bound.

Why the value is a valid lower bound
------------------------------------
Every feasible partition gives a feasible point with ``T`` = its bottleneck, so the
optimum is ``<= OPT`` (equal, in fact), and the solver's dual bound is ``<=`` the optimum.
With the options, take an optimal partition (S_1..S_k) -- possibly with empty blocks, and
k >= n allowed -- and first *compact* it: move its empty blocks to the end, keeping the
order of the others. Every edge still goes forward (the relative order of non-empty blocks
is unchanged) and every block keeps its node set, so the block costs, hence the bottleneck
OPT, are unchanged. At this point, with ``T = OPT``:

* symmetry: set ``e_j = 1`` iff S_j is non-empty. ``x[v, j] <= e_j`` (a node lies in a
  non-empty block), ``e`` is non-increasing (empty blocks are last), and
  ``sum_v x[v, j] >= e_j`` (a used block holds a node). Ties and zero costs play no part:
  the rows only speak about membership.
* prefix cuts, for each j in 1..k-1 and P_j = S_1 u .. u S_j: set ``o[u, j] = 1`` iff the
  producer u is in P_j and has a data successor outside it (``o >= P_j[u] - P_j[v]``).
  Such a u lies in some S_i, i <= j, and its successor lies outside S_i, so u is in
  Out(S_i): ``sum_{i<=j} f(S_i) >= w(P_j) + sum_u c(u) o[u, j]``, and the left side is at
  most ``j OPT``. The successor lies in some S_i, i > j, which does not contain u, so u is
  in In(S_i): ``sum_{i>j} f(S_i) >= W - w(P_j) + sum_u c(u) o[u, j]``, and the left
  side is at most ``(k - j) OPT``.
  Empty blocks (k >= n, or blocks a compacted partition left empty) cost 0 and keep both
  sums valid; a zero-cost node changes nothing.
  A data-only edge (u, v) may also cut P_j backwards: v in P_j, u outside it. Then
  ``o[u, j] = 1`` is still paid on both sides: v lies in some S_i, i <= j, without u, so u
  is in In(S_i); u lies in some S_i, i > j, with a successor outside it, so u is in
  Out(S_i). A producer is either in P_j or not, so it is counted once per side.
* groups, memory: compaction keeps every block's node set, so every block still holds whole
  units and meets the cap; the rows above speak only about membership and block costs.
  Data-only edges impose no order, so moving empty blocks breaks nothing.

So the point is feasible with ``T = OPT`` and the optimum stays ``<= OPT``. The fuzz
failures once blamed on these rows (``case386``: 0.999999 for OPT = 2e-9; ``case1576``:
4.99999 for OPT = 4.000000002) were solver tolerance: with costs scaled so that the largest
is about 1000, those optima are about 1e-15 and 4e-6 in model units, below HiGHS's 1e-6
tolerances; the safety margin of :mod:`formulations.mip.base` now covers them.
The bound is unscaled and reduced by that margin.

Size
----
``n (k-1)`` binaries, at most ``2 n k`` charges, about ``m (k-1) + n (k-2) + 2 m' k + k``
rows (m' = edges from producers with c > 0); ``form="assign"``: ``n k`` binaries and
``O(m k^2)`` non-zeros in the order rows.

References
----------
Archer, Fahrbach, Liu, Prabhu. Practical Performance Guarantees for Pipelined DNN Inference.
ICML 2024, Figure 3 (variables x_vb); Tarnawski et al., NeurIPS 2020 (the load model).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from formulations.base import FORMULATIONS
from formulations.mip.base import MipFormulation, doubtful_infeasible, t_range
from formulations.mip.chain import Chain, complete_free_column
from formulations.mip.model import ModelBuilder
from pipecert.instance import Instance
from pipecert.partition import Partition
from pipecert.results import BoundResult, Budget, SolveContext, Status

__all__ = ["ExactMip"]


@FORMULATIONS.register
class ExactMip(MipFormulation):
    """Figure 3: the exact MIP over k ordered blocks; reports its dual bound."""

    name = "exact_mip"
    citation = "Archer et al., ICML 2024, Figure 3 (docs/theory/bounds.md#exact-mip)"
    exact = True
    handles = frozenset({"groups", "memory", "data_only_edges"})
    relaxes = frozenset()

    def __init__(self, *, prefix_cuts: bool = False, symmetry: bool = False,
                 **shared: Any) -> None:
        super().__init__(**shared)
        self.prefix_cuts = prefix_cuts
        self.symmetry = symmetry

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """Solve Figure 3 within the budget; the bound is the safe dual bound."""
        t0 = time.perf_counter()
        k_req = k
        k = min(k, instance.n_units)  # OPT(k) = OPT(min(k, #units)): module docstring
        costs = self.scaled_costs(instance)
        lo, hi = t_range(costs, k, context, comb_cut=self.comb_cut,
                         context_lb_cut=self.context_lb_cut, cutoff=self.cutoff)
        mb = ModelBuilder()
        chain = Chain(mb, instance, costs, k, form=self.form)
        T = mb.add_block("T", (), lb=lo, ub=hi, cost=1.0, integer=costs.integer)
        blocks = list(range(1, k + 1))
        f = chain.block_costs(blocks)
        mb.add_le(f - T.at(), 0.0, name="block_cost")
        chain.memory_rows(blocks)
        n = instance.n_nodes
        if self.prefix_cuts and k >= 2:
            levels = np.arange(1, k)
            o = None
            if chain.producers.size:
                o = mb.add_block("o", (chain.producers.size, k - 1))
                u, v = chain.e_src[:, None], chain.e_dst[:, None]
                rhs = chain.prefix(u, levels[None, :]) - chain.prefix(v, levels[None, :])
                pu = np.broadcast_to(chain.prod_pos[chain.e_src][:, None], rhs.shape)
                jj = np.broadcast_to(np.arange(k - 1)[None, :], rhs.shape)
                mb.add_ge(o.at(pu, jj) - rhs, 0.0, name="prefix_o")
                chain._charges.append((o, rhs, o.cols[pu, jj]))
                back = ~chain.e_orders  # data-only edges also cut P_j backwards
                if back.any():
                    ub_, vb_ = chain.e_src[back][:, None], chain.e_dst[back][:, None]
                    rb = chain.prefix(vb_, levels[None, :]) - chain.prefix(ub_, levels[None, :])
                    pb = np.broadcast_to(chain.prod_pos[ub_[:, 0]][:, None], rb.shape)
                    jb = np.broadcast_to(np.arange(k - 1)[None, :], rb.shape)
                    mb.add_ge(o.at(pb, jb) - rb, 0.0, name="prefix_o_back")
                    chain._charges.append((o, rb, o.cols[pb, jb]))
            wP = (chain.prefix(np.arange(n)[None, :], levels[:, None])
                  * costs.w[None, :]).sum(axis=1)
            cut = wP
            if o is not None:
                cp = costs.c[chain.producers]
                cut_c = (o.at(np.arange(chain.producers.size)[None, :],
                              np.arange(k - 1)[:, None]) * cp[None, :]).sum(axis=1)
                cut = wP + cut_c
                rest = cut_c - wP + float(costs.w.sum())
            else:
                rest = -wP + float(costs.w.sum())
            mb.add_le(cut - T.at() * levels, 0.0, name="prefix_cut_before")
            mb.add_le(rest - T.at() * (k - levels), 0.0, name="prefix_cut_after")
        e = None
        if self.symmetry and k >= 2:
            e = mb.add_block("e", (k,), integer=True)
            jj = np.arange(1, k + 1)
            mem = chain.member(np.arange(n)[:, None], jj[None, :])
            mb.add_le(mem - e.at(np.broadcast_to(jj[None, :] - 1, mem.shape)), 0.0,
                      name="sym_used")
            mb.add_ge(e.at(np.arange(k - 1)) - e.at(np.arange(1, k)), 0.0, name="sym_order")
            mb.add_ge(mem.sum(axis=0) - e.expr(), 0.0, name="sym_nonempty")
        model = mb.build(objective_integral=costs.integer)
        model.build_time_s = time.perf_counter() - t0

        x0 = None
        ctx = context or SolveContext()
        if self.warm_start and ctx.partition is not None:
            part = ctx.partition.compact() if (self.symmetry or k < k_req) else ctx.partition
            lab = np.asarray(part.stage_of, dtype=np.int64)
            if lab.size == n and (lab.size == 0 or lab.max() < k):
                x0 = np.zeros(model.n_vars)
                x0[model.col_lb > 0] = model.col_lb[model.col_lb > 0]
                chain.set_labels(x0, lab)
                chain.complete_charges(x0)
                if e is not None:
                    used = np.zeros(k)
                    used[np.unique(lab)] = 1.0
                    x0[e.cols] = used
                if not complete_free_column(model, x0, int(T.cols)):
                    x0 = None

        rec, retry = self.solve_t_model(model, int(T.cols), costs, budget, warm_start=x0)
        stats = self.base_stats(model, rec, costs)
        stats.update(form=self.form, warm_started=x0 is not None, blocks=k)
        if retry:
            stats["retried"] = retry
        if rec.status is Status.INFEASIBLE:
            # T = OPT with an optimal partition is feasible: the claim is numerics, or (with
            # a memory cap) no partition meets the cap, which a float solver does not prove
            stats.update(doubtful_infeasible("exact_mip model", lo, hi))
            if "memory" in instance.constraints:
                stats["reason"] = ("the solver reports no partition into k blocks within the "
                                   "memory cap (a floating-point claim, not a proof)")
            return BoundResult(None, Status.NO_SOLUTION, None, stats)
        partition = Partition(chain.labels(rec.x), k_req) if rec.x is not None else None
        bound = self.bound_of(rec, costs, model)
        return BoundResult(bound, rec.status, partition, stats,
                           tuple(self.scaled_log(rec, costs, model)))
