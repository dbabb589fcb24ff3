"""The per-instance best of several lower bounds (docs/theory/bounds.md#dual-bound, "LB_MIP").

Model
-----
No model of its own: it runs a list of registered formulations and reports the maximum of
their validated bounds, ``max(LB_comb, node/path bounds, bottleneck, max_b Guess(b),
exact-MIP dual bound, ...)``.

Default list (``methods=None``): every registered formulation except ``best`` itself, the
cheap ones first (those that are not MIPs: ``combinatorial`` and any combinatorial or
max-flow bound another module registers) and then the MIPs in the order ``bottleneck``,
``guess``, ``exact_mip`` (then any other MIP, by name). ``methods`` takes explicit specs,
e.g. ``best[methods=('combinatorial','guess[variant=min]')]``.

Budget: the cheap bounds share at most ``cheap_share`` of the time, then each MIP gets an
equal share of what is left (unused time rolls over to the next one). Each method sees the
best bound so far as ``context.lower_bound`` (a proven bound, so the MIPs may add
``T >= lower_bound``) and the best partition so far as ``context.partition`` /
``context.upper_bound``. The run stops as soon as the bound meets the best known feasible
value. The ``solver`` parameter is passed to every method that has one.

Constrained variants
--------------------
Every component is gated by its own capabilities: a component that neither handles nor
relaxes an active constraint of the instance (or does not support it otherwise, e.g. a
solver that is not installed) is skipped before it runs, and listed with its reason in
``stats["skipped"]`` (never an error). ``combinatorial`` handles every variant, so ``best``
runs on every variant (declared ``handles`` all three: its value is the maximum of
components that each model or soundly relax the active constraints, and the components that
handle them all, such as ``exact_mip``, make it exact when they finish). A component that
*proves* infeasibility (status ``infeasible`` with a reason, e.g. ``path_bound`` when no
split of a chain fits the memory cap) ends the run as infeasible with that reason.

What it relaxes / why the value is valid
----------------------------------------
Each component is built by the registry (``solver`` passed as a constructor parameter) and
run through the graded :meth:`Formulation.run`, the one run path of every method, which
validates it (floors, re-scores partitions, rejects a bound above a known feasible value
as an error): a maximum of valid lower bounds is a valid lower bound. ``best`` checks
nothing itself. A component that errors contributes nothing (its error is listed in
``stats["errors"]``).

Why ``best`` is not the portfolio: it lives with the formulations (a registered bound that
the registry discovers like any other, and formulations import nothing above them) and
needs only the run path, not the portfolio's plan (:mod:`portfolio`). Its schedule (the
cheap bounds first, then equal shares) is part of its definition.

Size
----
The sum of the components'.

References
----------
Archer, Fahrbach, Liu, Prabhu, ICML 2024 ("our MIP formulations": the per-instance best).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from formulations.base import FORMULATIONS, Formulation
from formulations.guess import meets
from formulations.mip.base import MipFormulation
from pipecert.instance import Instance
from pipecert.partition import Partition
from pipecert.registry import Role, parse_method_spec
from pipecert.results import BoundResult, Budget, SolveContext, Status
from pipecert.runner import run_method

__all__ = ["Best", "default_methods"]

_MIP_ORDER = ("bottleneck", "guess", "exact_mip")


def default_methods() -> list[str]:
    """Registered formulations, cheap (non-MIP) ones first, then the MIPs."""
    names = [n for n in FORMULATIONS.names() if n != Best.name]
    cheap = [n for n in names if not issubclass(FORMULATIONS.get(n), MipFormulation)]
    mips = [n for n in names if n not in cheap]
    mips.sort(key=lambda n: (_MIP_ORDER.index(n) if n in _MIP_ORDER else len(_MIP_ORDER), n))
    return cheap + mips


@FORMULATIONS.register
class Best(Formulation):
    """The maximum of every registered bound (cheap ones first, then the MIPs)."""

    name = "best"
    citation = "Archer et al., ICML 2024, per-instance best (docs/theory/bounds.md#dual-bound)"
    dominates = ("combinatorial",)
    handles = frozenset({"groups", "memory", "data_only_edges"})
    relaxes = frozenset()

    def __init__(
        self,
        *,
        methods: tuple[str, ...] | list[str] | str | None = None,
        solver: str = "highs",
        cheap_share: float = 0.2,
    ) -> None:
        self.methods = methods
        self.solver = solver
        self.cheap_share = cheap_share

    def _specs(self) -> list[str]:
        if self.methods is None:
            return default_methods()
        if isinstance(self.methods, str):
            return [s.strip() for s in self.methods.split(";") if s.strip()]
        return [str(s) for s in self.methods]

    def _make(self, spec: str) -> Formulation:
        """The component ``spec``, built by the registry with ``solver`` as a parameter
        (when its class takes one and the spec does not set it)."""
        name, params = parse_method_spec(spec)
        return FORMULATIONS.create(name, params, settings={"solver": self.solver})

    @staticmethod
    def _member_supports(method: Formulation, instance: Any, k: int) -> tuple[bool, str | None]:
        """A component's own gate: its capabilities on the instance's variant, then k."""
        ok, why = method.supports_variant(instance)
        if ok:
            ok, why = method.supports(instance, k)
        return ok, why

    def supports(self, instance: Any, k: int) -> tuple[bool, str | None]:
        """Supported when at least one component is (on this variant and k)."""
        reasons = []
        for spec in self._specs():
            ok, why = self._member_supports(self._make(spec), instance, k)
            if ok:
                return True, None
            reasons.append(f"{spec}: {why}")
        return False, "; ".join(reasons) or "no methods"

    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """Run the components in order and report the best validated bound."""
        ctx = context or SolveContext()
        methods = []
        skipped: dict[str, str] = {}
        for spec in self._specs():
            m = self._make(spec)
            ok, why = self._member_supports(m, instance, k)
            if ok:
                methods.append(m)
            else:
                skipped[m.method_id()] = why or "unsupported (no reason given)"
        cheap = [m for m in methods if not isinstance(m, MipFormulation)]
        mips = [m for m in methods if isinstance(m, MipFormulation)]
        own: float | None = None  # the best bound proven by the components
        best_ub = ctx.upper_bound
        best_part: Partition | None = ctx.partition
        found_part: Partition | None = None
        runs: list[dict[str, Any]] = []
        errors: dict[str, str] = {}
        log: list[tuple[float, float | None, float | None]] = []
        cheap_budget = budget.fraction(self.cheap_share) if mips else budget
        all_optimal = False
        for group, grp_budget in ((cheap, cheap_budget), (mips, budget)):
            for i, m in enumerate(group):
                if budget.expired() or grp_budget.expired():
                    break
                known = _max(own, ctx.lower_bound)
                if known is not None and best_ub is not None and meets(known, best_ub):
                    break
                rem = grp_budget.remaining()
                share = rem if math.isinf(rem) else rem / (len(group) - i)
                sub = Budget(time_limit_s=share, threads=budget.threads,
                             node_limit=budget.node_limit)
                sctx = replace(ctx, lower_bound=_max(own, ctx.lower_bound), upper_bound=best_ub,
                               partition=best_part)
                out = run_method(m, instance, k, role=Role.BOUND, context=sctx, budget=sub)
                runs.append({"method": out.method, "status": str(out.status),
                             "bound": out.bound, "incumbent": out.incumbent,
                             "time_s": out.time_s})
                if out.status is Status.INFEASIBLE:  # a component's proof
                    why = out.stats.get("reason") or out.error or "infeasible"
                    return BoundResult(None, Status.INFEASIBLE, None,
                                       {"runs": runs, "reason": f"{out.method}: {why}",
                                        "skipped": skipped})
                if out.status is Status.UNSUPPORTED:
                    skipped[out.method] = (out.error or "unsupported").splitlines()[0]
                    continue
                if out.error:
                    errors[out.method] = out.error.splitlines()[0]
                    continue
                if out.bound is not None and (own is None or out.bound > own):
                    own = out.bound
                    log.append((budget.elapsed(), own, best_ub))
                if out.incumbent is not None and (best_ub is None or out.incumbent < best_ub):
                    best_ub = out.incumbent
                    best_part = out.partition
                    found_part = out.partition
                if getattr(m, "exact", False) and out.status is Status.OPTIMAL:
                    all_optimal = True
        bound = own
        closed = bound is not None and best_ub is not None and meets(bound, best_ub)
        status = Status.OPTIMAL if (all_optimal or closed) else (
            Status.BOUND if bound is not None else Status.NO_SOLUTION)
        stats = {"runs": runs, "errors": errors, "methods": [m.method_id() for m in methods],
                 "n_methods_run": len(runs), "skipped": skipped}
        return BoundResult(bound, status, found_part, stats, tuple(log))


def _max(a: float | None, b: float | None) -> float | None:
    vals = [x for x in (a, b) if x is not None]
    return max(vals) if vals else None
