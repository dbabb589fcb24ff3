"""The one cache helper (:mod:`pipecert.memo`) and the caches built on it.

* :class:`~pipecert.memo.Memo` is a least-recently-used table with a size bound, safe across
  threads, that stores nothing when the computation raises;
* :func:`~pipecert.memo.instance_key` keys by :attr:`Instance.fingerprint`: equal graphs
  share an entry, any changed cost or constraint gets its own;
* no cache is kept on the (immutable) instance and none is keyed by ``id()``: the package
  sources are checked for the old patterns, and running methods leaves the instance's
  attributes to its own cached properties.
"""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipecert import Budget, Instance
from pipecert.memo import Memo, clear_all, instance_key, memos
from pipecert.testing import dnn_chain, random_dag, worked_example

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipecert", "instances", "formulations", "heuristics", "portfolio", "experiments",
            "runtime", "paper_figures", "cli")


# ---------------------------------------------------------------------------- Memo
def test_memo_keeps_the_most_recently_used_values_up_to_its_size() -> None:
    m: Memo[str, int] = Memo("test.lru", maxsize=2)
    m.put("a", 1)
    m.put("b", 2)
    assert m.get("a") == 1  # "a" is now the most recently used
    m.put("c", 3)  # evicts "b", the least recently used
    assert "b" not in m and m.get("a") == 1 and m.get("c") == 3
    assert len(m) == 2
    m.put("a", 10)  # replacing keeps the size
    assert len(m) == 2 and m.get("a") == 10
    assert m.pop("a") == 10 and m.pop("a") is None
    m.clear()
    assert len(m) == 0 and m.get("c") is None


def test_get_or_compute_computes_once_and_stores_nothing_on_error() -> None:
    m: Memo[str, int] = Memo("test.compute", maxsize=4)
    calls: list[int] = []

    def seven() -> int:
        calls.append(7)
        return 7

    assert m.get_or_compute("x", seven) == 7
    assert m.get_or_compute("x", lambda: 8) == 7
    assert calls == [7]

    def boom() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        m.get_or_compute("y", boom)
    assert "y" not in m


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_memo_size_must_be_a_positive_integer(size: object) -> None:
    with pytest.raises(ValueError, match="maxsize must be an integer >= 1"):
        Memo("test.bad", maxsize=size)  # type: ignore[arg-type]


def test_memo_is_safe_across_threads_and_callers_share_one_value() -> None:
    m: Memo[int, object] = Memo("test.threads", maxsize=8)
    start = threading.Barrier(8)
    got: list[object] = []
    lock = threading.Lock()

    def slow() -> object:
        time.sleep(0.01)
        return object()

    def worker(i: int) -> None:
        start.wait()
        for j in range(200):
            m.put(100 + (i * 200 + j) % 50, j)  # churn: evictions under contention
        value = m.get_or_compute(1, slow)
        with lock:
            got.append(value)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(m) <= 8
    assert len({id(v) for v in got}) == 1  # the first value stored is everybody's


def test_memos_are_listed_and_cleared_together() -> None:
    a: Memo[str, int] = Memo("test.all-a", maxsize=2)
    b: Memo[str, int] = Memo("test.all-b", maxsize=2)
    a.put("k", 1)
    b.put("k", 2)
    names = [x.name for x in memos()]
    assert {"test.all-a", "test.all-b"} <= set(names) and names == sorted(names)
    clear_all()
    assert len(a) == 0 and len(b) == 0
    assert "maxsize=2" in repr(a)


# ---------------------------------------------------------------------------- the key
def test_instance_key_is_the_fingerprint_and_the_parameters() -> None:
    a, b = worked_example(), worked_example()
    assert a is not b
    assert instance_key(a) == instance_key(b) == (a.fingerprint,)
    assert instance_key(a, 2.5, "ortools") == (a.fingerprint, 2.5, "ortools")
    assert instance_key(a, 1) != instance_key(a, 2)
    cheaper = Instance.from_arrays(list(a.ids), a.work * 0.5, a.comm, a.src, a.dst,
                                   a.prec_src, a.prec_dst, name=a.name)
    assert instance_key(cheaper) != instance_key(a)


def test_equal_graphs_share_the_derived_arrays_and_changed_costs_do_not() -> None:
    from heuristics.decoder import order_arrays
    from heuristics.slicing import kernel_arrays

    a = random_dag(3, 12)
    b = Instance.from_arrays(list(a.ids), a.work.copy(), a.comm.copy(), a.src, a.dst,
                             a.prec_src, a.prec_dst, name="another name")
    assert order_arrays(a) is order_arrays(b)
    assert kernel_arrays(a) is kernel_arrays(b)
    c = Instance.from_arrays(list(a.ids), a.work + 1.0, a.comm, a.src, a.dst,
                             a.prec_src, a.prec_dst, name=a.name)
    assert kernel_arrays(c) is not kernel_arrays(a)
    assert np.array_equal(kernel_arrays(c).work, a.work + 1.0)


def test_the_reductions_keep_the_input_name_for_equal_graphs() -> None:
    from heuristics.downset_dp import reduce_instance

    base = dnn_chain(3, 40)  # weight nodes of zero work: the reductions apply
    twin = Instance.from_arrays(list(base.ids), base.work, base.comm, base.src, base.dst,
                                base.prec_src, base.prec_dst, name="twin")
    red_a, kept_a, _ = reduce_instance(base)
    red_b, kept_b, _ = reduce_instance(twin)
    assert red_a.n_nodes < base.n_nodes
    assert red_a.name == f"{base.name}[reduced]" and red_b.name == "twin[reduced]"
    assert np.array_equal(kept_a, kept_b)


def test_the_cut_network_is_shared_by_fingerprint_and_engine() -> None:
    from formulations._maxflow import network_for

    a, b = worked_example(), worked_example()
    assert network_for(a, "numba") is network_for(b, "numba")
    assert network_for(a, "numba") is not network_for(a, "scipy-dinic")


# ---------------------------------------------------------------------------- no stray caches
def test_running_methods_stores_nothing_on_the_instance() -> None:
    from formulations import FORMULATIONS
    from heuristics import HEURISTICS

    inst = dnn_chain(2, 30)
    before = set(vars(inst))
    for spec in ("brkga-100", "downset_dp", "local_search[base=bfs_order]"):
        HEURISTICS.make(spec).run(inst, 3, Budget(time_limit_s=20), 0)
    for spec in ("combinatorial", "node_bound", "path_bound"):
        FORMULATIONS.make(spec).run(inst, 3, Budget(time_limit_s=20))
    cached = {name for name in vars(type(inst))
              if type(getattr(type(inst), name, None)).__name__ == "cached_property"}
    added = set(vars(inst)) - before
    assert added <= cached, added - cached


def _is_id_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "id")


def _module_names(tree: ast.Module) -> set[str]:
    """Names bound at module level (where a cache table would live)."""
    names: set[str] = set()
    for node in tree.body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _calls(tree: ast.AST) -> list[str]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                out.append(f.id)
            elif isinstance(f, ast.Attribute):
                out.append(f.attr)
    return out


def test_no_hand_written_cache_is_left_in_the_packages() -> None:
    """Caches go through pipecert.memo: no ``__dict__`` stash, no ``id()`` key, no
    hand-written FIFO (``popitem``/``OrderedDict``) anywhere else in the packages."""
    bad = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")) if (REPO / pkg).is_dir() else []:
            if path == REPO / "pipecert" / "memo.py":
                continue
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
            rel = path.relative_to(REPO)
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and node.attr == "__dict__":
                    bad.append(f"{rel}:{node.lineno}: __dict__")
                if isinstance(node, ast.Name) and node.id == "OrderedDict":
                    bad.append(f"{rel}:{node.lineno}: OrderedDict")
            calls = _calls(tree)
            if "popitem" in calls:
                bad.append(f"{rel}: popitem")
            tables = _module_names(tree)
            for node in ast.walk(tree):
                # a module-level table keyed by id(...): TABLE[id(x)], TABLE.get(id(x))
                if (isinstance(node, ast.Subscript) and _is_id_call(node.slice)
                        and isinstance(node.value, ast.Name) and node.value.id in tables):
                    bad.append(f"{rel}:{node.lineno}: {node.value.id}[id(...)]")
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name)
                        and node.func.value.id in tables
                        and any(_is_id_call(a) for a in node.args)):
                    bad.append(f"{rel}:{node.lineno}: {node.func.value.id}.{node.func.attr}"
                               "(id(...))")
                # the key of a cache computed as id(...)
                if (isinstance(node, ast.Assign) and _is_id_call(node.value)
                        and any(isinstance(t, ast.Name) and "key" in t.id
                                for t in node.targets)):
                    bad.append(f"{rel}:{node.lineno}: key = id(...)")
    assert not bad, "\n".join(bad)
