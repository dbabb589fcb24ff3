"""The :class:`Formulation` base class and the ``FORMULATIONS`` registry.

A formulation proves a lower bound on OPT(instance, k). :meth:`Formulation.run` is the
framework's gate around every bound:

* the bound is never reported below the combinatorial bound ``max(W/k, max_v w(v))``
  (always valid, see :func:`combinatorial_bound`), because a solver that stops before its
  root LP reports 0;
* a partition found on the way is feasibility-checked and re-scored by the reference cost;
* a bound above a known feasible value (beyond :data:`pipecert.BOUND_RTOL`) is a bug: the run
  becomes ``status=error`` with ``error="invalid bound ..."`` and no bound, never a result;
* a bound within tolerance above the best known value is clamped to it;
* statuses say what was proven: a relaxation solved to optimality is ``SOLVED`` (a gap may
  remain) unless its bound meets a known feasible value within
  :func:`pipecert.results.closes`, which proves optimality (``OPTIMAL``); an ``exact``
  method that finished is ``OPTIMAL`` unless its safe bound is visibly below its own
  incumbent (``SOLVED``); ``UNSUPPORTED`` always carries a reason in ``error``.
"""

from __future__ import annotations

import abc
import time
import traceback
from dataclasses import replace
from typing import ClassVar

from pipecert.effective_k import effective_k, pad_partition, restrict_partition
from pipecert.instance import Instance, validate_k
from pipecert.partition import check_feasible, evaluate
from pipecert.registry import Method, Registry
from pipecert.results import (
    BoundResult,
    Budget,
    RunOutcome,
    SolveContext,
    Status,
    bound_exceeds,
    closes,
)

__all__ = ["Formulation", "FORMULATIONS", "combinatorial_bound"]


def combinatorial_bound(instance: Instance, k: int) -> float:
    """``LB_comb = max(W / k, max_U w(U))`` over the units ``U`` (docs/theory/bounds.md).

    Valid because the k stage costs sum to at least W (each node's work is paid by its
    stage) and the stage holding a unit ``U`` (nodes that must share a stage:
    :attr:`Instance.unit_of`; a single node without co-location groups) costs at least
    ``w(U)``. It uses no stage order, so it holds on every variant.
    """
    if instance.n_units == instance.n_nodes:
        return max(instance.total_work / k, float(instance.work.max()))
    return max(instance.total_work / k, float(instance.unit_sums(instance.work).max()))


class Formulation(Method, abc.ABC):
    """Base class of every lower-bound method.

    Subclasses set ``name`` (and ``citation``), take their parameters as keyword-only
    constructor arguments stored as attributes, and implement :meth:`lower_bound`. The
    module docstring of a formulation states its model, what it relaxes, why its value is a
    valid lower bound, and its size in n, m, k.

    Attributes
    ----------
    exact : bool
        True if, solved to optimality, the method returns OPT (the brute-force tests then
        check equality whenever it reports ``Status.OPTIMAL``).
    dominates : tuple of str
        Registry names whose bound this one is claimed to be at least as strong as on every
        instance (the claim is tested).
    """

    exact: ClassVar[bool] = False
    dominates: ClassVar[tuple[str, ...]] = ()
    #: A lower bound that ignores co-location groups or the memory cap bounds a problem
    #: with more feasible partitions, so it stays valid: every formulation relaxes both
    #: unless it declares that it ``handles`` them. Data-only edges must be handled
    #: explicitly (treating them as ordering would restrict the problem).
    relaxes: ClassVar[frozenset[str]] = frozenset({"groups", "memory"})

    @abc.abstractmethod
    def lower_bound(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        context: SolveContext | None = None,
    ) -> BoundResult:
        """Prove a lower bound on OPT(instance, k) within ``budget``.

        Returns
        -------
        BoundResult
            ``bound`` must be valid (<= OPT) or None. Return the best bound proven so far
            when the budget runs out.
        """

    def run(
        self,
        instance: Instance,
        k: int,
        budget: Budget | None = None,
        context: SolveContext | None = None,
        *,
        raise_errors: bool = False,
        floor: bool = True,
    ) -> RunOutcome:
        """Run :meth:`lower_bound` and validate its output (see the module docstring).

        ``floor=False`` reports the method's own bound without the combinatorial floor.

        :meth:`lower_bound` is called with ``k_eff = min(k, n)`` stages: OPT(k) = OPT(n)
        for k >= n (empty stages cost nothing, :mod:`pipecert.effective_k`), so a bound
        for k_eff is one for k, at the cost of k_eff; a partition found on the way is
        returned declared for ``k`` stages (O(n) memory).
        """
        k_req = validate_k(k)
        k = effective_k(instance, k_req)
        if context is not None and context.partition is not None \
                and context.partition.k > k:
            context = replace(context, partition=restrict_partition(context.partition, k))
        budget = budget if budget is not None else Budget()
        mid = self.method_id()
        ok, reason = self.supports_variant(instance)
        if ok:
            ok, reason = self.supports(instance, k)
        if not ok:
            return RunOutcome(mid, "bound", Status.UNSUPPORTED, 0.0,
                              error=reason or f"{mid} does not support this instance or k "
                                              "(no reason given by the method)")
        infeasible = instance.infeasible_reason(k)
        if infeasible is not None:  # a proof: see Instance.infeasible_reason
            return RunOutcome(mid, "bound", Status.INFEASIBLE, 0.0,
                              stats={"reason": infeasible},
                              error=f"no feasible partition into {k_req} stages: {infeasible}")
        t0 = time.perf_counter()
        try:
            res = self.lower_bound(instance, k, budget, context)
        except Exception as exc:
            if raise_errors:
                raise
            return RunOutcome(
                mid, "bound", Status.ERROR, time.perf_counter() - t0,
                error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}",
            )
        elapsed = time.perf_counter() - t0
        stats = dict(res.stats)
        incumbent = None
        part = res.partition
        if part is not None:
            problems = check_feasible(instance, part, k=k)
            if problems:
                msg = f"{mid} returned an infeasible partition: {problems[0]}"
                if raise_errors:
                    raise AssertionError(msg)
                part = None
                stats["dropped_partition"] = msg
            else:
                incumbent = evaluate(instance, part)
        bound = res.bound
        status = res.status
        if bound is not None and floor:
            bound = max(bound, combinatorial_bound(instance, k))
        elif bound is None and floor and status is not Status.INFEASIBLE:
            bound = combinatorial_bound(instance, k)
            stats["fallback"] = "combinatorial"
        if bound is not None:
            known = [x for x in (incumbent, context.upper_bound if context else None)
                     if x is not None]
            if known:
                best = min(known)
                if bound_exceeds(bound, best):
                    msg = (f"invalid bound: {mid} reported {bound!r} above the feasible value "
                           f"{best!r} on {instance.name} (k={k})")
                    if raise_errors:
                        from pipecert.errors import InvalidBoundError

                        raise InvalidBoundError(msg)
                    return RunOutcome(mid, "bound", Status.ERROR, elapsed, incumbent=incumbent,
                                      partition=part, stats=stats, log=res.log, error=msg)
                bound = min(bound, best)
        status = self._honest_status(status, bound, incumbent, context,
                                     relaxed=bool(instance.constraints & self.relaxes))
        if part is not None:
            part = pad_partition(part, k_req)
        why = None  # a run that proved nothing of its own says why
        if status in (Status.UNSUPPORTED, Status.NO_SOLUTION, Status.INFEASIBLE):
            why = stats.get("reason")
            if why is None and status is Status.UNSUPPORTED:
                why = f"{mid} does not support this instance or k (no reason given)"
        return RunOutcome(mid, "bound", status, elapsed, bound=bound, incumbent=incumbent,
                          partition=part, stats=stats, log=res.log,
                          error=None if why is None else str(why))

    def _honest_status(self, status: Status, bound: float | None, incumbent: float | None,
                       context: SolveContext | None, *, relaxed: bool = False) -> Status:
        """``OPTIMAL`` only when optimality is proven (see the module docstring).

        A method's ``OPTIMAL`` stands when its bound meets a known feasible value (the
        incumbent or ``context.upper_bound``) within :func:`closes`, or, for an ``exact``
        method that finished, when no feasible value is known. Otherwise it is ``SOLVED``:
        a relaxation solved to optimality, or an exact model solved but with a safety
        margin (numerical resolution) that leaves a gap to its own incumbent.
        """
        if status is not Status.OPTIMAL:
            return status
        known = [x for x in (incumbent, context.upper_bound if context else None)
                 if x is not None]
        if bound is not None and known and closes(bound, min(known)):
            return Status.OPTIMAL
        if self.exact and not known and not relaxed:
            return Status.OPTIMAL
        return Status.SOLVED


FORMULATIONS: Registry[Formulation] = Registry("formulation", Formulation)
