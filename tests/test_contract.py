"""The public contract suite (:mod:`pipecert.contract`) itself: one test id per check, the
three entry points agree, in-tree methods pass, and each check rejects the method that
breaks its rule (a cheater per check)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from formulations.base import Formulation
from formulations.combinatorial import CombinatorialBound
from heuristics.base import Heuristic
from pipecert import (
    CONSTRAINTS,
    BoundResult,
    Budget,
    HeuristicResult,
    Instance,
    Partition,
    SolveContext,
    Status,
)
from pipecert.contract import (
    FAMILIES,
    FORMULATION_CHECKS,
    HEURISTIC_CHECKS,
    IMPROVER_CHECKS,
    CheckNotApplicable,
    ContractSettings,
    FormulationContract,
    HeuristicContract,
    ImproverContract,
    check_contract,
    contract_checks,
    family_cases,
    parametrize_with_checks,
)

FAST = ContractSettings(n_cases=4, variant_count=1, time_limit_s=10.0)


def _class_check_ids(cls: type) -> set[str]:
    """The check ids a contract class runs: one per test, expanded over its parameters."""
    ids = set()
    for attr in dir(cls):
        if not attr.startswith("test_"):
            continue
        marks = [m for m in getattr(getattr(cls, attr), "pytestmark", [])
                 if m.name == "parametrize"]
        base = attr.removeprefix("test_")
        if not marks:
            ids.add(base)
        for m in marks:
            ids.update(f"{base}[{v}]" for v in m.args[1])
    return ids


@pytest.mark.parametrize(("cls", "table"), [(FormulationContract, FORMULATION_CHECKS),
                                            (HeuristicContract, HEURISTIC_CHECKS),
                                            (ImproverContract, IMPROVER_CHECKS)])
def test_every_check_is_one_test_of_its_class(cls: type, table: dict[str, Any]) -> None:
    assert _class_check_ids(cls) == set(table)


def test_families_hold_the_cases_they_promise() -> None:
    extreme = family_cases("extreme", 4)
    values = np.concatenate([np.r_[c.instance.work, c.instance.comm] for c in extreme])
    assert values.max() / values[values > 0].min() >= 1e17  # 1e-9 next to 1e9
    ties = family_cases("ties", 4)
    assert all(set(np.r_[c.instance.work, c.instance.comm]) <= {0.0, 1.0} for c in ties)
    zero = family_cases("zero", 4)
    assert any(not c.instance.comm.any() for c in zero)
    assert any(np.count_nonzero(c.instance.work) == 1 for c in zero)
    for family in FAMILIES:
        cases = family_cases(family, 4)
        assert any(c.k > c.instance.n_nodes for c in cases)  # more stages than nodes
        assert all(np.isfinite(c.opt) for c in cases)


def test_check_contract_reports_every_check_of_an_in_tree_bound() -> None:
    report = check_contract(CombinatorialBound(), settings=FAST)
    assert list(report) == list(FORMULATION_CHECKS)
    assert report["exact_meets_optimum"].startswith("not applicable: ")
    assert report["bound_valid[extreme]"] == "passed"


@parametrize_with_checks([CombinatorialBound()], settings=FAST)
def test_the_decorator_runs_every_check(check: Any) -> None:
    check()


def test_the_kind_must_match_the_method() -> None:
    with pytest.raises(TypeError, match="not a formulation"):
        list(contract_checks(_Ignores(), kind="formulation"))
    ids = [i for i, _ in contract_checks(_Ignores(), kind="improver")]
    assert ids == list(IMPROVER_CHECKS)


# ------------------------------------------------------------------ cheaters
def _slices(instance: Instance, k: int) -> Partition:
    order = instance.topo_order
    n = len(order)
    return Partition.from_slices(order, [round(n * (b + 1) / k) for b in range(k - 1)], k)


class _TooHigh(Formulation):
    """Reports the total work: above OPT whenever splitting helps."""

    name = "t_too_high"

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult:
        return BoundResult(instance.total_work, Status.SOLVED)


class _NaN(Formulation):
    """Returns NaN as its bound."""

    name = "t_nan"

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult:
        return BoundResult(float("nan"), Status.BOUND)


class _FalseExact(Formulation):
    """Declared exact; reports 0 as optimal."""

    name = "t_false_exact"
    exact: ClassVar[bool] = True

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult:
        return BoundResult(0.0, Status.OPTIMAL)


class _Drifts(Formulation):
    """A bound that changes from one run to the next."""

    name = "t_drifts"

    def __init__(self) -> None:
        self.calls = 0

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult:
        self.calls += 1
        return BoundResult(float(instance.work.max()) / (1 + self.calls), Status.SOLVED)


class _Forgets(Formulation):
    """Takes a parameter but does not store it: cannot be rebuilt from its id."""

    name = "t_forgets"

    def __init__(self, *, strength: int = 1) -> None:
        self.strength_ = strength

    def lower_bound(self, instance: Instance, k: int, budget: Budget,
                    context: SolveContext | None = None) -> BoundResult:
        return BoundResult(0.0, Status.SOLVED)


class _BadName(Heuristic):
    """A name the registry refuses."""

    name = "Bad Name"

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult:
        return HeuristicResult(None, Status.NO_SOLUTION)


class _TooManyStages(Heuristic):
    """Puts every node in its own stage, whatever k."""

    name = "t_too_many_stages"

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult:
        return HeuristicResult(Partition(np.argsort(instance.topo_order), instance.n_nodes),
                               Status.FEASIBLE)


class _Ignores(Heuristic):
    """Claims no constraint but overrides the gate's variant check: runs on any instance."""

    name = "t_ignores"

    def supports_variant(self, instance: Any) -> tuple[bool, str | None]:
        return True, None

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult:
        return HeuristicResult(Partition(np.zeros(instance.n_nodes, np.int64), k),
                               Status.FEASIBLE)


class _Random(Heuristic):
    """Declared deterministic, yet slices at a random position."""

    name = "t_random"
    deterministic: ClassVar[bool] = True

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult:
        n = instance.n_nodes
        cut = int(rng.integers(0, n + 1))
        return HeuristicResult(Partition.from_slices(instance.topo_order, [cut], max(k, 2))
                               if k >= 2 else Partition(np.zeros(n, np.int64), k),
                               Status.FEASIBLE)


class _Overwrites(Heuristic):
    """An 'improver' that ignores the incumbent and returns equal-count slices."""

    name = "t_overwrites"
    handles: ClassVar[frozenset[str]] = frozenset()

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult:
        return HeuristicResult(_slices(instance, k), Status.FEASIBLE)


class _ClaimsEverything(Heuristic):
    """Claims every constraint, models none (slices the topological order)."""

    name = "t_claims_everything"
    handles: ClassVar[frozenset[str]] = frozenset(CONSTRAINTS)

    def solve(self, instance: Instance, k: int, budget: Budget, rng: np.random.Generator,
              context: SolveContext | None = None) -> HeuristicResult:
        return HeuristicResult(_slices(instance, k), Status.FEASIBLE)


#: (method, check id, what the failure says)
CHEATERS: list[tuple[Any, str, str]] = [
    (_TooHigh(), "bound_valid[random]", "invalid"),
    (_TooHigh(), "bound_valid[ties]", "invalid"),
    (_NaN(), "typed_results", "NaN"),
    (_FalseExact(), "exact_meets_optimum", "exact method reports optimal"),
    (_Drifts(), "deterministic", "must not depend on the run"),
    (_Forgets(strength=2), "metadata", "rebuilt from its id"),
    (_BadName(), "metadata", "cannot be registered: .* is not a lowercase name"),
    (_TooManyStages(), "respects_k", r"only 0\.\.0 allowed"),
    (_TooManyStages(), "feasible_partition[random]", "infeasible partition"),
    (_Ignores(), "unsupported_variants", "must return unsupported"),
    (_Random(), "deterministic", "declared deterministic"),
    (_ClaimsEverything(), "variant[groups]", "co-location group|infeasible partition"),
]


@pytest.mark.parametrize(("method", "check_id", "match"), CHEATERS,
                         ids=[f"{m.name}-{c}" for m, c, _ in CHEATERS])
def test_each_check_rejects_the_method_that_breaks_it(method: Any, check_id: str,
                                                      match: str) -> None:
    checks = dict(contract_checks(method, settings=FAST))
    with pytest.raises(AssertionError, match=match):
        checks[check_id]()


def test_an_improver_that_drops_the_incumbent_is_rejected() -> None:
    checks = dict(contract_checks(_Overwrites(), kind="improver", settings=FAST))
    with pytest.raises(AssertionError, match="worse than the incumbent"):
        checks["never_worse_than_incumbent[optimal]"]()


def test_check_contract_names_the_failed_check() -> None:
    with pytest.raises(AssertionError, match=r"^\[bound_valid\[random\]\] "):
        check_contract(_TooHigh(), settings=FAST)


def test_a_check_that_does_not_apply_says_why() -> None:
    checks = dict(contract_checks(CombinatorialBound(), settings=FAST))
    with pytest.raises(CheckNotApplicable, match="not exact"):
        checks["exact_meets_optimum"]()
    with pytest.raises(CheckNotApplicable, match="claims every constraint"):
        checks["unsupported_variants"]()
