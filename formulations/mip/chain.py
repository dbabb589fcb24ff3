"""The MTPP building block shared by every MIP: K ordered blocks of a DAG.

Variables (``form="cumulative"``, the default): binaries ``P[v, j]`` for levels
``j = 1..K-1``, ``P[v, j] = 1`` iff v lies in blocks ``1..j`` (the prefix ``P_j``). Constants
``P_0 = 0`` and ``P_K = 1`` close the chain. Rows:

* chain   ``P[v, j-1] <= P[v, j]``                     (n (K-2) rows)
* order   ``P[v, j] <= P[u, j]`` on every data or precedence edge ``(u, v)``  (m (K-1) rows)

so prefixes are down-closed and every edge goes forward. Block ``j`` is
``x[v, j] = P_j[v] - P_{j-1}[v]``.

``form="assign"`` is the plain Figure-3 form: binaries ``x[v, b]``, ``sum_b x[v, b] = 1`` and
``sum_{b'<=b} x[v, b'] <= sum_{b'<=b} x[u, b']`` (the same polytope, different branching).

Communication charges (continuous in [0, 1], one per producer ``u`` with ``c(u) > 0`` and a
data successor, per block). For every data edge ``(u, v)`` (ordering or data-only):

* out  ``z[u, j] >= P_j[u] - P_{j-1}[u] - P_j[v]``   (u in block j, v after it) on an
  *ordering* edge; in the assign form, and on every *data-only* edge,
  ``z[u, j] >= x[u, j] - x[v, j]`` (Figure 3). The cumulative row is tighter and equally
  exact at integer points on an ordering edge, because v is never before u there; a
  data-only edge may point to an earlier block (a gradient flowing back), where only the
  Figure-3 row charges ``u`` (u in block j, v in block i < j: ``x[u, j] - x[v, j] = 1``
  while ``P_j[u] - P_{j-1}[u] - P_j[v] = 0``).
* in   ``y[u, j] >= x[v, j] - x[u, j]``              (u outside block j, v in it).

At an integer point the smallest feasible ``y``, ``z`` are exactly the In/Out indicators
of docs/theory/problem.md#block-cost (all data edges), so ``block_costs()`` is ``f(S_j)``
at an optimum of any model that only bounds block costs from above. Over ordering edges no
producer outside block 1 feeds it and no producer of block K feeds a later block, so
without data-only edges no in-charge exists for block 1 and no out-charge for block K.
With data-only edges those two charges exist, written for the data-only edges only.

Constrained variants
--------------------
* Data-only edges: the order rows use the ordering edges only (``instance.all_src`` /
  ``all_dst``: ordering data edges and precedence edges), the charges every data edge
  (``instance.src`` / ``dst``), with the rows above.
* Co-location groups: every member of a *unit* (:attr:`pipecert.instance.Instance.unit_of`:
  nodes that must share a stage) gets the block variables of the unit's first member
  (``P[v, j] = P[r, j]``, or ``x[v, b] = x[r, b]``). Every feasible partition places a unit
  in one stage, so it satisfies these equalities; with them every integer point is a
  partition with whole units per block (exact). The equalities only relate columns with unit
  coefficients: a solver tolerance on them admits *more* points, never fewer.
* Memory cap ``M``: :meth:`Chain.memory_rows` writes ``sum_v (mem(v) / M) x[v, j] <= m_j
  (1 + MEMORY_SLACK)`` for a part made of ``m_j`` blocks (1 for a block). Scaled by the cap,
  every coefficient lies in ``[0, 1]`` (a unit above the cap is infeasible before any model
  is built) and the right side is about ``m_j``: the rows are equilibrated as built and do not
  contain ``T``, so they change none of the magnitudes of the safety-margin argument
  (:mod:`formulations.mip.base`), which speaks about the rows that bound ``T``. A
  coefficient below ``MEMORY_COEF_MIN`` is set to 0 and the right side carries the relative
  slack ``MEMORY_SLACK = 1e-9``: both only *relax* the rows. The slack covers the core's
  feasibility tolerance (a stage may exceed the cap by ``1e-12`` relative) and the rounding of
  the quotients and of the solver's sum (at most ``n 2^-52`` relative, below ``1e-9`` for
  ``n < 10^6``), so every feasible partition satisfies the rows as computed. A feasibility
  tolerance of the solver on these rows also only admits more points. Dropping rows or
  admitting more points only lowers the optimum, so a dual bound stays valid.
  Integer backends (CP-SAT needs integer coefficients): the row is multiplied by
  ``MEMORY_INT_SCALE = 2**20`` and every coefficient rounded *down*,
  ``floor(2**20 mem(v)/M (1 - 1e-12))`` (the factor absorbs the rounding of the float
  product), and the right side is ``floor(2**20 m_j (1 + MEMORY_SLACK))``. For a feasible
  partition the left side is an integer at most ``2**20 sum mem/M <= 2**20 m_j (1 + 1e-12)``,
  hence at most the floored right side: again a relaxation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from formulations.mip.model import Block, Expr, MipModel, ModelBuilder
from pipecert.instance import Instance
from pipecert.partition import Partition

__all__ = ["ScaledCosts", "Chain", "MEMORY_SLACK", "MEMORY_COEF_MIN", "MEMORY_INT_SCALE"]

#: Relative slack on the right side of a memory row (see the module docstring).
MEMORY_SLACK = 1e-9
#: Memory coefficients (memory over the cap) below this are dropped (a relaxation).
MEMORY_COEF_MIN = 1e-9
#: Scale of the memory rows for integer backends (coefficients floored after scaling).
MEMORY_INT_SCALE = float(2**20)


#: Bits of resolution kept below the largest scaled cost by the floating-point backends:
#: scaled costs (largest about 2**10) are floored to multiples of ``2**-FLOAT_GRID_BITS``
#: (see :class:`ScaledCosts`).
FLOAT_GRID_BITS = 20


@dataclass(frozen=True)
class ScaledCosts:
    """Costs multiplied by a power of two (exact in floating point), then floored to a grid.

    Float backends: ``w = q * floor(work * scale / q)`` with ``q = 2**-FLOAT_GRID_BITS``
    (about 1e-9 of the largest scaled cost, about 1000). Integer backends (CP-SAT, target
    1e6): ``q = 1``. Rounding *down* keeps every block cost of every partition at most its
    true scaled value, so any lower bound of the floored problem, divided by ``scale``, is a
    lower bound of the true one (OPT is non-decreasing in every cost: a block cost is a sum of
    costs with non-negative coefficients).

    Why a grid: a cost far below the largest one (1e-9 next to 1e9) becomes a coefficient
    the solver cannot represent (HiGHS drops matrix entries below 1e-9 and then disagrees
    with the row bounds that still contain them: it declared feasible models infeasible on
    ``case948``, ``case1130``, ``case96``). On the grid every non-zero coefficient is at least
    ``q`` and every sum of costs is exact (integers times ``q`` below 2**53), so row constants
    such as ``W`` are the exact sums of the coefficients. The loss is at most ``q`` per cost.

    ``upper_value`` is ``W + 2 sum c`` of the *unfloored* scaled costs, rounded up: no block
    cost of the true problem exceeds it, so ``T <= upper_value`` never cuts off ``T = OPT``.
    """

    w: NDArray[np.float64]
    c: NDArray[np.float64]
    scale: float
    integer: bool
    quantum: float = 0.0
    upper_value: float = float("inf")

    @classmethod
    def of(cls, instance: Instance, *, integer: bool = False,
           target: float | None = None, grid: bool = True) -> ScaledCosts:
        """Scale so that ``max(w, c)`` is about ``target`` (1000, or 1e6 for integer data).

        ``grid=False`` keeps the scaled costs unfloored (float backends only; used by tests
        that compare the model's block costs with the reference cost function exactly).
        """
        tgt = target if target is not None else (1e6 if integer else 1000.0)
        mx = max(float(instance.work.max(initial=0.0)), float(instance.comm.max(initial=0.0)))
        if mx <= 0 or not math.isfinite(mx):
            shift = 0
        else:
            # 2**shift * mx is about tgt; ldexp never overflows in between (subnormal mx)
            m, e = math.frexp(mx)
            shift = int(round(math.log2(tgt) - (math.log2(m) + e)))
            shift = max(-1022, min(shift, 1000))  # 2**shift stays a finite normal float
        w_raw = np.ldexp(np.asarray(instance.work, dtype=np.float64), shift)
        c_raw = np.ldexp(np.asarray(instance.comm, dtype=np.float64), shift)
        scale = math.ldexp(1.0, shift)
        if integer:
            q = 1.0
        elif grid:
            q = math.ldexp(1.0, -FLOAT_GRID_BITS) * (2.0 ** round(math.log2(tgt / 1000.0)))
        else:
            q = 0.0
        if q > 0:
            w, c = np.floor(w_raw / q) * q, np.floor(c_raw / q) * q
        else:
            w, c = w_raw, c_raw
        upper = float(w_raw.sum() + 2.0 * c_raw.sum())
        upper = upper * (1 + 1e-9) + q  # float sums: a relative error far below 1e-9
        return cls(w, c, scale, integer, q, upper)

    def lb_comb(self, k: int) -> float:
        """``max(W/k, max w)`` on these costs (valid for this scaled problem)."""
        v = max(float(self.w.sum()) / k, float(self.w.max(initial=0.0)))
        return float(np.ceil(v - 1e-9)) if self.integer else v

    def upper(self) -> float:
        """A value no block cost of the true (unfloored) problem exceeds: ``W + 2 sum c``."""
        if math.isfinite(self.upper_value):
            return self.upper_value
        return float(self.w.sum() + 2.0 * self.c.sum())


class Chain:
    """K ordered blocks of ``instance`` in a :class:`ModelBuilder` (see module docstring)."""

    def __init__(self, mb: ModelBuilder, instance: Instance, costs: ScaledCosts, K: int,
                 *, form: str = "cumulative", name: str = "P") -> None:
        if form not in ("cumulative", "assign"):
            raise ValueError(f"form must be 'cumulative' or 'assign', not {form!r}")
        self.mb = mb
        self.inst = instance
        self.costs = costs
        self.K = int(K)
        self.form = form
        n = instance.n_nodes
        self.n = n
        K = self.K
        if form == "cumulative":
            self.var = mb.add_block(name, (n, K - 1), integer=True)
            if K >= 3:
                v = np.arange(n)[:, None]
                j = np.arange(2, K)[None, :]
                mb.add_le(self.prefix(v, j - 1) - self.prefix(v, j), 0.0, name="chain")
        else:
            self.var = mb.add_block(name, (n, K), integer=True)
            mb.add_eq(self.var.expr().sum(axis=1), 1.0, name="assign")
        if K >= 2 and instance.all_src.size:
            u = instance.all_src[:, None]
            v = instance.all_dst[:, None]
            j = np.arange(1, K)[None, :]
            mb.add_le(self.prefix(v, j) - self.prefix(u, j), 0.0, name="order")
        if "groups" in instance.constraints and self.var.size:
            # every member of a unit gets the block variables of the unit's first member
            ptr, idx = instance.unit_members
            rep = idx[ptr[:-1]]
            unit = instance.unit_of[idx]
            others = idx[idx != rep[unit]]
            if others.size:
                reps = rep[instance.unit_of[others]]
                mb.add_eq(self.var.at(others) - self.var.at(reps), 0.0, name="unit")
        # producers that can be charged
        has_succ = np.zeros(n, dtype=bool)
        has_succ[instance.src] = True
        self.producers = np.flatnonzero(has_succ & (costs.c > 0))
        pos = np.full(n, -1, dtype=np.int64)
        pos[self.producers] = np.arange(self.producers.size)
        self.prod_pos = pos
        keep = pos[instance.src] >= 0
        self.e_src = instance.src[keep]
        self.e_dst = instance.dst[keep]
        #: per kept data edge: True if it orders stages (False: data-only)
        self.e_orders = np.asarray(instance.edge_orders, dtype=bool)[keep]
        self.data_only = not bool(self.e_orders.all())
        self._charges: list[tuple[Block, Expr, NDArray[np.int64]]] = []
        self.y: dict[int, Block] = {}
        self.z: dict[int, Block] = {}

    # ------------------------------------------------------------------ expressions
    def prefix(self, v: NDArray[np.int64] | int, j: NDArray[np.int64] | int) -> Expr:
        """``P_j[v]`` (``P_0 = 0``, ``P_K = 1``), vectorized over broadcast ``v``, ``j``."""
        vv, jj = np.broadcast_arrays(np.asarray(v, np.int64), np.asarray(j, np.int64))
        K = self.K
        if self.form == "cumulative":
            inner = (jj >= 1) & (jj <= K - 1)
            jc = np.clip(jj - 1, 0, max(K - 2, 0))
            cols = np.where(inner, self.var.cols[vv, jc] if K >= 2 else -1, -1)
            return Expr(cols[..., None], 1.0, (jj >= K).astype(np.float64))
        b = np.arange(K)
        cols = self.var.cols[vv[..., None], b]  # shape S + (K,)
        cols = np.where(b < jj[..., None], cols, -1)
        return Expr(cols, 1.0)

    def member(self, v: NDArray[np.int64] | int, j: NDArray[np.int64] | int) -> Expr:
        """``x[v, j]``: v lies in block j (1-based)."""
        if self.form == "assign":
            vv, jj = np.broadcast_arrays(np.asarray(v, np.int64), np.asarray(j, np.int64))
            return self.var.at(vv, jj - 1)
        return self.prefix(v, j) - self.prefix(v, np.asarray(j) - 1)

    def _charge(self, kind: str, blocks: list[int]) -> Block | None:
        store = self.y if kind == "in" else self.z
        edge = 1 if kind == "in" else self.K  # a block only data-only edges can charge
        blocks = [j for j in blocks if j not in store
                  and (j != edge or self.data_only) and 1 <= j <= self.K]
        if not blocks or self.producers.size == 0:
            return None
        J = np.asarray(blocks, dtype=np.int64)
        blk = self.mb.add_block(f"{kind}{'_'.join(map(str, blocks))}",
                                (self.producers.size, J.size))
        jall = np.arange(J.size)
        for orders in (True, False):
            sel = self.e_orders == orders
            jsel = jall if not orders else jall[J != edge]
            if not sel.any() or jsel.size == 0:
                continue
            u = self.e_src[sel][:, None]
            v = self.e_dst[sel][:, None]
            jj = J[jsel][None, :]
            if kind == "out":
                if self.form == "cumulative" and orders:
                    rhs = self.member(u, jj) - self.prefix(v, jj)
                else:
                    rhs = self.member(u, jj) - self.member(v, jj)
            else:
                rhs = self.member(v, jj) - self.member(u, jj)
            col = np.broadcast_to(self.prod_pos[u[:, 0]][:, None], rhs.shape)
            jcol = np.broadcast_to(jsel[None, :], rhs.shape)
            self.mb.add_ge(blk.at(col, jcol) - rhs, 0.0, name=f"{kind}_charge")
            self._charges.append((blk, rhs, blk.cols[col, jcol]))
        for i, j in enumerate(blocks):
            store[int(j)] = Block(blk.name, blk.start, (self.producers.size,), blk.cols[:, i])
        return blk

    def memory_rows(self, blocks: list[int], mult: list[float] | None = None,
                    *, name: str = "memory") -> None:
        """``sum_v mem(v)/M x[v, j] <= m_j (1 + MEMORY_SLACK)`` for each block j (1-based).

        ``mult[i]`` (default 1) is the number of stages block ``blocks[i]`` stands for (an
        aggregated part of ``m`` stages holds at most ``m M``). Nothing is written unless
        the memory cap is an active constraint of the instance (module docstring).
        """
        load = self.memory_load(blocks)
        if load is None:
            return
        m = np.ones(len(blocks)) if mult is None else np.asarray(mult, dtype=np.float64)
        self.mb.add_le(load, self.memory_rhs(m), name=name)

    def memory_rhs(self, parts: NDArray[np.float64] | float) -> NDArray[np.float64]:
        """Right side of a memory row for ``parts`` stages (see :meth:`memory_load`)."""
        rhs = np.asarray(parts, dtype=np.float64) * (1.0 + MEMORY_SLACK)
        if self.costs.integer:
            return np.floor(rhs * MEMORY_INT_SCALE)
        return rhs

    def memory_load(self, blocks: list[int]) -> Expr | None:
        """``sum_v mem(v)/M x[v, j]`` per block j (shape ``(len(blocks),)``), or None when
        the memory cap is not an active constraint. Coefficients below
        ``MEMORY_COEF_MIN`` are 0 (only ever used in ``<=`` rows: a relaxation)."""
        inst = self.inst
        if "memory" not in inst.constraints or not blocks:
            return None
        assert inst.memory is not None and inst.memory_limit is not None
        coef = np.asarray(inst.memory, dtype=np.float64) / float(inst.memory_limit)
        coef = np.where(coef >= MEMORY_COEF_MIN, coef, 0.0)
        if self.costs.integer:  # integer rows for CP-SAT, floored (module docstring)
            coef = np.floor(coef * MEMORY_INT_SCALE * (1.0 - 1e-12))
        J = np.asarray(blocks, dtype=np.int64)
        return (self.member(np.arange(self.n)[None, :], J[:, None]) * coef[None, :]).sum(axis=1)

    def block_costs(self, blocks: list[int]) -> Expr:
        """``f(S_j)`` for each requested block j (1-based), shape ``(len(blocks),)``.

        Creates the charge variables of those blocks on first use.
        """
        self._charge("in", blocks)
        self._charge("out", blocks)
        J = np.asarray(blocks, dtype=np.int64)
        w = self.costs.w
        work = (self.member(np.arange(self.n)[None, :], J[:, None]) * w[None, :]).sum(axis=1)
        total = work
        cp = self.costs.c[self.producers]
        for store in (self.y, self.z):
            present = [int(j) for j in J if int(j) in store]
            if not present:
                continue
            cols = np.full((J.size, self.producers.size), -1, dtype=np.int64)
            for i, j in enumerate(J.tolist()):
                if j in store:
                    cols[i] = store[j].cols
            total = total + Expr(cols, np.broadcast_to(cp, cols.shape))
        return total

    def work_of(self, j: int) -> Expr:
        """Work of block j (1-based)."""
        return (self.member(np.arange(self.n), j) * self.costs.w).sum(axis=0)

    # ------------------------------------------------------------------ solutions
    def labels(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        """0-based block index of every node at a (near-)integer solution ``x``."""
        vals = np.round(self.var.values(x)).astype(np.int64)
        if self.form == "assign":
            return np.argmax(vals, axis=1).astype(np.int64)
        return (self.K - 1 - vals.sum(axis=1)).astype(np.int64)

    def set_labels(self, x: NDArray[np.float64], labels: NDArray[np.int64]) -> None:
        """Write the block variables of ``labels`` (0-based) into ``x`` in place."""
        lab = np.asarray(labels, dtype=np.int64)
        if self.form == "assign":
            vals = (lab[:, None] == np.arange(self.K)[None, :]).astype(np.float64)
        else:
            vals = (lab[:, None] < np.arange(1, self.K)[None, :]).astype(np.float64)
        x[self.var.cols] = vals

    def complete_charges(self, x: NDArray[np.float64]) -> None:
        """Set every charge variable to its smallest feasible value given the blocks."""
        for blk, _, _ in self._charges:
            x[blk.cols] = 0.0
        for _blk, rhs, cols in self._charges:
            vals = rhs.value(x)
            np.maximum.at(x, cols.ravel(), np.clip(vals.ravel(), 0.0, 1.0))

    def partition(self, x: NDArray[np.float64], k: int) -> Partition:
        """The partition (k stages) encoded by ``x`` (for models whose K equals k)."""
        return Partition(self.labels(x), k)


def complete_free_column(model: MipModel, x: NDArray[np.float64], col: int) -> bool:
    """Set column ``col`` (e.g. T) to the smallest value satisfying every row; False if none.

    Rows ``lb <= a.x + a_T T <= ub`` give lower bounds on T from ``a_T > 0, lb`` and
    ``a_T < 0, ub``; the result is the largest, at least the column's lower bound.
    """
    x[col] = 0.0
    A = model.A
    rest = A @ x
    colv = A[:, [col]].toarray().ravel()
    nz = np.flatnonzero(colv)
    lows = [model.col_lb[col]]
    for r in nz.tolist():
        a = colv[r]
        if a > 0 and np.isfinite(model.row_lb[r]):
            lows.append((model.row_lb[r] - rest[r]) / a)
        if a < 0 and np.isfinite(model.row_ub[r]):
            lows.append((model.row_ub[r] - rest[r]) / a)
    t = float(max(lows))
    if model.integrality[col]:
        t = float(np.ceil(t - 1e-9))
    if t > model.col_ub[col] + 1e-9:
        return False
    x[col] = t
    return True
