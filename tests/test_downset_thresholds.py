"""The down-set DP's threshold passes and remainder-work pruning keep it exact.

``downset_solve`` runs passes with ``U = T`` for thresholds ``T`` climbing from the lower
bound ``max(W / k, max unit work)`` to the incumbent, on lattices of at least
``_T_SEARCH_MIN_IDEALS`` ideals; the random DAGs here are small, so the limit is set to 0
and every run with ``k >= 3`` and a finite incumbent makes the passes. Oracle: brute
force over all partitions (``pipecert.testing.brute_force``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import heuristics.downset_dp as ddp
from heuristics.downset_dp import DownsetDP
from pipecert.partition import check_feasible, evaluate
from pipecert.results import Status
from pipecert.testing import brute_force, random_constrained_dag, random_dag


@pytest.fixture(autouse=True)
def _passes_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ddp, "_T_SEARCH_MIN_IDEALS", 0)


def _check(inst, k: int) -> int:  # type: ignore[no-untyped-def]
    opt, _ = brute_force(inst, k)
    out = DownsetDP().run(inst, k, raise_errors=True)
    if math.isinf(opt):
        assert out.status is Status.INFEASIBLE
        return 0
    assert out.status is Status.OPTIMAL, out.error
    assert out.partition is not None and not check_feasible(inst, out.partition, k=k)
    assert out.incumbent is not None
    assert math.isclose(out.incumbent, opt, rel_tol=1e-9, abs_tol=1e-9), (out.incumbent, opt)
    assert math.isclose(evaluate(inst, out.partition), opt, rel_tol=1e-9, abs_tol=1e-9)
    return int(out.stats.get("threshold_passes", 1))


@pytest.mark.parametrize("regime", ["mixed", "comm", "compute"])
def test_threshold_passes_equal_brute_force(regime: str) -> None:
    multi = 0
    for seed in range(12):
        gen = np.random.default_rng(500 + seed)
        inst = random_dag(gen, int(gen.integers(5, 9)), regime=regime,
                          integer=seed % 2 == 0, zero_prob=0.2)
        for k in (3, 4, 5):
            multi += _check(inst, k) > 1
    assert multi > 0  # some run needed more than one pass


@pytest.mark.parametrize("memory", [None, "binding", "tight"])
def test_threshold_passes_equal_brute_force_constrained(memory: str | None) -> None:
    for seed in range(10):
        gen = np.random.default_rng(900 + seed)
        inst = random_constrained_dag(gen, int(gen.integers(5, 9)), groups=0.3,
                                      data_only=0.3, precedence_prob=0.1, memory=memory)
        for k in (3, 4):
            _check(inst, k)
