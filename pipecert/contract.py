"""The public contract test suite of a formulation, a heuristic and an improvement step.

A researcher who writes a method outside the repository checks it against the contract the
framework relies on, one test id per check, in one of three ways:

* **pytest classes** (as ``optuna.testing``'s sampler test cases): subclass
  :class:`FormulationContract`, :class:`HeuristicContract` or :class:`ImproverContract` in a
  test file and define the fixture ``method``::

      import pytest
      from pipecert.contract import FormulationContract

      class TestMyBound(FormulationContract):
          @pytest.fixture
          def method(self) -> MyBound:
              return MyBound()

  ``pytest -v`` then lists ``TestMyBound::test_bound_valid[extreme]``,
  ``TestMyBound::test_unsupported_variants`` ... one test per check;
* **a decorator** (as scikit-learn's ``parametrize_with_checks``)::

      @parametrize_with_checks([MyBound(), MyHeuristic()])
      def test_contract(check):
          check()

  with ids ``my_bound-bound_valid[extreme]`` ...;
* **a function** (as scikit-learn's ``check_estimator``): :func:`check_contract` runs every
  check and raises an :class:`AssertionError` naming the failed check; :func:`contract_checks`
  yields ``(check_id, check)`` pairs for any other runner.

The checks compare the method with the exact optimum of :func:`pipecert.testing.brute_force`
on small random graphs (at most ``ContractSettings.max_nodes`` nodes) of four families,
:data:`FAMILIES`: ``random`` (mixed cost regimes, DNN-like chains, precedence edges),
``extreme`` (costs 1e-9 next to 1e9 and zeros), ``ties`` (unit costs: many optimal
partitions) and ``zero`` (zero communication, or all work on one node); and on the cases of
every constrained variant of :data:`pipecert.testing.VARIANTS`. They go through the
framework's gate (``method.run``) and the machinery of :mod:`pipecert.testing`
(:func:`~pipecert.testing.check_run`), so a method is held to exactly what the harness and
``pipecert run`` check. A check that does not apply to the method (``exact_meets_optimum``
for a method that is not ``exact``, ``unsupported_variants`` for a method claiming every
constraint) raises :class:`CheckNotApplicable`, which pytest reports as a skip with the
reason; it never passes silently.

Formulation checks (:data:`FORMULATION_CHECKS`): ``metadata``, ``typed_results``,
``bound_valid[FAMILY]``, ``bound_valid_with_context``, ``exact_meets_optimum``,
``unsupported_variants``, ``variant[VARIANT]``, ``deterministic``.
Heuristic checks (:data:`HEURISTIC_CHECKS`): ``metadata``, ``typed_results``,
``feasible_partition[FAMILY]``, ``objective_at_least_optimum[FAMILY]``, ``respects_k``,
``unsupported_variants``, ``variant[VARIANT]``, ``deterministic``.
An improvement step (a heuristic that refines the incumbent partition it finds in the run
context, ``SolveContext.partition``) passes the heuristic checks and
``never_worse_than_incumbent[INCUMBENT]`` (:data:`IMPROVER_CHECKS`) for a one-stage, a
random feasible and an optimal incumbent.

This module imports pytest (the ``dev`` extra); it imports no formulation or heuristic
package, so it checks any object with the methods of
:class:`formulations.base.Formulation` or :class:`heuristics.base.Heuristic`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, ClassVar, Literal, Protocol, cast

import numpy as np
import pytest

from pipecert.instance import CONSTRAINTS, Instance
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.registry import Method, Registry, parse_method_spec
from pipecert.results import (
    BOUND_ATOL,
    BOUND_RTOL,
    BoundResult,
    Budget,
    HeuristicResult,
    RunOutcome,
    SolveContext,
    Status,
)
from pipecert.testing import (
    VARIANTS,
    VariantCase,
    assert_bound_valid,
    check_formulation,
    check_heuristic,
    check_run,
    claimed_constraints,
    enumerate_partitions,
    meets_optimum,
    small_cases,
    variant_cases,
    with_extreme_costs,
)

__all__ = [
    "CheckNotApplicable",
    "ContractSettings",
    "FAMILIES",
    "INCUMBENTS",
    "FORMULATION_CHECKS",
    "HEURISTIC_CHECKS",
    "IMPROVER_CHECKS",
    "Kind",
    "contract_checks",
    "check_contract",
    "parametrize_with_checks",
    "family_cases",
    "FormulationContract",
    "HeuristicContract",
    "ImproverContract",
]

#: The kinds of method a contract exists for.
Kind = Literal["formulation", "heuristic", "improver"]

#: The families of small unconstrained cases (name: what its instances are).
FAMILIES: dict[str, str] = {
    "random": "random DAGs of the three cost regimes (compute-heavy, communication-heavy, "
              "mixed), DNN-like chains with skip edges and weights, precedence edges",
    "extreme": "the same graphs with costs 1e-9 next to 1e9 and zeros (ratios of 1e18)",
    "ties": "the same graphs with unit costs and some zeros: many optimal partitions",
    "zero": "the same graphs with zero communication, all work on one node, or both",
}

#: The incumbents an improvement step is given (name: what it is).
INCUMBENTS: dict[str, str] = {
    "one_stage": "every node in stage 0 (feasible without a memory cap)",
    "random": "a feasible partition drawn at random among all of them",
    "optimal": "an optimal partition (of brute force): an improver must keep its value",
}


class CheckNotApplicable(Exception):
    """The check does not apply to this method; the message says why (pytest: a skip)."""


@dataclass(frozen=True, slots=True)
class ContractSettings:
    """How many cases the checks run and how long each run may take.

    Parameters
    ----------
    n_cases : int
        Instances per family of :data:`FAMILIES`.
    max_nodes : int
        Largest instance (brute force enumerates every partition: keep it at most 8).
    variant_count : int
        Instances per constrained variant (:func:`pipecert.testing.variant_cases`).
    seed : int
        Seed of the generated cases and of the heuristics' random generators.
    time_limit_s : float
        Budget of every run.
    """

    n_cases: int = 8
    max_nodes: int = 7
    variant_count: int = 2
    seed: int = 0
    time_limit_s: float = 20.0


class _BoundMethod(Protocol):
    """What the checks call on a formulation (:class:`formulations.base.Formulation`)."""

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult: ...

    def run(self, instance: Instance, k: int, budget: Budget | None = None,
            context: SolveContext | None = None, *, raise_errors: bool = False,
            floor: bool = True) -> RunOutcome: ...


class _HeuristicMethod(Protocol):
    """What the checks call on a heuristic (:class:`heuristics.base.Heuristic`)."""

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult: ...

    def run(self, instance: Instance, k: int, budget: Budget | None = None,
            rng: np.random.Generator | int | None = None,
            context: SolveContext | None = None, *,
            raise_errors: bool = False) -> RunOutcome: ...


Check = Callable[[Method, ContractSettings], None]


# ----------------------------------------------------------------------------- cases
def _zero_costs(instance: Instance, i: int) -> Instance:
    """Zero communication (i % 3 == 0), all work on one node (1), or both (2)."""
    n = instance.n_nodes
    w = np.array(instance.work, dtype=np.float64)
    c = np.array(instance.comm, dtype=np.float64)
    if i % 3 in (1, 2):
        heavy = int(np.argmax(w))
        w = np.zeros(n)
        w[heavy] = 1.0
    if i % 3 in (0, 2):
        c = np.zeros(n)
    return instance.replace(work=w, comm=c, name=f"{instance.name}-zero")


@lru_cache(maxsize=64)
def family_cases(family: str, n_cases: int = 8, max_nodes: int = 7,
                 seed: int = 0) -> tuple[VariantCase, ...]:
    """The cases of ``family`` (a key of :data:`FAMILIES`): ``n_cases`` instances, each
    with k = 1, 2 and 3, and every third one also with k = n + 1 (more stages than nodes).

    Each case carries its brute-force optimum (``case.opt``, computed once and cached).
    Deterministic in the arguments.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    out: list[VariantCase] = []
    gen = np.random.default_rng([seed, list(FAMILIES).index(family)])
    for i, inst in enumerate(small_cases(n_cases, seed=seed, max_nodes=max_nodes)):
        if family == "extreme":
            inst = with_extreme_costs(inst, gen)
        elif family == "ties":
            inst = with_extreme_costs(inst, gen, ties=True)
        elif family == "zero":
            inst = _zero_costs(inst, i)
        ks = [1, 2, 3] + ([inst.n_nodes + 1] if i % 3 == 0 else [])
        out.extend(VariantCase(inst, k, family, i) for k in sorted(set(ks)))
    return tuple(out)


def _cases(family: str, s: ContractSettings) -> tuple[VariantCase, ...]:
    return family_cases(family, s.n_cases, s.max_nodes, s.seed)


def _where(method: Method, case: VariantCase) -> str:
    return f"{method.method_id()} on {case.instance.name} (k={case.k}, OPT={case.opt})"


def _budget(s: ContractSettings) -> Budget:
    return Budget(time_limit_s=s.time_limit_s)


def _tol(x: float) -> float:
    return BOUND_ATOL + BOUND_RTOL * abs(x)


def _nothing_checked(method: Method, what: str) -> AssertionError:
    return AssertionError(
        f"{method.method_id()} answered unsupported on every case of {what}: the contract "
        "checked nothing; a method must support the paper's problem on small graphs "
        "(check its supports())")


def _k_eff(instance: Instance, k: int) -> int:
    return min(k, instance.n_nodes)


def _supported(method: Method, instance: Instance, k: int) -> bool:
    ok, _ = method.supports_variant(instance)
    if ok:
        ok, _ = method.supports(instance, _k_eff(instance, k))
    return ok


# ----------------------------------------------------------------------------- common
def check_metadata(method: Method, s: ContractSettings) -> None:
    """The class registers (a lowercase ``name``, concrete), its ``method_id`` parses back
    to the same method, its docstring has a summary line (``pipecert list``), its
    capability sets name known constraints, and its optional modules are installed."""
    cls = type(method)
    try:  # the registry's own validation
        Registry[Method]("contract", cls).register(cls)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{cls.__name__} cannot be registered: {exc}") from None
    try:
        mid = method.method_id()
    except AttributeError as exc:
        raise AssertionError(
            f"{cls.__name__}: cannot render its method id ({exc}); store every keyword-only "
            "constructor argument as an attribute of the same name, so the method can be "
            "rebuilt from its id") from None
    name, params = parse_method_spec(mid)
    assert name == method.name, f"{mid}: method_id does not start with name {method.name!r}"
    try:
        again = cls(**params)
    except TypeError as exc:
        raise AssertionError(
            f"{mid}: cannot rebuild the method from its id ({exc}); take every parameter as "
            "a keyword-only constructor argument and store it as an attribute of the same "
            "name") from None
    assert again.method_id() == mid, (
        f"{mid}: rebuilt from its id it reads {again.method_id()!r}; store each constructor "
        "argument unchanged as an attribute of the same name")
    assert method.summary(), f"{mid}: the class needs a docstring (its first line is listed)"
    unknown = (set(method.handles) | set(method.relaxes)) - set(CONSTRAINTS)
    assert not unknown, f"{mid}: handles/relaxes name unknown constraints {sorted(unknown)}"
    if _is_formulation(method):
        assert "data_only_edges" not in method.relaxes, (
            f"{mid}: data-only edges cannot be relaxed (treating them as ordering restricts "
            "the problem); handle them or leave them unclaimed")
    else:
        assert not method.relaxes, \
            f"{mid}: a heuristic relaxes nothing (its partition must be feasible); use handles"
    ok, reason = method.is_available()
    assert ok, f"{mid}: {reason}"


def _check_typed_bound(method: Method, case: VariantCase, s: ContractSettings) -> None:
    where = _where(method, case)
    res = cast(_BoundMethod, method).lower_bound(
        case.instance, _k_eff(case.instance, case.k), _budget(s), SolveContext())
    assert isinstance(res, BoundResult), f"{where}: lower_bound returned {type(res).__name__}, " \
        "not a BoundResult"
    assert isinstance(res.status, Status), f"{where}: status {res.status!r} is not a Status"
    if res.bound is not None:
        assert isinstance(res.bound, numbers.Real) and not isinstance(res.bound, bool), \
            f"{where}: bound {res.bound!r} is not a real number"
        assert not math.isnan(res.bound), f"{where}: bound is NaN (return None instead)"
    assert res.partition is None or isinstance(res.partition, Partition), \
        f"{where}: partition {type(res.partition).__name__} is not a Partition"
    _check_stats(where, res.stats)
    assert isinstance(res.log, tuple) and all(isinstance(t, tuple) for t in res.log), \
        f"{where}: log must be a tuple of (time_s, bound, incumbent) tuples"


def _check_typed_heuristic(method: Method, case: VariantCase, s: ContractSettings) -> None:
    where = _where(method, case)
    res = cast(_HeuristicMethod, method).solve(
        case.instance, _k_eff(case.instance, case.k), _budget(s),
        np.random.default_rng(s.seed), SolveContext())
    assert isinstance(res, HeuristicResult), \
        f"{where}: solve returned {type(res).__name__}, not a HeuristicResult"
    assert isinstance(res.status, Status), f"{where}: status {res.status!r} is not a Status"
    assert res.partition is None or isinstance(res.partition, Partition), \
        f"{where}: partition {type(res.partition).__name__} is not a Partition"
    _check_stats(where, res.stats)
    assert isinstance(res.history, tuple) and all(
        isinstance(t, tuple) and len(t) == 3 for t in res.history), \
        f"{where}: history must be a tuple of (time_s, evaluations, best_value) tuples"


def _check_stats(where: str, stats: Any) -> None:
    assert isinstance(stats, Mapping), f"{where}: stats must be a mapping"
    bad = [key for key in stats if not isinstance(key, str)]
    assert not bad, f"{where}: stats keys must be strings, got {bad[:3]!r}"


def check_typed_results(method: Method, s: ContractSettings) -> None:
    """``lower_bound`` returns a :class:`BoundResult` (``solve`` a :class:`HeuristicResult`)
    with a :class:`Status`, a real bound or None (never NaN), a :class:`Partition` or None,
    string-keyed stats and a tuple log, on supported unconstrained cases."""
    checked = 0
    for case in _cases("random", s)[:12]:
        if not _supported(method, case.instance, case.k):
            continue
        if _is_formulation(method):
            _check_typed_bound(method, case, s)
        else:
            _check_typed_heuristic(method, case, s)
        checked += 1
    if not checked:
        raise _nothing_checked(method, "the random family")


def _is_formulation(method: Method) -> bool:
    return hasattr(method, "lower_bound")


def check_unsupported_variants(method: Method, s: ContractSettings) -> None:
    """On an instance with an active constraint the method does not claim (``handles``,
    and for a bound ``relaxes``), the run is ``unsupported`` with a reason, no bound and no
    partition: a method never answers a different problem."""
    claimed = claimed_constraints(method)
    checked = 0
    for variant in VARIANTS:
        for case in variant_cases(variant, s.variant_count, seed=s.seed):
            missing = case.instance.constraints - claimed
            if not missing:
                continue
            out = _gate(method, case.instance, case.k, s)
            where = f"{method.method_id()} on {case.instance.name} (k={case.k})"
            assert out.status is Status.UNSUPPORTED, (
                f"{where}: the method does not claim {sorted(missing)} but returned "
                f"{out.status}: it must return unsupported (declare `handles`/`relaxes` only "
                "for what it models)")
            assert out.error, f"{where}: unsupported without a reason"
            assert out.bound is None and out.partition is None, \
                f"{where}: unsupported with a bound or a partition"
            checked += 1
    if not checked:
        raise CheckNotApplicable(f"{method.method_id()} claims every constraint "
                                 f"({', '.join(sorted(claimed))})")


def check_variant(method: Method, s: ContractSettings, variant: str) -> None:
    """Every case of the constrained ``variant`` through the gate and
    :func:`pipecert.testing.check_run`: unclaimed constraints give ``unsupported``, proven
    infeasibility ``infeasible``, a bound is at most OPT, a partition is feasible for the
    whole variant and worth at least OPT (a heuristic: the same value again with the
    same seed)."""
    if _is_formulation(method):
        check_formulation(method, variants=(variant,), count=s.variant_count, seed=s.seed,
                          time_limit_s=s.time_limit_s)
    else:
        check_heuristic(method, variants=(variant,), count=s.variant_count, seed=s.seed,
                        time_limit_s=s.time_limit_s)


def _gate(method: Method, instance: Instance, k: int, s: ContractSettings,
          context: SolveContext | None = None, seed: int | None = None,
          floor: bool = False) -> RunOutcome:
    if _is_formulation(method):
        return cast(_BoundMethod, method).run(instance, k, _budget(s), context, floor=floor)
    gen = np.random.default_rng(s.seed if seed is None else seed)
    return cast(_HeuristicMethod, method).run(instance, k, _budget(s), gen, context)


# ----------------------------------------------------------------------------- formulations
def check_bound_valid(method: Method, s: ContractSettings, family: str) -> None:
    """On every case of ``family``, the method's own bound (``run(floor=False)``, without
    the framework's combinatorial floor) is at most OPT within ``BOUND_RTOL``/
    ``BOUND_ATOL``, a partition found on the way is feasible and worth at least OPT, and
    nothing ends in ``error``."""
    checked = 0
    for case in _cases(family, s):
        out = check_run(method, case.instance, case.k, solution=case.solution,
                        time_limit_s=s.time_limit_s, floor=False)
        checked += out.status is not Status.UNSUPPORTED
    if not checked:
        raise _nothing_checked(method, f"the {family} family")


def check_bound_valid_with_context(method: Method, s: ContractSettings) -> None:
    """Given what the harness passes between runs (the optimum as ``upper_bound`` and
    ``partition``, half of it as a proven ``lower_bound``: warm starts, cutoffs,
    ``T >= lower_bound``), the bound is still at most OPT and the run does not fail."""
    checked = 0
    for case in _cases("random", s):
        opt, part = case.solution
        assert part is not None  # unconstrained: one stage is always feasible
        ctx = SolveContext(upper_bound=opt, partition=part, lower_bound=opt / 2)
        out = _gate(method, case.instance, case.k, s, context=ctx)
        where = f"{_where(method, case)} with the optimum as context"
        assert out.status is not Status.ERROR, f"{where}: error: {out.error}"
        if out.status is Status.UNSUPPORTED:
            continue
        assert_bound_valid(out.bound, opt, where)
        checked += 1
    if not checked:
        raise _nothing_checked(method, "the random family")


def check_exact_meets_optimum(method: Method, s: ContractSettings) -> None:
    """An ``exact`` formulation that reports ``optimal`` reports OPT (up to its documented
    safety margin, :func:`pipecert.testing.meets_optimum`), and does so on at least one
    small case."""
    if not getattr(method, "exact", False):
        raise CheckNotApplicable(f"{method.method_id()} is not exact (exact = False)")
    optimal = 0
    for case in _cases("random", s):
        out = _gate(method, case.instance, case.k, s, floor=False)
        if out.status is Status.OPTIMAL:
            assert out.bound is not None and meets_optimum(out.bound, case.opt, out.stats), \
                f"{_where(method, case)}: exact method reports optimal {out.bound}"
            optimal += 1
    assert optimal, (f"{method.method_id()} is declared exact but never reported optimal on "
                     f"{len(_cases('random', s))} graphs of at most {s.max_nodes} nodes")


def _same_bound_outcome(a: RunOutcome, b: RunOutcome) -> bool:
    return a.status is b.status and a.bound == b.bound


def check_deterministic(method: Method, s: ContractSettings) -> None:
    """The same run twice gives the same result: a formulation the same status and bound;
    a heuristic the same partition with the same seed, and, if it declares
    ``deterministic = True``, with another seed too."""
    checked = 0
    for case in _cases("random", s)[:9]:
        where = _where(method, case)
        first = _gate(method, case.instance, case.k, s)
        if first.status is Status.UNSUPPORTED:
            continue
        again = _gate(method, case.instance, case.k, s)
        if _is_formulation(method):
            assert _same_bound_outcome(first, again), (
                f"{where}: {first.status} {first.bound!r} then {again.status} "
                f"{again.bound!r}: a bound must not depend on the run")
        else:
            assert _same_partition(first, again), \
                f"{where}: two runs with seed {s.seed} return different partitions"
            if getattr(method, "deterministic", False):
                other = _gate(method, case.instance, case.k, s, seed=s.seed + 1)
                assert _same_partition(first, other), (
                    f"{where}: declared deterministic but seeds {s.seed} and {s.seed + 1} "
                    "give different partitions")
        checked += 1
    if not checked:
        raise _nothing_checked(method, "the random family")


def _same_partition(a: RunOutcome, b: RunOutcome) -> bool:
    if a.partition is None or b.partition is None:
        return a.partition is None and b.partition is None and a.status is b.status
    return bool(np.array_equal(a.partition.stage_of, b.partition.stage_of))


# ----------------------------------------------------------------------------- heuristics
def check_feasible_partition(method: Method, s: ContractSettings, family: str) -> None:
    """On every case of ``family`` the run returns a partition, feasible for at most k
    stages, whose value is its reference cost (:func:`pipecert.evaluate`); or, with a
    reason, none (one stage is feasible here: an improvement step run without an
    incumbent may decline, a search heuristic should not)."""
    checked = 0
    for case in _cases(family, s):
        where = _where(method, case)
        out = _gate(method, case.instance, case.k, s)
        if out.status is Status.UNSUPPORTED:
            assert out.error, f"{where}: unsupported without a reason"
            continue
        assert out.status is not Status.ERROR, f"{where}: error: {out.error}"
        checked += 1
        if out.partition is None:
            assert out.error, \
                f"{where}: no partition ({out.status}) and no reason, but one stage is feasible"
            continue
        problems = check_feasible(case.instance, out.partition, k=case.k)
        assert not problems, f"{where}: infeasible partition: {problems[0]}"
        value = evaluate(case.instance, out.partition)
        assert out.incumbent == value, \
            f"{where}: the run reports {out.incumbent!r}, the reference cost is {value!r}"
    if not checked:
        raise _nothing_checked(method, f"the {family} family")


def check_objective_at_least_optimum(method: Method, s: ContractSettings,
                                     family: str) -> None:
    """On every case of ``family`` the partition is worth at least OPT (a value below is
    a bug in the cost or feasibility code), and exactly OPT when the run says
    ``optimal``."""
    checked = 0
    for case in _cases(family, s):
        out = check_run(method, case.instance, case.k, solution=case.solution,
                        time_limit_s=s.time_limit_s, seed=s.seed)
        checked += out.status is not Status.UNSUPPORTED
    if not checked:
        raise _nothing_checked(method, f"the {family} family")


def check_respects_k(method: Method, s: ContractSettings) -> None:
    """``solve`` uses stages ``0..k-1`` only, for k = 1, 2, n (every node its own stage)
    and the gate's k >= n (``solve`` is called with k = n)."""
    checked = 0
    for case in _cases("random", s)[:12]:
        inst = case.instance
        n = inst.n_nodes
        for k in sorted({1, 2, n}):
            if not _supported(method, inst, k):
                continue
            where = f"{method.method_id()} on {inst.name} (k={k})"
            res = cast(_HeuristicMethod, method).solve(
                inst, k, _budget(s), np.random.default_rng(s.seed), SolveContext())
            checked += 1
            if res.partition is None:
                continue  # feasible_partition says whether that is allowed
            stages = res.partition.stage_of
            assert stages.size == n, f"{where}: {stages.size} stage indices for {n} nodes"
            assert stages.size == 0 or (stages.min() >= 0 and stages.max() < k), (
                f"{where}: stages {int(stages.min())}..{int(stages.max())} used, only "
                f"0..{k - 1} allowed")
    if not checked:
        raise _nothing_checked(method, "the random family")


def check_never_worse_than_incumbent(method: Method, s: ContractSettings,
                                     incumbent: str) -> None:
    """An improvement step given a feasible incumbent in the run context
    (``SolveContext.partition`` and its value as ``upper_bound``) returns a feasible
    partition worth at most the incumbent: ``incumbent`` is ``one_stage``, ``random`` (a
    feasible partition drawn at random) or ``optimal``."""
    checked = 0
    gen = np.random.default_rng([s.seed, list(INCUMBENTS).index(incumbent)])
    for case in _cases("random", s):
        inst, k = case.instance, case.k
        start = _incumbent(case, incumbent, gen)
        start_value = evaluate(inst, start)
        ctx = SolveContext(upper_bound=start_value, partition=start)
        where = f"{_where(method, case)} from the {incumbent} incumbent ({start_value})"
        out = _gate(method, inst, k, s, context=ctx)
        if out.status is Status.UNSUPPORTED:
            continue
        assert out.status is not Status.ERROR, f"{where}: error: {out.error}"
        assert out.partition is not None, \
            f"{where}: no partition ({out.status}: {out.error}) although one was given"
        problems = check_feasible(inst, out.partition, k=k)
        assert not problems, f"{where}: infeasible partition: {problems[0]}"
        value = evaluate(inst, out.partition)
        assert value <= start_value + _tol(start_value), \
            f"{where}: returned {value}, worse than the incumbent it was given"
        assert value >= case.opt - _tol(case.opt), f"{where}: value {value} < OPT: cost bug"
        checked += 1
    if not checked:
        raise _nothing_checked(method, "the random family")


def _incumbent(case: VariantCase, kind: str, gen: np.random.Generator) -> Partition:
    inst, k = case.instance, case.k
    if kind == "one_stage":
        return Partition(np.zeros(inst.n_nodes, dtype=np.int64), k)
    if kind == "optimal":
        part = case.solution[1]
        assert part is not None
        return part
    if kind == "random":
        rows = enumerate_partitions(inst, k, compact=True)
        return Partition(rows[int(gen.integers(len(rows)))].astype(np.int64), k)
    raise ValueError(f"unknown incumbent {kind!r}; known: {', '.join(INCUMBENTS)}")


# ----------------------------------------------------------------------------- tables
def _family_checks(prefix: str, func: Callable[..., None]) -> dict[str, Check]:
    return {f"{prefix}[{f}]": partial(func, family=f) for f in FAMILIES}


_VARIANT_CHECKS: dict[str, Check] = {f"variant[{v}]": partial(check_variant, variant=v)
                                     for v in VARIANTS}

#: Check id -> check, for a formulation, in the order they run.
FORMULATION_CHECKS: dict[str, Check] = {
    "metadata": check_metadata,
    "typed_results": check_typed_results,
    **_family_checks("bound_valid", check_bound_valid),
    "bound_valid_with_context": check_bound_valid_with_context,
    "exact_meets_optimum": check_exact_meets_optimum,
    "unsupported_variants": check_unsupported_variants,
    **_VARIANT_CHECKS,
    "deterministic": check_deterministic,
}

#: Check id -> check, for a heuristic, in the order they run.
HEURISTIC_CHECKS: dict[str, Check] = {
    "metadata": check_metadata,
    "typed_results": check_typed_results,
    **_family_checks("feasible_partition", check_feasible_partition),
    **_family_checks("objective_at_least_optimum", check_objective_at_least_optimum),
    "respects_k": check_respects_k,
    "unsupported_variants": check_unsupported_variants,
    **_VARIANT_CHECKS,
    "deterministic": check_deterministic,
}

#: Check id -> check, for an improvement step: the heuristic checks and these.
IMPROVER_CHECKS: dict[str, Check] = {
    **HEURISTIC_CHECKS,
    **{f"never_worse_than_incumbent[{i}]": partial(check_never_worse_than_incumbent,
                                                     incumbent=i) for i in INCUMBENTS},
}


def _table(method: Method, kind: Kind | None) -> dict[str, Check]:
    if kind is None:
        kind = "formulation" if _is_formulation(method) else "heuristic"
    if kind == "formulation":
        if not _is_formulation(method):
            raise TypeError(f"{method!r} has no lower_bound: not a formulation")
        return FORMULATION_CHECKS
    if not hasattr(method, "solve"):
        raise TypeError(f"{method!r} has no solve: not a heuristic")
    return IMPROVER_CHECKS if kind == "improver" else HEURISTIC_CHECKS


def contract_checks(method: Method, *, kind: Kind | None = None,
                    settings: ContractSettings | None = None
                    ) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(check_id, check)`` for every check of the contract of ``method``.

    Parameters
    ----------
    method : Method
        A formulation or heuristic instance (configured with the parameters to check).
    kind : {"formulation", "heuristic", "improver"}, optional
        Which contract; default: ``formulation`` if the method has ``lower_bound``, else
        ``heuristic``. An improvement step asks for ``"improver"``.
    settings : ContractSettings, optional
        Case counts and time limit.

    Yields
    ------
    (str, callable)
        A call raises :class:`AssertionError` saying what to fix, or
        :class:`CheckNotApplicable` with the reason the check does not apply.
    """
    s = settings or ContractSettings()
    for check_id, func in _table(method, kind).items():
        yield check_id, partial(func, method, s)


def check_contract(method: Method, *, kind: Kind | None = None,
                   settings: ContractSettings | None = None) -> dict[str, str]:
    """Run every check of the contract of ``method`` (see :func:`contract_checks`).

    Returns
    -------
    dict
        ``{check_id: "passed" | "not applicable: REASON"}``.

    Raises
    ------
    AssertionError
        At the first failed check, its message prefixed with the check id.
    """
    report: dict[str, str] = {}
    for check_id, check in contract_checks(method, kind=kind, settings=settings):
        try:
            check()
        except CheckNotApplicable as exc:
            report[check_id] = f"not applicable: {exc}"
            continue
        except AssertionError as exc:
            raise AssertionError(f"[{check_id}] {exc}") from exc
        report[check_id] = "passed"
    return report


def _run_or_skip(check: Callable[[], None]) -> None:
    try:
        check()
    except CheckNotApplicable as exc:
        pytest.skip(str(exc))


def parametrize_with_checks(methods: Sequence[Method], *, kind: Kind | None = None,
                            settings: ContractSettings | None = None) -> pytest.MarkDecorator:
    """A ``pytest.mark.parametrize`` over every check of every method, with ids
    ``METHOD_ID-CHECK_ID``; the test takes one argument, ``check``, and calls it.

    Examples
    --------
    ::

        @parametrize_with_checks([MyBound(), MyBound(strong=True)])
        def test_contract(check):
            check()
    """
    params = []
    for method in methods:
        for check_id, check in contract_checks(method, kind=kind, settings=settings):
            params.append(pytest.param(partial(_run_or_skip, check),
                                       id=f"{method.method_id()}-{check_id}"))
    return pytest.mark.parametrize("check", params)


# ----------------------------------------------------------------------------- classes
class _Contract:
    """Shared part of the pytest contract classes: the ``method`` fixture to define and the
    ``settings`` to override (a :class:`ContractSettings`)."""

    settings: ClassVar[ContractSettings] = ContractSettings()
    checks: ClassVar[dict[str, Check]] = {}

    @pytest.fixture
    def method(self) -> Method:
        """The method to check: override this fixture in the subclass."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `method` fixture returning the "
            "formulation or heuristic to check")

    def _check(self, check_id: str, method: Method) -> None:
        _run_or_skip(partial(self.checks[check_id], method, self.settings))


class FormulationContract(_Contract):
    """The contract of a lower bound, one test per check (see the module docstring).

    Subclass it as ``Test...`` and define the fixture ``method``; set ``settings`` to run
    more or fewer cases.
    """

    checks: ClassVar[dict[str, Check]] = FORMULATION_CHECKS

    def test_metadata(self, method: Method) -> None:
        """Registers, rebuilds from its id, documented, known constraints, available."""
        self._check("metadata", method)

    def test_typed_results(self, method: Method) -> None:
        """``lower_bound`` returns a well-typed :class:`BoundResult`."""
        self._check("typed_results", method)

    @pytest.mark.parametrize("family", list(FAMILIES))
    def test_bound_valid(self, method: Method, family: str) -> None:
        """The bound is at most the brute-force optimum on every case of the family."""
        self._check(f"bound_valid[{family}]", method)

    def test_bound_valid_with_context(self, method: Method) -> None:
        """Still valid with the optimum and a lower bound as context."""
        self._check("bound_valid_with_context", method)

    def test_exact_meets_optimum(self, method: Method) -> None:
        """An exact method at ``optimal`` reports OPT."""
        self._check("exact_meets_optimum", method)

    def test_unsupported_variants(self, method: Method) -> None:
        """Unclaimed constraints give ``unsupported`` with a reason."""
        self._check("unsupported_variants", method)

    @pytest.mark.parametrize("variant", list(VARIANTS))
    def test_variant(self, method: Method, variant: str) -> None:
        """Every case of a constrained variant through the gate and ``check_run``."""
        self._check(f"variant[{variant}]", method)

    def test_deterministic(self, method: Method) -> None:
        """The same run twice gives the same status and bound."""
        self._check("deterministic", method)


class HeuristicContract(_Contract):
    """The contract of a heuristic, one test per check (see the module docstring).

    Subclass it as ``Test...`` and define the fixture ``method``; set ``settings`` to run
    more or fewer cases.
    """

    checks: ClassVar[dict[str, Check]] = HEURISTIC_CHECKS

    def test_metadata(self, method: Method) -> None:
        """Registers, rebuilds from its id, documented, known constraints, available."""
        self._check("metadata", method)

    def test_typed_results(self, method: Method) -> None:
        """``solve`` returns a well-typed :class:`HeuristicResult`."""
        self._check("typed_results", method)

    @pytest.mark.parametrize("family", list(FAMILIES))
    def test_feasible_partition(self, method: Method, family: str) -> None:
        """A feasible partition, re-scored by the reference cost, on every case."""
        self._check(f"feasible_partition[{family}]", method)

    @pytest.mark.parametrize("family", list(FAMILIES))
    def test_objective_at_least_optimum(self, method: Method, family: str) -> None:
        """The partition's value is at least the brute-force optimum."""
        self._check(f"objective_at_least_optimum[{family}]", method)

    def test_respects_k(self, method: Method) -> None:
        """``solve`` uses stages ``0..k-1`` only."""
        self._check("respects_k", method)

    def test_unsupported_variants(self, method: Method) -> None:
        """Unclaimed constraints give ``unsupported`` with a reason."""
        self._check("unsupported_variants", method)

    @pytest.mark.parametrize("variant", list(VARIANTS))
    def test_variant(self, method: Method, variant: str) -> None:
        """Every case of a constrained variant through the gate and ``check_run``."""
        self._check(f"variant[{variant}]", method)

    def test_deterministic(self, method: Method) -> None:
        """The same seed gives the same partition (any seed, if deterministic)."""
        self._check("deterministic", method)


class ImproverContract(HeuristicContract):
    """The contract of an improvement step: a heuristic that refines the incumbent it finds
    in the run context (``SolveContext.partition``); the heuristic checks and
    ``never_worse_than_incumbent``."""

    checks: ClassVar[dict[str, Check]] = IMPROVER_CHECKS

    @pytest.mark.parametrize("incumbent", list(INCUMBENTS))
    def test_never_worse_than_incumbent(self, method: Method, incumbent: str) -> None:
        """Given a feasible incumbent, the result is feasible and worth at most as much."""
        self._check(f"never_worse_than_incumbent[{incumbent}]", method)
