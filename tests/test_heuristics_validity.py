"""Every registered heuristic, on brute-force cases: feasible, >= OPT, reproducible by seed.

The list of methods is read from the registry at collection time, so a heuristic added
later is tested with no edit here. Methods that are exact (``downset_dp``) must hit OPT.
"""

import numpy as np
import pytest

from heuristics import HEURISTICS
from pipecert.results import Budget
from pipecert.testing import check_heuristic, worked_example

#: methods whose result must equal OPT on the brute-force cases
EXACT = {"downset_dp"}
#: expensive presets are checked on fewer cases (same checks)
FEWER = {"brkga-10000": 6, "brkga": 6}


@pytest.fixture(scope="module", autouse=True)
def _compiled() -> None:
    """Compile (or load from cache) the numba kernels before any timed budget starts."""
    inst = worked_example()
    for name in HEURISTICS.names():
        HEURISTICS.make(name).run(inst, 2, Budget(), 0)


@pytest.mark.parametrize("name", HEURISTICS.names())
def test_heuristic_is_feasible_no_better_than_opt_and_reproducible(name: str) -> None:
    method = HEURISTICS.make(name)
    checked = check_heuristic(method, count=FEWER.get(name, 24), seed=11,
                              time_limit_s=120.0, exact=name in EXACT)
    assert checked == FEWER.get(name, 24) * 4


@pytest.mark.parametrize("name", HEURISTICS.names())
def test_heuristic_run_reports_a_graded_partition(name: str) -> None:
    inst = worked_example()
    out = HEURISTICS.make(name).run(inst, 2, Budget(), np.random.default_rng(0),
                                    raise_errors=True)
    assert out.partition is not None, f"{name} returned no partition on the worked example"
    assert out.incumbent is not None and out.incumbent >= 10.0 - 1e-9, \
        f"{name}: value {out.incumbent} below OPT 10 of the worked example at k=2"
