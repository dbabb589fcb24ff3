"""The "bottleneck" relaxation (docs/theory/bounds.md#bottleneck): one block exact, rest lumped.

Model (code names in brackets)
------------------------------
Three ordered parts of V: A (the blocks before the would-be bottleneck B), B, and D (the
blocks after it), written as a 3-block :class:`~formulations.mip.chain.Chain` with
binaries ``P[v, 1] = a_v`` (v in A) and ``P[v, 2] = a_v + beta_v`` (v in A u B), so
``d_v = 1 - P[v, 2]``. For every data edge (u, v) and producer u with c(u) > 0:

    P[v, j] <= P[u, j]                                   (A down-closed, A u B down-closed)
    z1[u] >= P1[u] - P1[v]                    (gamma_u: u in cut(A))          [out1]
    y2[u] >= beta_v - beta_u ; z2[u] >= beta_u - P2[v]  (In(B), Out(B))       [in2, out2]
    y3[u] >= P2[u] - P2[v]                    (delta_u: u in cut(A u B))      [in3]
    (B1) w(B) + c.(y2 + z2) <= T                                              [B1]
    (B2) w(A) + c.z1 + w(D) + c.y3 <= (k - 1) T                               [B2]
    minimize T

What it relaxes
---------------
The k - 1 blocks other than B are not modelled: only their total cost is bounded, by the
aggregation lemma (docs/theory/bounds.md; blocks before B cost at least w(A) + cut(A), the blocks
after it at least w(D) + cut(A u B)).

Why the value is a valid lower bound
------------------------------------
Take an optimal partition (S_1..S_k) and any index b; set A = S_1 u .. u S_{b-1}, B = S_b,
D = the rest and T = OPT. (B1) holds as f(S_b) <= OPT; (B2) is the sum of the two
aggregation inequalities, bounded by sum_{i != b} f(S_i) <= (k - 1) OPT. So the optimum is
<= OPT and so is any dual bound; it is reported with the safety margin of
:mod:`formulations.mip.base` taken off. It is >= W/k but not always >= max w, hence
the combinatorial floor (and ``comb_cut``). When k = 1 (and, in Guess(b), when b = 1 or
b = k) a side has no block: it is empty in the proof's partition, so its variables are
fixed to "not in this side" instead of writing the row "cost of the side <= 0 * T".

Constrained variants
--------------------
Built on :class:`~formulations.mip.chain.Chain`, which writes the order rows over the
ordering edges only, the charges over all data edges and the unit equalities of the
co-location groups (see there). Data-only edges: in the proof's partition a data-only edge
(u, v) may point from D or B back to A or B; its producer then pays In at v's block and Out
at its own, so the aggregation lemma still holds with the extra charges the chain writes
for A (In from later parts) and D (Out to earlier parts): for A = S_1 u .. u S_{b-1},
``sum_{i<b} f(S_i) >= w(A) + c({u in A with a successor outside A}) + c({u outside A with a
successor in A})``, each such u being in Out, respectively In, of a block of A, and a
producer is in A or not (counted once); symmetrically for D. Groups: A, B and D are unions
of the partition's blocks, so every unit lies in one part (the equalities hold).
Memory cap M (used, not modelled exactly: ``memory`` stays in ``relaxes``): B is one stage
(``mem(B) <= M``), A and D hold b-1 and k-b stages (``mem(A) <= (b-1) M``, ``mem(D) <= (k-b)
M``; in the bottleneck model ``mem(A u D) <= (k-1) M``), all true in the proof's partition,
scaled by M with the relative slack of the chain's memory rows.

Size
----
2n binaries, at most 4n charges, about 2m + 4m' + 2 rows (m' = edges from producers with
c > 0): independent of k.

References
----------
Archer, Fahrbach, Liu, Prabhu, ICML 2024 (the "bottleneck" formulation that accounts for
communication); the formulation itself is the reconstruction of docs/theory/bounds.md#bottleneck.
"""

from __future__ import annotations

import time

import numpy as np

from formulations.base import FORMULATIONS
from formulations.mip.base import MipFormulation, doubtful_infeasible, t_range
from formulations.mip.chain import Chain, ScaledCosts, complete_free_column
from formulations.mip.model import Block, Expr, MipModel, ModelBuilder
from pipecert.instance import Instance
from pipecert.partition import Partition, stage_costs
from pipecert.results import BoundResult, Budget, SolveContext, Status

__all__ = ["Bottleneck", "build_abd", "abd_warm_start"]


def build_abd(
    instance: Instance,
    costs: ScaledCosts,
    k: int,
    *,
    b: int | None,
    lo: float,
    hi: float,
    exact_b: bool = False,
    form: str = "cumulative",
) -> tuple[MipModel, Chain, Block]:
    """The A/B/D model: bottleneck (``b=None``) or Guess(b) (docs/theory/bounds.md#guess).

    With ``exact_b`` the In/Out charges of B are exact (docs/theory/bounds.md#guess) and
    ``T = f(B)``: the Guess2(b) model.
    """
    t0 = time.perf_counter()
    mb = ModelBuilder()
    chain = Chain(mb, instance, costs, 3, form=form)
    T = mb.add_block("T", (), lb=lo, ub=hi, cost=1.0, integer=costs.integer)
    f = chain.block_costs([1, 2, 3])
    if exact_b:
        mb.add_eq(f[1] - T.at(), 0.0, name="B_exact")
        _exact_charges(mb, chain)
    else:
        mb.add_le(f[1] - T.at(), 0.0, name="B1")
    mult_a, mult_d = (k - 1, k - 1) if b is None else (b - 1, k - b)
    if b is None and k >= 2:
        mb.add_le(f[0] + f[2] - T.at() * (k - 1), 0.0, name="B2")
    elif b is not None:
        if mult_a > 0:
            mb.add_le(f[0] - T.at() * mult_a, 0.0, name="G-A")
        if mult_d > 0:
            mb.add_le(f[2] - T.at() * mult_d, 0.0, name="G-D")
    # memory: B is one stage; A and D are unions of b-1 and k-b stages (A u D: k-1)
    chain.memory_rows([2])
    if b is None:
        load = chain.memory_load([1, 3])
        if load is not None and k >= 2:
            mb.add_le(load.sum(axis=0), chain.memory_rhs(float(k - 1)), name="memory_AD")
    else:
        parts = [(j, m) for j, m in ((1, mult_a), (3, mult_d)) if m > 0]
        chain.memory_rows([j for j, _ in parts], [float(m) for _, m in parts])
    model = mb.build(objective_integral=costs.integer)
    # A side with no block (b = 1, b = k, or k = 1) is empty: fix its variables instead of
    # writing "cost of the side <= 0 * T", a row feasible only at equality (HiGHS declared
    # such models infeasible). Valid: the proof's partition has A = S_1..S_{b-1} = {} when
    # b = 1 and D = S_{b+1}..S_k = {} when b = k.
    n = instance.n_nodes
    allv = np.arange(n)
    if mult_a == 0:
        _fix(model, chain.member(allv, 1), 0.0)
    if mult_d == 0:
        _fix(model, chain.member(allv, 3), 0.0)
    model.build_time_s = time.perf_counter() - t0
    return model, chain, T


def _fix(model: MipModel, membership: Expr, value: float) -> None:
    """Fix every node's membership of one part to ``value`` through column bounds.

    ``membership`` is ``chain.member(v, j)``: in the cumulative form ``P_j[v] - P_{j-1}[v]``
    with ``P_0 = 0``, ``P_3 = 1``; part 1 is ``P_1[v]`` (fix it to 0), part 3 is
    ``1 - P_2[v]`` (fix ``P_2[v]`` to 1); in the assign form it is ``x[v, j]`` itself.
    """
    cols, vals, const = membership.cols, membership.vals, membership.const
    for i in range(cols.shape[0]):
        live = (cols[i] >= 0) & (vals[i] != 0)
        if int(live.sum()) != 1:
            raise ValueError("a part membership must involve exactly one column")
        j = int(cols[i][live][0])
        a = float(vals[i][live][0])
        target = (value - float(const[i])) / a
        model.col_lb[j] = target
        model.col_ub[j] = target


def _exact_charges(mb: ModelBuilder, chain: Chain) -> None:
    """``y_u <= 1 - beta_u``, ``y_u <= sum_succ beta_v``, ``z_u <= beta_u``,
    ``z_u <= sum_succ (1 - beta_v)``: the charges of B become exact indicators."""
    prods = chain.producers
    if prods.size == 0 or 2 not in chain.y or 2 not in chain.z:
        return
    ar = np.arange(prods.size)
    y = Block("y2", 0, (prods.size,), chain.y[2].cols)
    z = Block("z2", 0, (prods.size,), chain.z[2].cols)
    beta_u = chain.member(prods, 2)
    mb.add_le(y.at(ar) + beta_u, 1.0, name="y_exact_self")
    mb.add_le(z.at(ar) - beta_u, 0.0, name="z_exact_self")
    es, ed = chain.e_src, chain.e_dst  # sorted by source
    first = np.searchsorted(es, prods)
    deg = np.diff(np.append(first, es.size))
    grp = chain.prod_pos[es]
    slot = np.arange(es.size) - first[grp]
    width = int(deg.max())
    V = np.zeros((prods.size, width), dtype=np.int64)
    M = np.zeros((prods.size, width))
    V[grp, slot] = ed
    M[grp, slot] = 1.0
    sum_beta = (chain.member(V, 2) * M).sum(axis=1)
    mb.add_le(y.at(ar) - sum_beta, 0.0, name="y_exact_succ")
    mb.add_le(z.at(ar) + sum_beta, deg.astype(np.float64), name="z_exact_succ")


def abd_warm_start(model: MipModel, chain: Chain, T: Block, stage_of: np.ndarray,
                   b: int) -> np.ndarray | None:
    """The point of the A/B/D model given by a partition with its b-th block as B."""
    s = np.asarray(stage_of, dtype=np.int64)
    lab = np.where(s < b - 1, 0, np.where(s == b - 1, 1, 2))
    x0 = np.zeros(model.n_vars)
    chain.set_labels(x0, lab)
    chain.complete_charges(x0)
    if not complete_free_column(model, x0, int(T.cols)):
        return None
    return x0


@FORMULATIONS.register
class Bottleneck(MipFormulation):
    """The bottleneck relaxation: block B exact, the other k-1 blocks aggregated."""

    name = "bottleneck"
    citation = "Archer et al., ICML 2024, Section 4 (docs/theory/bounds.md#bottleneck)"
    handles = frozenset({"groups", "data_only_edges"})
    relaxes = frozenset({"memory"})

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """Solve the relaxation within the budget; the bound is the safe dual bound."""
        costs = self.scaled_costs(instance)
        lo, hi = t_range(costs, k, context, comb_cut=self.comb_cut,
                         context_lb_cut=self.context_lb_cut, cutoff=self.cutoff)
        model, chain, T = build_abd(instance, costs, k, b=None, lo=lo, hi=hi, form=self.form)
        x0 = None
        part = context.partition if context is not None else None
        if self.warm_start and part is not None and usable(part, instance, k):
            b = stage_costs(instance, part).bottleneck_stage + 1
            x0 = abd_warm_start(model, chain, T, part.stage_of, b)
        rec, retry = self.solve_t_model(model, int(T.cols), costs, budget, warm_start=x0)
        stats = self.base_stats(model, rec, costs)
        stats.update(form=self.form, warm_started=x0 is not None)
        if retry:
            stats["retried"] = retry
        if rec.status is Status.INFEASIBLE:
            # T = OPT is feasible (module docstring): the solver's claim is numerics
            stats.update(doubtful_infeasible("bottleneck model", lo, hi))
            return BoundResult(None, Status.NO_SOLUTION, None, stats)
        return BoundResult(self.bound_of(rec, costs, model), rec.status, None, stats,
                           tuple(self.scaled_log(rec, costs, model)))


def usable(part: Partition, instance: Instance, k: int) -> bool:
    """Whether a context partition can seed a model with k blocks."""
    s = np.asarray(part.stage_of)
    return s.size == instance.n_nodes and (s.size == 0 or int(s.max()) < k)
