"""The :class:`Heuristic` base class and the ``HEURISTICS`` registry.

A heuristic produces a feasible partition (an upper bound on OPT). It never reports the
partition's value: :meth:`Heuristic.run` re-scores it with the reference cost function and
checks its feasibility (for the instance's whole variant: ordering edges, co-location
groups, the memory cap).

:func:`search_instance` is the instance a search runs on: the exactly reduced one of
:mod:`heuristics.downset_dp` for the paper's problem, the instance itself when a
constraint is active (the reductions move a node to its host's stage, which can split a
co-location group or overfill a stage, and they treat every data edge as ordering).
"""

from __future__ import annotations

import abc
import math
import time
import traceback
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np

from pipecert.effective_k import effective_k, pad_partition, restrict_partition
from pipecert.instance import CONSTRAINTS, Instance, validate_k
from pipecert.partition import check_feasible, evaluate
from pipecert.registry import Method, Registry
from pipecert.results import Budget, HeuristicResult, RunOutcome, SolveContext, Status

__all__ = ["Heuristic", "HEURISTICS", "run_base", "search_instance", "ORDER_BASED"]

#: The constraints the order-based heuristics handle exactly (unit orders, constrained
#: slicing, unit moves; see :mod:`heuristics.slicing`).
ORDER_BASED: frozenset[str] = frozenset(CONSTRAINTS)


class Heuristic(Method, abc.ABC):
    """Base class of every upper-bound method.

    Subclasses set ``name`` (and ``citation``), take their parameters as keyword-only
    constructor arguments stored as attributes of the same name, and implement
    :meth:`solve`. The harness calls :meth:`run`, which calls :meth:`solve` once per
    ``(instance, k)``, then grades the result.

    Attributes
    ----------
    deterministic : bool
        True if the result does not depend on the random generator.
    """

    deterministic: ClassVar[bool] = False

    @abc.abstractmethod
    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Find a partition of ``instance`` into at most ``k`` stages.

        Parameters
        ----------
        instance : Instance
        k : int
            Number of stages, >= 1.
        budget : Budget
            Stop by ``budget.deadline`` (poll ``budget.expired()``).
        rng : numpy.random.Generator
            The only source of randomness.
        context : SolveContext, optional
            Known upper bound / partition (e.g. to seed a search or prune a DP).

        Returns
        -------
        HeuristicResult
            The partition (not its value) and stats.
        """

    def run(
        self,
        instance: Instance,
        k: int,
        budget: Budget | None = None,
        rng: np.random.Generator | int | None = None,
        context: SolveContext | None = None,
        *,
        raise_errors: bool = False,
    ) -> RunOutcome:
        """Run :meth:`solve` and grade it: re-score and feasibility-check the partition.

        :meth:`solve` is called with ``k_eff = min(k, n)`` stages (OPT(k) = OPT(n) for
        k >= n, :mod:`pipecert.effective_k`); the partition is returned declared for ``k``
        stages (the extra ones empty), in O(n) memory.
        """
        k_req = validate_k(k)
        k = effective_k(instance, k_req)
        if context is not None and context.partition is not None \
                and context.partition.k > k:
            context = replace(context, partition=restrict_partition(context.partition, k))
        budget = budget if budget is not None else Budget()
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        t0 = time.perf_counter()
        ok, reason = self.supports_variant(instance)
        if ok:
            ok, reason = self.supports(instance, k)
        if not ok:
            return RunOutcome(self.method_id(), "heuristic", Status.UNSUPPORTED, 0.0,
                              error=reason)
        infeasible = instance.infeasible_reason(k)
        if infeasible is not None:
            return RunOutcome(self.method_id(), "heuristic", Status.INFEASIBLE, 0.0,
                              error=f"no feasible partition into {k_req} stages: {infeasible}")
        try:
            res = self.solve(instance, k, budget, gen, context)
        except Exception as exc:
            if raise_errors:
                raise
            return RunOutcome(
                self.method_id(), "heuristic", Status.ERROR, time.perf_counter() - t0,
                error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}",
            )
        elapsed = time.perf_counter() - t0
        part = res.partition
        if part is None:
            # a run that gives nothing says why (the method's stats["reason"], if any)
            why = res.stats.get("reason")
            if why is None and res.status is Status.UNSUPPORTED:
                why = f"{self.method_id()} does not apply to this instance (no reason given)"
            return RunOutcome(self.method_id(), "heuristic", res.status, elapsed,
                              stats=dict(res.stats), log=res.history,
                              error=None if why is None else str(why))
        problems = check_feasible(instance, part, k=k)
        if problems:
            msg = f"{self.method_id()} returned an infeasible partition: {problems[0]}"
            if raise_errors:
                raise AssertionError(msg)
            return RunOutcome(self.method_id(), "heuristic", Status.ERROR, elapsed,
                              stats=dict(res.stats), error=msg)
        value = evaluate(instance, part)
        return RunOutcome(
            self.method_id(), "heuristic", res.status, elapsed, incumbent=value,
            partition=pad_partition(part, k_req), stats=dict(res.stats), log=res.history,
        )


HEURISTICS: Registry[Heuristic] = Registry("heuristic", Heuristic)


def run_base(
    wrapper: Heuristic,
    base: str,
    instance: Instance,
    k: int,
    budget: Budget,
    rng: np.random.Generator,
    context: SolveContext | None,
    share: float,
) -> tuple[HeuristicResult, dict[str, Any]]:
    """Run the heuristic ``base`` (a method spec) for the improving method ``wrapper``.

    ``base`` gets ``share`` of a finite budget (all of an unlimited one), so the wrapper has
    time left to improve its partition. Returns the base's result and the stats to start
    from (``base`` = its method id, then its own stats).
    """
    inner = HEURISTICS.make(base)
    if isinstance(inner, type(wrapper)):
        raise ValueError(f"{wrapper.name} cannot wrap itself")
    ok, reason = inner.supports_variant(instance)
    if not ok:  # the base would answer a different problem
        return (HeuristicResult(None, Status.UNSUPPORTED, {"reason": reason}),
                {"base": inner.method_id(), "reason": reason})
    sub = budget if math.isinf(budget.remaining()) else budget.fraction(share)
    res = inner.solve(instance, k, sub, rng, context)
    return res, {"base": inner.method_id(), **dict(res.stats)}


def search_instance(
    instance: Instance, reduce: bool
) -> tuple[Instance, np.ndarray | None, np.ndarray | None]:
    """``(searched, kept, host)``: the reduced instance of
    :func:`heuristics.downset_dp.reduce_instance` when ``reduce`` and no constraint is
    active, else ``(instance, None, None)`` (module docstring)."""
    if not reduce or instance.constraints:
        return instance, None, None
    from heuristics.downset_dp import reduce_instance

    return reduce_instance(instance)
