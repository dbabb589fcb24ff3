"""Guess the bottleneck block (docs/theory/bounds.md#guess): the bottleneck relaxation by position.

Model (code names in brackets)
------------------------------
For a block index b in 1..k, Guess(b) is the A/B/D model of :mod:`formulations.bottleneck`
(``build_abd(..., b=b)``) with (B2) split by position:

    (B1)  w(B) + c.(y2 + z2) <= T                      [B1]
    (G-A) w(A) + c.z1 <= (b - 1) T                     (the b-1 blocks before B)   [G-A]
    (G-D) w(D) + c.y3 <= (k - b) T                     (the k-b blocks after B)    [G-D]
    minimize T

``variant="max"`` (default) reports ``max_b Guess(b)``. ``variant="min"`` reports
``min_b Guess2(b)``, where Guess2(b) makes the charges of B exact and sets ``T = f(B)``
(``build_abd(..., exact_b=True)``).

What it relaxes
---------------
Like the bottleneck relaxation, the blocks before and after B are only aggregated (by the
aggregation lemma), but each side gets its own budget of (b-1) T and (k-b) T.

Why the value is a valid lower bound
------------------------------------
Max variant: for *every* b, an optimal partition with A = S_1..S_{b-1}, B = S_b, D = the rest
and T = OPT satisfies (B1), (G-A), (G-D) (the aggregation lemma bounds each side by the sum
of its block costs, each <= OPT). So Guess(b) <= OPT for every b, any subset of b values
gives a valid max, and so does any dual bound. Each per-b value is checked against the best
known feasible value (a violation raises :class:`~pipecert.errors.InvalidBoundError`).
Adding ``T >= (best bound so far)`` to later b is exact for the max, as every constraint
stays feasible when T grows.
Min variant: only the true bottleneck index b* is guaranteed to have Guess2(b*) <= OPT, so
every b must be solved (or bounded) and the minimum of the dual bounds is reported. A b
whose Guess2(b) the solver calls infeasible is not trusted to be +inf (a floating-point
claim is no proof: HiGHS called the true bottleneck's model infeasible on ``case948``, k = 2,
and the minimum over the other b was above OPT); it is replaced by Guess(b), which drops
constraints of Guess2(b) and so is <= Guess2(b), and contains the optimal partition's
point (see the max variant). If that fails too, there is no bound.

Constrained variants: those of :mod:`formulations.bottleneck` (the same A/B/D model): order
over ordering edges only, charges over all data edges (the extra In of A and Out of D that
data-only edges cause), unit equalities for co-location groups, and the memory rows
``mem(B) <= M``, ``mem(A) <= (b-1) M``, ``mem(D) <= (k-b) M``, true in the proof's partition
for every b. Guess2(b)'s exact charges of B are the In/Out indicators over all data edges
(``y_u <= 1 - beta_u``, ``y_u <= sum_succ beta_v``, ...: no order is used).

Each Guess(b) >= the bottleneck relaxation, because (G-A) + (G-D) implies (B2).

``stats["per_b"]`` holds the bound proven for each b tried; in the max variant a later b
is solved with ``T >=`` the best earlier bound, so its entry is max(earlier best, Guess(b))
(use :meth:`Guess.solve_one` for a single Guess(b)).

Budget
------
b is tried in the order of docs/theory/bounds.md#guess: the bottleneck of ``context.partition``,
then its neighbours (b0-1, b0+1, b0-2, ...); without a partition, from the middle out. Each
b gets an equal share of the time left; the max variant stops as soon as the bound (plus
its safety margin, ``stats["margin"]``: the solver's own value) meets
the best known feasible value, and stops a Guess(b) early once an incumbent shows it cannot
raise the max.

Size
----
k models, each with 2n binaries, at most 4n charges and about 2m + 4m' + 3 rows.

References
----------
Archer, Fahrbach, Liu, Prabhu, ICML 2024 (the "guess the bottleneck block" formulation);
the formulation is the reconstruction of docs/theory/bounds.md#guess.
"""

from __future__ import annotations

import math
import time
from typing import Any

from formulations.base import FORMULATIONS
from formulations.bottleneck import abd_warm_start, build_abd, usable
from formulations.mip.backends import SolveRecord
from formulations.mip.base import MipFormulation, doubtful_infeasible, t_range
from pipecert.errors import InvalidBoundError
from pipecert.instance import Instance
from pipecert.partition import stage_costs
from pipecert.results import (
    CLOSE_RTOL,
    BoundResult,
    Budget,
    SolveContext,
    Status,
    bound_exceeds,
    closes,
)

__all__ = ["Guess", "guess_order", "meets", "CLOSE_RTOL"]

def meets(bound: float, value: float) -> bool:
    """True if ``bound`` is within :data:`CLOSE_RTOL` of the feasible ``value`` (or above)."""
    return closes(bound, value)


def guess_order(k: int, first: int | None = None) -> list[int]:
    """Block indices 1..k starting at ``first`` (default: the middle), then its neighbours."""
    b0 = (k + 1) // 2 if first is None else min(max(int(first), 1), k)
    out = [b0]
    for d in range(1, k):
        for b in (b0 - d, b0 + d):
            if 1 <= b <= k:
                out.append(b)
    return out


@FORMULATIONS.register
class Guess(MipFormulation):
    """Guess the bottleneck block: max over b of Guess(b) (or min_b Guess2(b))."""

    name = "guess"
    citation = "Archer et al., ICML 2024, Section 4 (docs/theory/bounds.md#guess)"
    handles = frozenset({"groups", "data_only_edges"})
    relaxes = frozenset({"memory"})
    dominates = ("bottleneck",)

    def __init__(self, *, variant: str = "max", **shared: Any) -> None:
        super().__init__(**shared)
        self.variant = variant

    def solve_one(
        self,
        instance: Instance,
        k: int,
        b: int,
        budget: Budget,
        context: SolveContext | None = None,
        *,
        time_limit_s: float | None = None,
        floor_scaled: float | None = None,
        stop_below: float | None = None,
        stop_dual_above: float | None = None,
    ) -> tuple[float | None, SolveRecord, dict[str, Any]]:
        """Solve Guess(b) (or Guess2(b)) alone: ``(safe bound or None, record, stats)``.

        ``floor_scaled`` adds ``T >= floor_scaled`` (scaled units; max variant only).
        A model the solver calls infeasible gives no bound (None; ``stats["numerics"]``).
        """
        if not 1 <= b <= k:
            raise ValueError(f"b = {b} outside 1..{k}")
        if self.variant not in ("max", "min"):
            raise ValueError(f"variant must be 'max' or 'min', not {self.variant!r}")
        exact_b = self.variant == "min"
        costs = self.scaled_costs(instance)
        lo, hi = t_range(costs, k, context, comb_cut=self.comb_cut,
                         context_lb_cut=self.context_lb_cut, cutoff=self.cutoff)
        if floor_scaled is not None and not exact_b:
            lo = min(max(lo, floor_scaled), hi)
        model, chain, T = build_abd(instance, costs, k, b=b, lo=lo, hi=hi, exact_b=exact_b,
                                    form=self.form)
        x0 = None
        part = context.partition if context is not None else None
        if self.warm_start and part is not None and usable(part, instance, k):
            x0 = abd_warm_start(model, chain, T, part.stage_of, b)
        s = costs.scale
        rec, retry = self.solve_t_model(
            model, int(T.cols), costs, budget, time_limit_s=time_limit_s, warm_start=x0,
            stop_below=None if stop_below is None else stop_below * s,
            stop_dual_above=None if stop_dual_above is None else stop_dual_above * s)
        stats = self.base_stats(model, rec, costs)
        stats["warm_started"] = x0 is not None
        if retry:
            stats["retried"] = retry
        if rec.status is Status.INFEASIBLE:
            # Guess(b) always contains the point of an optimal partition (module docstring)
            # and Guess2(b) may be truly infeasible, but a floating-point solver's claim is
            # not a proof either way: no bound from this b (the caller falls back).
            stats.update(doubtful_infeasible(f"Guess{'2' if exact_b else ''}({b})", lo, hi))
            return None, rec, stats
        return self.bound_of(rec, costs, model), rec, stats

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """Run Guess(b) over b within the budget (see the module docstring)."""
        ctx = context or SolveContext()
        first = None
        if ctx.partition is not None and usable(ctx.partition, instance, k):
            first = stage_costs(instance, ctx.partition).bottleneck_stage + 1
        order = guess_order(k, first)
        ub = ctx.upper_bound
        costs = self.scaled_costs(instance)
        per_b: dict[int, float | None] = {}
        per_status: dict[int, str] = {}
        logs: list[tuple[float, float | None, float | None]] = []
        totals = {"build_time_s": 0.0, "solve_time_s": 0.0, "nodes": 0}
        last: dict[str, Any] = {}
        t0 = time.perf_counter()
        numerics: dict[int, str] = {}
        margins: list[float] = []
        best: float | None = None  # max variant
        best_margin = 0.0
        low: float | None = None  # min variant
        all_done = True
        for i, b in enumerate(order):
            # building one model costs about as much as the last one did (seconds on 10^5
            # nodes): do not start one that cannot be built within the budget
            if budget.expired() or (i and budget.remaining() < totals["build_time_s"] / i):
                all_done = False
                break
            share = budget.remaining() / (len(order) - i)
            if self.variant == "max":
                floor_s = None
                if best is not None:
                    floor_s = (math.floor(best * costs.scale) if costs.integer
                               else best * costs.scale * (1 - 1e-9))
                val, rec, st = self.solve_one(
                    instance, k, b, budget, ctx, time_limit_s=share, floor_scaled=floor_s,
                    stop_below=None if best is None else best * (1 + 1e-9))
            else:
                val, rec, st = self.solve_one(
                    instance, k, b, budget, ctx, time_limit_s=share,
                    stop_dual_above=None if low is None else low)
                if rec.stopped_by == "stop_dual_above":
                    rec.status = Status.OPTIMAL  # this b cannot lower the minimum
                if rec.status is Status.INFEASIBLE:
                    # Guess(b) <= Guess2(b) (it drops constraints), so it may stand in for b
                    numerics[b] = str(st.get("numerics", ""))
                    share = budget.remaining() / (len(order) - i)
                    val, rec, st = Guess(**{**self.params(), "variant": "max"}).solve_one(
                        instance, k, b, budget, ctx, time_limit_s=share)
                    if rec.status is Status.INFEASIBLE:
                        rec.status = Status.NO_SOLUTION
            if "numerics" in st and b not in numerics:
                numerics[b] = str(st["numerics"])
            per_b[b] = val
            per_status[b] = "optimal" if rec.stopped_by == "stop_below" else str(rec.status)
            last = st
            margins.append(float(st.get("margin", 0.0) or 0.0))
            totals["build_time_s"] += st["build_time_s"]
            totals["solve_time_s"] += st["solve_time_s"]
            totals["nodes"] += int(st["nodes"] or 0)
            if self.variant == "max":
                if val is not None and ub is not None and bound_exceeds(val, ub):
                    raise InvalidBoundError(
                        f"guess: Guess({b}) = {val!r} above the feasible value {ub!r} on "
                        f"{instance.name} (k={k})")
                if val is not None and (best is None or val > best):
                    best = val
                    best_margin = float(st.get("margin", 0.0) or 0.0)
                    logs.append((time.perf_counter() - t0, best, None))
                if best is not None and ub is not None and meets(best + best_margin, ub):
                    # the solver's value meets the incumbent: no b can prove more than it,
                    # up to the safety margin
                    break
            else:
                if val is None:
                    val = 0.0
                    all_done = False
                low = val if low is None else min(low, val)
        if self.variant == "max":
            bound = best
            complete = (len(per_b) == k and all(s == "optimal" for s in per_status.values())) \
                or (best is not None and ub is not None and meets(best + best_margin, ub))
        else:
            bound = low if (low is not None and len(per_b) == k and math.isfinite(low)) \
                else None
            if bound is not None and bound <= 0.0:
                bound = None
            complete = all_done and len(per_b) == k and all(
                s in ("optimal", "infeasible") for s in per_status.values())
            if bound is not None and ub is not None and bound_exceeds(bound, ub):
                raise InvalidBoundError(
                    f"guess[variant=min]: min_b Guess2(b) = {bound!r} above the feasible "
                    f"value {ub!r} on {instance.name} (k={k})")
        status = Status.OPTIMAL if complete else Status.TIME_LIMIT
        if bound is None and (not per_b or numerics):
            status = Status.NO_SOLUTION
        stats: dict[str, Any] = {
            "n_vars": last.get("n_vars"), "n_int": last.get("n_int"),
            "n_cons": last.get("n_cons"), "solver": last.get("solver", self.solver),
            "solver_version": last.get("solver_version"),
            "models_solved": len(per_b), "order": order,
            "per_b": {int(b): v for b, v in sorted(per_b.items())},
            "per_b_status": {int(b): s for b, s in sorted(per_status.items())},
            "variant": self.variant, **totals,
            "margin": max((float(m) for m in margins), default=0.0),
        }
        if numerics:
            stats["numerics"] = numerics
        return BoundResult(bound, status, None, stats, tuple(logs))


def per_b_values(result: BoundResult) -> list[float | None]:
    """Guess(b) for b = 1..k from a result's stats (None where b was not solved)."""
    per = result.stats.get("per_b", {})
    k = max(per) if per else 0
    return [per.get(b) for b in range(1, k + 1)]

