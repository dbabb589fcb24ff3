"""The min-cut bounds stop when the budget says so and keep a valid value.

A cancel (SIGINT/SIGTERM) makes ``Budget.expired()`` true for every budget at once; it is
simulated here by patching ``Budget.expired`` to turn true after a number of calls, so the
bounds must notice it through the budgets they derive (``Budget.fraction``) too.
"""

from __future__ import annotations

import numpy as np
import pytest

from formulations import _maxflow
from formulations.node_bound import NodeBound
from formulations.node_bound import clear_cache as clear_node_cache
from formulations.path_bound import PathBound
from formulations.path_bound import clear_cache as clear_path_cache
from pipecert.results import Budget, Status
from pipecert.testing import brute_force, dnn_chain


def _fresh() -> None:
    clear_node_cache()
    clear_path_cache()
    _maxflow._NETWORKS.clear()


def _cancel_after(monkeypatch: pytest.MonkeyPatch, calls: int) -> list[int]:
    """Every budget expires after ``calls`` checks in total; returns the call counter."""
    count = [0]
    original = Budget.expired

    def expired(self: Budget) -> bool:
        count[0] += 1
        return count[0] > calls or original(self)

    monkeypatch.setattr(Budget, "expired", expired)
    return count


@pytest.mark.parametrize("calls", [0, 1, 3, 10, 40])
def test_cancelled_min_cut_bounds_keep_a_valid_bound(monkeypatch: pytest.MonkeyPatch,
                                                     calls: int) -> None:
    rng = np.random.default_rng(21)
    inst = dnn_chain(rng, 9)
    for k in (2, 3):
        opt, _ = brute_force(inst, k)
        _fresh()
        full = PathBound().run(inst, k, floor=False)
        assert full.bound is not None
        with monkeypatch.context() as m:
            _cancel_after(m, calls)
            _fresh()
            for method in (NodeBound(), PathBound()):
                out = method.run(inst, k, Budget(time_limit_s=60), floor=False)
                assert out.status in (Status.BOUND, Status.TIME_LIMIT), out.error
                assert out.bound is not None and out.bound <= opt * (1 + 1e-12)
                assert out.bound <= full.bound * (1 + 1e-12)


def test_cancel_stops_path_bound_within_a_few_max_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    from instances.resolve import resolve

    inst = resolve("default/comm-1000")[0].load()
    _fresh()
    full = PathBound().run(inst, 4, floor=False)
    flows_full = full.stats["max_flows"]
    assert flows_full > 20  # enough work to interrupt
    _fresh()
    _cancel_after(monkeypatch, 10)
    out = PathBound().run(inst, 4, Budget(time_limit_s=600), floor=False)
    assert out.status is Status.TIME_LIMIT
    assert out.bound is not None and full.bound is not None and out.bound <= full.bound
    # every path max flow follows a budget check: none once the budget has expired
    assert out.stats["max_flows"] <= 10
