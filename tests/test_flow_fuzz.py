"""Min-cut bounds on extreme cost ranges: the shared fuzz cases and a hypothesis property.

Every graded ``run`` of ``node_bound`` and ``path_bound`` (the parameter variants used in the
README and the tests) must end with no bound or a bound ``<= OPT`` (brute force, at most
1e-9 relative; an optimum of 0 allows 0 only), and never in status ``error``: costs that mix
1e-9 with 1 or 1e9, huge floats, ties and zeros, for every k from 1 to n + 2.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from formulations.node_bound import NodeBound
from formulations.node_bound import clear_cache as clear_node_cache
from formulations.path_bound import PathBound
from formulations.path_bound import clear_cache as clear_path_cache
from instances import read_instance
from pipecert.instance import Instance
from pipecert.results import Budget, Status
from pipecert.testing import brute_force

FUZZ = SHARED / "fuzz-cases"
REL = 1e-9

#: (id, factory): the defaults and the parameter variants of the README and tests/test_spine.py
METHODS = [
    ("node_bound", lambda: NodeBound()),
    ("path_bound", lambda: PathBound()),
    ("path_bound[pairs=0]", lambda: PathBound(pairs=0)),
    ("path_bound[cover=3,max_len=4]", lambda: PathBound(cover=3, max_len=4)),
    ("path_bound[paths=all5]", lambda: PathBound(paths="work,work_comm,count,node,comm")),
    ("node_bound[engine=ortools]", lambda: NodeBound(engine="ortools")),
    ("path_bound[engine=ortools]", lambda: PathBound(engine="ortools")),
]


def _fuzz_files() -> list[Path]:
    files = sorted(FUZZ.glob("*.json"))
    assert files, f"{FUZZ} holds no fuzz case: clone the repository next to shared/"
    return files


def _check(inst: Instance, k: int, opt: float, where: str) -> None:
    """Every method x (graded, floor=False): status not error, bound None or <= OPT."""
    for name, make in METHODS:
        for floor in (True, False):
            clear_node_cache()
            clear_path_cache()
            out = make().run(inst, k, Budget(time_limit_s=20), floor=floor)
            what = f"{name} (floor={floor}) on {where}, k={k}"
            assert out.status is not Status.ERROR, f"{what}: error {out.error}"
            if out.bound is not None:
                assert out.bound <= opt + REL * abs(opt), (
                    f"{what}: bound {out.bound!r} above OPT {opt!r}: invalid")


@pytest.mark.parametrize("path", _fuzz_files(), ids=lambda p: p.stem)
def test_shared_fuzz_cases_give_valid_bounds_for_every_k(path: Path) -> None:
    inst = read_instance(path, keep_input_work=True)
    n = inst.n_nodes
    for k in range(1, n + 3):
        opt, _ = brute_force(inst, k)
        _check(inst, k, opt, path.name)


def test_case96_is_the_scaling_bug_and_path_bound_now_proves_a_bound() -> None:
    # the remainder of f(H) over the fixed charges (4.6e-4 next to 4.9e4) was computed as a
    # float difference and fell below the integer cut of S = H
    inst = read_instance(FUZZ / "case96-path-bound.json", keep_input_work=True)
    for k in range(1, 9):
        opt, _ = brute_force(inst, k)
        out = PathBound().run(inst, k, Budget(time_limit_s=20), floor=False)
        assert out.status is Status.BOUND, out.error
        assert out.bound is not None and 0.999 * opt <= out.bound <= opt


# ---------------------------------------------------------------------- property test

#: magnitudes of the independent checker's fuzzing: tiny next to one or a billion, huge
SCALES = (0.0, 1e-9, 1.0, 1e9, 1e200)


@st.composite
def extreme_dags(draw: st.DrawFn) -> Instance:
    n = draw(st.integers(1, 6))
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
    chosen = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    edges = [p for p, keep in zip(pairs, chosen) if keep]
    scales = draw(st.lists(st.sampled_from(SCALES), min_size=1, max_size=2, unique=True))
    tie = draw(st.booleans())  # every non-zero cost of a node equal: ties everywhere

    def costs() -> list[float]:
        out = []
        for _ in range(n):
            s = draw(st.sampled_from(scales))
            m = 1.0 if tie else draw(st.floats(0.5, 2.0))
            out.append(s * m)
        return out

    work, comm = costs(), costs()
    perm = draw(st.permutations(range(n)))  # node order unrelated to the topological one
    names = [f"v{perm[i]}" for i in range(n)]
    return Instance(names, work=work, comm=comm,
                    edges=[(names[u], names[v]) for u, v in edges], name="hypothesis")


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(extreme_dags())
def test_min_cut_bounds_valid_on_extreme_cost_mixes(inst: Instance) -> None:
    n = inst.n_nodes
    for k in range(1, n + 3):
        opt, _ = brute_force(inst, k)
        for name, make in METHODS[:4]:
            clear_node_cache()
            clear_path_cache()
            out = make().run(inst, k, Budget(time_limit_s=20), floor=False)
            what = f"{name} on w={inst.work.tolist()} c={inst.comm.tolist()} " \
                   f"edges={list(zip(inst.src.tolist(), inst.dst.tolist()))}, k={k}"
            assert out.status is not Status.ERROR, f"{what}: {out.error}"
            if out.bound is not None:
                assert out.bound <= opt + REL * abs(opt), f"{what}: {out.bound!r} > OPT {opt!r}"
