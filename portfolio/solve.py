"""The search of ``pipecert solve``: a partition with a proven gap (:func:`solve`).

Every method runs through its graded ``run`` (partitions re-scored by the reference cost,
bounds validated against the best partition known), in this order:

1. **fast heuristics** - the order baselines sliced exactly by Algorithm 1 (input, BFS, DFS
   orders; milliseconds) and ``brkga-100``;
2. **cheap bounds** - ``combinatorial`` (free), ``node_bound`` and ``path_bound`` (max-flow
   bounds, docs/theory/min-cut-bounds.md; strong on communication-heavy graphs where the paper's
   relaxations collapse to the combinatorial bound);
3. **exact search** - ``downset_dp``, which solves narrow graphs to optimality (its value is
   then also a proven lower bound) and says "unsupported" quickly on wide ones;
4. **MIP bounds** - ``guess`` (max over b of guess-the-bottleneck) with the best partition as
   cut-off and warm start;
5. **more search while the gap is open** - BRKGA with the population of ``brkga-10000``
   until the time is up, then refinement of the best partition: local search, then the
   tube search (:mod:`heuristics.tube`, the exact DP over partitions whose cuts stay
   within a few stages of the best one's). Also run once after ``brkga-100``: local search
   costs milliseconds and improved the best partition on 14 of 16 measured cases.

A refinement is an ordinary ``refine`` step (:mod:`portfolio.plan`): its method is an
improver (:class:`heuristics.base.Improver`) that takes the best partition so far from the
run context (``SolveContext.partition``) and is run and graded like every other method.
The local search and the tube search are two steps, each reported as its own run (they
were one run, ``local_search+tube``, before); a refine step gives partitions only (an
improver's ``optimal`` is not taken as a lower bound, as before). An improver named as a
``heuristic`` step (``pipecert solve --heuristic local_search``) also refines the
incumbent when there is one.

It stops as soon as the certified gap ``(UB - LB) / UB`` is at most the target. Each stage
gets a share of the *remaining* time (:data:`DEFAULT_PLAN`), so an early finish leaves more
time to the later stages. The measurements behind the plan are in the README ("pipecert
solve: default portfolio").

Interrupts: once the process-wide cancel flag is set (:mod:`pipecert.cancel`; SIGINT or
SIGTERM under ``pipecert solve``), the running method stops at its next budget check and
its result so far is recorded (a partition, a bound, a MIP's dual bound so far); no new
step starts, except that heuristic steps still run (with no time: each returns its
quickest partition) while no partition exists. A :class:`KeyboardInterrupt` (a second
signal) also stops the search and keeps the finished runs.

Compilation: :func:`warm_up` runs every method of a plan once on a tiny graph so that the
compiled kernels are built (or loaded from numba's on-disk cache) before the clock starts.

Constrained instances (docs/constraints.md): a step whose method neither handles nor
soundly relaxes an active constraint of the instance (:meth:`pipecert.registry.Method.
supports_variant`) is not run and not reported as a run; it is listed once in
``PortfolioResult.not_applicable`` (``skip_unsupported=False`` runs it anyway, so that it
reports ``unsupported`` with its reason: what ``pipecert solve --heuristic/--bound`` does
for a method named explicitly). A proven infeasible ``(instance, k)`` ends the search
before any step: :meth:`pipecert.Instance.infeasible_reason`, or, during the search, an
``infeasible`` answer of the exact down-set DP or of a lower bound (a relaxation with no
feasible point proves the constrained problem has none) while no partition is known.
``PortfolioResult.infeasible`` then holds the proof. Since every partition is checked against
the full variant and every bound is valid for it (relaxed bounds included: a relaxation's
optimum is at most the constrained optimum), a closed gap proves optimality for the
constrained problem.

Methods are called with ``k_eff = min(k, n)`` stages (OPT(k) = OPT(n) for k >= n,
:mod:`pipecert.effective_k`); the best partition is returned declared for ``k`` stages.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipecert import cancel
from pipecert.effective_k import effective_k, pad_partition
from pipecert.instance import Instance
from pipecert.partition import Partition
from pipecert.registry import Method
from pipecert.results import DUAL_BOUND_MARGIN, Budget, RunOutcome, SolveContext, Status
from pipecert.seeding import derive_seed
from portfolio.plan import (
    DEFAULT_PLAN,
    Step,
    StepKind,
    make_method,
    plan_for,
    rescale_shares,
    unsupported_reason,
)

#: Gaps at most this (10x the dual-bound safety margin) count as closed.
GAP_TOL = 10 * DUAL_BOUND_MARGIN
#: The largest share of UB that a bound's own numerical margin may close (see ``closed``).
MARGIN_CLOSE_MAX = 1e-4

__all__ = ["GAP_TOL", "PortfolioResult", "RunInfo", "solve", "warm_up", "run_step"]


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One method run of the portfolio, as reported."""

    method: str
    role: str
    value: float | None
    status: str
    time_s: float
    error: str | None = None


@dataclass
class PortfolioResult:
    """The outcome: best partition, best bound, gap and every run."""

    k: int
    upper_bound: float | None = None
    partition: Partition | None = None
    upper_method: str | None = None
    lower_bound: float | None = None
    lower_method: str | None = None
    #: The numerical safety margin (cost units) its method took off the best bound
    #: (``stats["margin"]`` of a MIP bound; 0 otherwise): a gap within it is the solvers'
    #: resolution, which no further step can close.
    lower_margin: float = 0.0
    runs: list[RunInfo] = field(default_factory=list)
    elapsed_s: float = 0.0
    interrupted: bool = False
    #: The proof that no partition into k stages satisfies the constraints (None: not
    #: proven; see the module docstring).
    infeasible: str | None = None
    #: Steps not run because their method does not support the instance's variant:
    #: ``(method, reason)``, each method once.
    not_applicable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        """True if the gap is closed (to the portfolio's tolerance): proven optimal."""
        g = self.gap
        return g is not None and g <= GAP_TOL

    @property
    def gap(self) -> float | None:
        """Certified relative gap ``(UB - LB) / UB`` (0 when UB = 0)."""
        if self.upper_bound is None or self.lower_bound is None:
            return None
        if self.upper_bound <= 0:
            return 0.0
        return max(0.0, (self.upper_bound - self.lower_bound) / self.upper_bound)


Event = Callable[[str, RunInfo | None, PortfolioResult], None]


def solve(
    instance: Instance,
    k: int,
    *,
    time_limit_s: float = 30.0,
    plan: Sequence[Step] | None = None,
    solver: str | None = None,
    seed: int = 0,
    target_gap: float = 0.0,
    threads: int = 1,
    on_event: Event | None = None,
    skip_unsupported: bool = True,
) -> PortfolioResult:
    """Run the portfolio on ``(instance, k)`` within ``time_limit_s`` seconds.

    Parameters
    ----------
    plan : list of Step, optional
        Default :data:`DEFAULT_PLAN`.
    solver : str, optional
        MIP backend passed to every formulation that takes a ``solver`` parameter.
    seed : int
        Base seed; each heuristic gets ``derive_seed(seed, instance.name, k, method_id)``.
    target_gap : float
        Stop once ``(UB - LB) / UB <= target_gap`` (0: only at a proven optimum).
    on_event : callable, optional
        Called as ``on_event(kind, run, result)`` with kind ``"start"`` (run None, before a
        step; ``result.runs`` tells how many ran) and ``"run"`` after each method.
    skip_unsupported : bool
        Leave out (into ``not_applicable``) the steps whose method does not support the
        instance's variant; False runs them (they report ``unsupported``).

    Notes
    -----
    A stop request (:func:`pipecert.cancel.request`, set by the signal handlers of
    ``pipecert solve``) or a ``KeyboardInterrupt`` stops the search and returns what the
    runs proved so far (the interrupted run's partial result included), with
    ``interrupted = True``.
    """
    from formulations.base import combinatorial_bound

    plan = list(DEFAULT_PLAN if plan is None else plan)
    overall = Budget(time_limit_s=time_limit_s, threads=threads)
    res = PortfolioResult(k=k)
    k_req, k = k, effective_k(instance, k)
    res.infeasible = instance.infeasible_reason(k)
    if res.infeasible is not None:  # a proof (Instance.infeasible_reason): nothing to run
        res.elapsed_s = overall.elapsed()
        return res
    if skip_unsupported and instance.constraints:
        kept = plan_for(plan, instance)
        for s in plan:
            if s not in kept and s.spec not in {m for m, _ in res.not_applicable}:
                res.not_applicable.append((s.spec, unsupported_reason(s, instance)
                                           or "not supported"))
        if len(kept) < len(plan):
            plan = rescale_shares(plan, kept)
    res.lower_bound = combinatorial_bound(instance, k)
    res.lower_method = "combinatorial"
    cache: dict[str, Any] = {}

    def closed() -> bool:
        # solver bounds carry a safety margin (DUAL_BOUND_MARGIN, 1e-6 relative, plus the MIP
        # margin of formulations.mip.base, recorded as lower_margin): a gap within them
        # is a proven optimum up to the solvers' resolution. The reported gap stays as is.
        ub, lb = res.upper_bound, res.lower_bound
        if ub is None or lb is None:
            return False
        # (a margin that swamps the bound, costs over many orders of magnitude, closes
        # nothing: at most MARGIN_CLOSE_MAX of UB counts)
        return ub - lb <= (target_gap + GAP_TOL) * ub + min(res.lower_margin,
                                                               MARGIN_CLOSE_MAX * ub)

    def record(out: RunOutcome, step: Step, method: Method) -> None:
        role = step.role.method_role
        info = RunInfo(step.spec if out.method == step.name else out.method, role,
                       out.value, str(out.status), out.time_s, out.error)
        res.runs.append(info)
        if out.status is Status.INFEASIBLE and res.partition is None \
                and res.infeasible is None and _proves_infeasible(step, method):
            res.infeasible = out.error or f"{info.method} proved that no partition exists"
        if out.incumbent is not None and out.partition is not None and (
                res.upper_bound is None or out.incumbent < res.upper_bound):
            res.upper_bound, res.partition, res.upper_method = (
                out.incumbent, out.partition, info.method)
        proven = out.bound
        if step.role is StepKind.HEURISTIC and out.status is Status.OPTIMAL \
                and out.incumbent is not None:
            # an exact method (downset_dp) that finished: its value is OPT, a lower bound.
            # (A refine step's runs give partitions only, as when refining was not a plan
            # step: an optimal tube search is not taken as a bound, so results are as before.)
            proven = out.incumbent
        if proven is not None and out.status is not Status.ERROR and (
                res.lower_bound is None or proven > res.lower_bound):
            res.lower_bound, res.lower_method = proven, info.method
            margin = out.stats.get("margin") if role == "bound" else None
            res.lower_margin = (float(margin) if isinstance(margin, int | float)
                                and math.isfinite(margin) and margin > 0 else 0.0)
        if res.upper_bound is not None and res.lower_bound is not None:
            res.lower_bound = min(res.lower_bound, res.upper_bound)
        if on_event is not None:
            on_event("run", info, res)

    try:
        _run_plan(plan, instance, k, overall, res, solver, seed, threads, cache, closed,
                  record, on_event, skip_unsupported)
    except KeyboardInterrupt:
        # a second Ctrl-C stops the search, not the answer: keep every finished run
        res.interrupted = True
    res.interrupted = res.interrupted or cancel.requested()
    if res.partition is not None:
        res.partition = pad_partition(res.partition, k_req)
    if res.infeasible is not None:  # no bound or gap on a problem without a solution
        res.lower_bound = res.lower_method = None
    res.elapsed_s = overall.elapsed()
    return res


def _proves_infeasible(step: Step, method: Method) -> bool:
    """Whether an ``infeasible`` answer of this step proves that no partition exists.

    A lower bound is a relaxation (its feasible set contains every partition, whatever it
    relaxes), so its infeasibility is the problem's; so is that of an exact search (a
    heuristic that declares ``exact``, the down-set DP). An improver's is not.
    """
    if step.role is StepKind.BOUND:
        return True
    return step.role is StepKind.HEURISTIC and bool(getattr(method, "exact", False))


def run_step(method: Method, step: Step, instance: Instance, k: int, budget: Budget,
             context: SolveContext, seed: int) -> RunOutcome:
    """Run ``method`` (the method of ``step``) through the one run service
    (:func:`pipecert.runner.run_method`: its graded ``run``).

    A heuristic (or improver) gets the generator of
    ``derive_seed(seed, instance.name, k, method_id)``.
    """
    import numpy as np

    from pipecert.runner import run_method

    rng = (None if step.role is StepKind.BOUND else
           np.random.default_rng(derive_seed(seed, instance.name, k, method.method_id())))
    return run_method(method, instance, k, role=step.role.role, context=context,
                      budget=budget, seed=rng)


def _run_plan(plan: Sequence[Step], instance: Instance, k: int, overall: Budget,
              res: PortfolioResult, solver: str | None, seed: int, threads: int,
              cache: dict[str, Any], closed: Callable[[], bool],
              record: Callable[[RunOutcome, Step, Method], None], on_event: Event | None,
              skip_unsupported: bool = True) -> None:
    """Run the steps of ``plan`` in order, recording into ``res``."""
    ran_heuristic = False
    noted = {m for m, _ in res.not_applicable}
    for step in plan:
        if res.infeasible is not None:
            break  # proven: no partition exists
        if skip_unsupported or step.role is StepKind.REFINE:
            why = unsupported_reason(step, instance)
            if why is not None:
                if step.spec not in noted:
                    noted.add(step.spec)
                    res.not_applicable.append((step.spec, why))
                continue
        if cancel.requested() and (res.partition is not None
                                   or step.role is not StepKind.HEURISTIC):
            continue  # stopped: no new step, except heuristics while no partition exists
        remaining = overall.remaining()
        if step.if_gap_open and closed():
            continue
        if step.role is StepKind.REFINE:
            if res.partition is None or closed() or remaining <= 0.01:
                continue  # nothing to refine, nothing left to prove, or no time
        elif remaining <= 0.01 and ran_heuristic and not cancel.requested():
            res.runs.append(RunInfo(step.spec, step.role.method_role, None, "skipped", 0.0,
                                    "no time left"))
            continue
        share = remaining * step.share
        limit = max(step.min_s, share) if math.isfinite(remaining) else math.inf
        limit = min(limit, remaining) if math.isfinite(remaining) else limit
        if on_event is not None:
            on_event("start", RunInfo(step.spec, step.role.method_role, None, "running",
                                      0.0), res)
        method = make_method(step, solver)
        # the incumbent (a warm start; what a refine step improves) and the best bound
        ctx = SolveContext(upper_bound=res.upper_bound, partition=res.partition,
                           lower_bound=res.lower_bound, cache=cache)
        out = run_step(method, step, instance, k, Budget(time_limit_s=limit, threads=threads),
                       ctx, seed)
        ran_heuristic = ran_heuristic or step.role is StepKind.HEURISTIC
        record(out, step, method)


def _compiled_signatures() -> int:
    """Signatures numba compiled (not loaded from its cache) in this process so far."""
    n = 0
    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:  # pragma: no cover - numba is a core dependency
        return 0
    for name, mod in list(sys.modules.items()):
        if mod is None or not name.startswith(("heuristics", "formulations", "pipecert")):
            continue
        for obj in list(vars(mod).values()):
            if isinstance(obj, CPUDispatcher):
                n += sum(obj.stats.cache_misses.values())
    return n


#: Budget of each warm-up call: every method calls its kernels at least once before its
#: first budget check, and an anytime search (BRKGA) must not run long on the tiny graph.
_WARM_S = 0.2


def warm_up(plan: Sequence[Step], *, solver: str | None = None) -> tuple[float, bool]:
    """Run every method of ``plan`` once on a tiny graph (k = 2 and 3), untimed.

    Methods compiled just in time (numba) compile on their first call: on a fresh install
    that took 12 s of a 10 s budget. Running them here, before the budget starts, compiles
    every kernel the plan uses (or loads it from numba's on-disk cache, ``cache=True``:
    next to the sources, or a user cache directory when the package directory is not
    writable). A ``refine`` step improves the partition of ``bfs_order``. Failures are
    ignored: the timed run reports them.

    Returns
    -------
    (float, bool)
        Seconds spent, and whether any kernel was compiled (not loaded from the cache).
    """
    from heuristics.order_baselines import BfsOrder
    from pipecert.testing import warmup_instances

    t0 = time.monotonic()
    before = _compiled_signatures()
    for tiny in warmup_instances():
        seen: set[tuple[str, str]] = set()
        for step in plan:
            key = (str(step.role), step.name)
            if key in seen:  # same class, same kernels
                continue
            seen.add(key)
            for kk in (2, 3):
                try:
                    ctx = SolveContext()
                    if step.role is StepKind.REFINE:
                        ctx = SolveContext(partition=BfsOrder().run(tiny, kk).partition)
                        if ctx.partition is None:
                            continue
                    run_step(make_method(step, solver), step, tiny, kk, Budget(_WARM_S), ctx,
                             0)
                except Exception:  # noqa: S112 - the timed run reports real failures
                    continue
    return time.monotonic() - t0, _compiled_signatures() > before
