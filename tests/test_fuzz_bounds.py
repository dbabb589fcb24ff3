"""Every lower bound on extreme cost ranges, vs brute-force optima (docs/methods/lower-bounds.md).

Two parts, both over every registered formulation (the ``FORMULATIONS`` registry, read at
collection time, so a new bound is fuzzed with no test edit), the parameter variants that
once failed (:data:`VARIANTS`), and every installed backend of the MIP bounds (``best``,
which runs the others, on its default backend):

(a) the fixed regression cases of ``../shared/fuzz-cases`` (graphs on which an independent
    checker found invalid bounds or errors), for every k in 1..n+2: the graded
    :meth:`Formulation.run` (``floor=False``, no context) gives a bound that is None or at
    most OPT within 1e-9 relative, never ``error``; on :data:`CONTEXT_SOLVERS`, with the
    optimum as context (upper bound, partition, and the combinatorial bound as a proven lower
    bound), it never errors either.
(b) a hypothesis property test over small DAGs (n <= 7) whose costs mix 1e-9 with 1 or 1e9,
    huge floats (1e200), exact ties, zeros and all-zero communication.

The tolerance is :data:`RTOL` = 1e-9 relative (plus 1e-300 absolute): an excess of 5e-6
relative, as exact_mip once returned on ``case1130``, fails.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulations import FORMULATIONS
from formulations.base import combinatorial_bound
from formulations.mip import MipFormulation, available_solvers
from instances import read_instance
from pipecert.instance import Instance
from pipecert.partition import Partition
from pipecert.results import Budget, SolveContext, Status
from pipecert.testing import brute_force, make_formulation

pytestmark = pytest.mark.solver

SHARED = Path(os.environ.get("PIPECERT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
FUZZ_DIR = SHARED / "fuzz-cases"
#: Largest accepted excess of a bound over OPT, relative.
RTOL = 1e-9
#: Parameter variants run besides each formulation's defaults (the fuzz README's failures).
VARIANTS = ("exact_mip[form=assign]", "exact_mip[prefix_cuts=True,symmetry=True]",
            "guess[variant=min]")
#: Backends also run with the optimum as context on the fixed cases (cutoff, warm start,
#: ``T >= lower bound``): the default one, the integer one (CP-SAT rounds the context's
#: bounds), and ``None`` for the non-MIP bounds (``best`` passes its context to the bounds
#: it runs, which are checked here one by one). The others share these code paths.
CONTEXT_SOLVERS = (None, "highs", "cpsat")
#: Hypothesis examples per (formulation, backend).
MAX_EXAMPLES = 6
#: Per-run time limit: the models are tiny; a limit only guards against a hang.
TIME_LIMIT_S = 20.0


def _specs() -> list[tuple[str, str | None]]:
    """``(spec, solver)`` pairs: every formulation and variant, on every backend it takes."""
    solvers = available_solvers()
    out: list[tuple[str, str | None]] = []
    for spec in [*FORMULATIONS.names(), *VARIANTS]:
        name = spec.split("[")[0]
        cls = FORMULATIONS.get(name)
        if issubclass(cls, MipFormulation):
            out += [(spec, s) for s in solvers]
        else:  # not a MIP (best runs its components, each fuzzed on every backend here)
            out.append((spec, None))
    return out


_make = make_formulation


def _fuzz_files() -> list[Path]:
    assert FUZZ_DIR.is_dir(), (f"{FUZZ_DIR} not found: clone the repository next to shared/ "
                               "or set PIPECERT_SHARED")
    files = sorted(FUZZ_DIR.glob("*.json"))
    assert files, f"no fuzz case in {FUZZ_DIR}"
    return files


@cache
def _case(path: str) -> Instance:
    return read_instance(path, keep_input_work=True)


@cache
def _opt(path: str, k: int) -> tuple[float, Partition]:
    return brute_force(_case(path), k)


def _check(method, inst: Instance, k: int, opt: float, opt_part: Partition,
           where: str, *, with_context: bool) -> None:
    out = method.run(inst, k, Budget(time_limit_s=TIME_LIMIT_S), floor=False)
    assert out.status is not Status.ERROR, f"{where}: {out.error}"
    if out.status is Status.UNSUPPORTED:
        assert out.error, f"{where}: unsupported without a reason"
        return
    assert out.bound is None or out.bound <= opt * (1 + RTOL) + 1e-300, \
        f"{where}: bound {out.bound!r} > OPT {opt!r}"
    if with_context:
        ctx = SolveContext(upper_bound=opt, partition=opt_part,
                           lower_bound=combinatorial_bound(inst, k))
        out = method.run(inst, k, Budget(time_limit_s=TIME_LIMIT_S), ctx)
        assert out.status is not Status.ERROR, f"{where} (context): {out.error}"
        assert out.bound is None or out.bound <= opt * (1 + RTOL) + 1e-300, \
            f"{where} (context): bound {out.bound!r} > OPT {opt!r}"


# ------------------------------------------------------------------------- (a) fixed cases
@pytest.mark.parametrize(("spec", "solver"), _specs(),
                         ids=lambda x: str(x) if x is not None else "-")
def test_fuzz_cases_give_valid_bounds(spec: str, solver: str | None) -> None:
    """Every fuzz case, every k in 1..n+2: a valid bound or none, never an error."""
    method = _make(spec, solver)
    for path in _fuzz_files():
        inst = _case(str(path))
        for k in range(1, inst.n_nodes + 3):
            opt, opt_part = _opt(str(path), k)
            where = f"{method.method_id()} [{solver}] on {path.name} (k={k}, OPT={opt!r})"
            _check(method, inst, k, opt, opt_part, where,
                   with_context=solver in CONTEXT_SOLVERS and spec != "best")


# ------------------------------------------------------------------------- (b) property test
#: Cost values that break floating-point solvers: tiny next to large, huge, ties, zeros.
EXTREME = [0.0, 0.0, 1e-9, 2e-9, 1.0, 1.0, 3.0, 1e9, 1e200, 0.5, 7.0]


@st.composite
def extreme_dags(draw: st.DrawFn) -> tuple[Instance, int]:
    """A DAG on 1..7 nodes with extreme costs and a k in 1..n+2."""
    n = draw(st.integers(1, 7))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    mask = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = [p for p, m in zip(pairs, mask, strict=True) if m]
    regime = draw(st.sampled_from(["mixed", "zero_comm", "huge", "tiny_vs_large", "ties"]))
    if regime == "huge":
        vals = st.sampled_from([0.0, 1e200, 3e200, 1.0, 1e-9])
    elif regime == "tiny_vs_large":
        vals = st.sampled_from([0.0, 1e-9, 3e-9, 1e9, 2e9])
    elif regime == "ties":
        vals = st.sampled_from([0.0, 1.0])
    else:
        vals = st.sampled_from(EXTREME)
    work = draw(st.lists(vals, min_size=n, max_size=n))
    comm = [0.0] * n if regime == "zero_comm" else draw(st.lists(vals, min_size=n, max_size=n))
    perm = draw(st.permutations(list(range(n))))
    names = [f"n{perm[i]}" for i in range(n)]
    inst = Instance(names, work=work, comm=comm,
                    edges=[(names[a], names[b]) for a, b in edges], name="fuzz")
    k = draw(st.integers(1, n + 2))
    return inst, k


@pytest.mark.parametrize(("spec", "solver"), _specs(),
                         ids=lambda x: str(x) if x is not None else "-")
def test_extreme_costs_property(spec: str, solver: str | None) -> None:
    """Hypothesis over extreme cost mixes: the graded bound is None or <= OPT."""
    method = _make(spec, solver)

    @settings(derandomize=True, deadline=None, max_examples=MAX_EXAMPLES, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(extreme_dags())
    def prop(case: tuple[Instance, int]) -> None:
        inst, k = case
        opt, part = brute_force(inst, k)
        where = f"{method.method_id()} [{solver}] on n={inst.n_nodes}, k={k}, " \
                f"w={inst.work.tolist()}, c={inst.comm.tolist()}, OPT={opt!r}"
        _check(method, inst, k, opt, part, where, with_context=solver in CONTEXT_SOLVERS)

    prop()
