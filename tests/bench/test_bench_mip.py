"""Timings of the MIP layer: model building, backend hand-off, and the two exact-MIP forms.

Run with::

    pytest -o addopts="" tests/bench/test_bench_mip.py --benchmark-only

* building the exact MIP with about 10^5 binaries (nasnetalarge, 1,251 nodes, k = 81) with
  the vectorized :class:`~formulations.mip.ModelBuilder`;
* handing it to HiGHS (one ``passModel`` of the arrays) and compiling it with cvxpy;
* the exact MIP in the cumulative form vs Figure 3's assignment form, same time limit:
  ``extra_info`` records the bound and incumbent each one reaches (the issue measured
  HiGHS finding a partition at n = 1000, k = 16 only with the cumulative form).

Figures are quoted in the README section "Lower bounds".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from formulations import FORMULATIONS
from formulations.mip import Chain, ModelBuilder, ScaledCosts
from formulations.mip.backends import build_cvxpy_problem, build_highs
from instances.io import read_instance
from pipecert.instance import Instance
from pipecert.results import Budget

SHARED = Path(__file__).resolve().parents[3] / "shared" / "instances"


@pytest.fixture(scope="module")
def nasnet() -> Instance:
    return read_instance(str(SHARED / "pipedream/image_classification/nasnetalarge.graph.txt"))


def _exact_model(inst: Instance, k: int):
    costs = ScaledCosts.of(inst)
    mb = ModelBuilder()
    chain = Chain(mb, inst, costs, k)
    T = mb.add_block("T", (), lb=costs.lb_comb(k), ub=costs.upper(), cost=1.0)
    mb.add_le(chain.block_costs(list(range(1, k + 1))) - T.at(), 0.0)
    return mb.build()


def test_bench_build_1e5_binaries(benchmark, nasnet: Instance) -> None:
    model = benchmark.pedantic(_exact_model, args=(nasnet, 81), rounds=3, iterations=1)
    benchmark.extra_info.update(n_int=model.n_integer, n_vars=model.n_vars,
                                n_cons=model.n_cons, nnz=int(model.A.nnz))
    assert model.n_integer >= 100_000


def test_bench_highs_pass_model_1e5_binaries(benchmark, nasnet: Instance) -> None:
    model = _exact_model(nasnet, 81)
    h, _ = benchmark.pedantic(build_highs, args=(model,), rounds=3, iterations=1)
    assert h.getNumCol() == model.n_vars


def test_bench_cvxpy_compile_1e5_binaries(benchmark, nasnet: Instance) -> None:
    model = _exact_model(nasnet, 81)

    def compile_() -> object:
        prob = build_cvxpy_problem(model)[0]
        return prob.get_problem_data("SCIPY")

    benchmark.pedantic(compile_, rounds=1, iterations=1)


@pytest.mark.parametrize("form", ["cumulative", "assign"])
@pytest.mark.parametrize("k", [4, 16])
def test_bench_exact_mip_forms(benchmark, nasnet: Instance, form: str, k: int) -> None:
    method = FORMULATIONS.make(f"exact_mip[form='{form}']")
    out = benchmark.pedantic(method.run, args=(nasnet, k, Budget(time_limit_s=20.0)),
                             rounds=1, iterations=1)
    benchmark.extra_info.update(bound=out.bound, incumbent=out.incumbent,
                                status=str(out.status), n_int=out.stats.get("n_int"))
