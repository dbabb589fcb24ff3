"""The Dask executor: the same grid on a ``distributed.LocalCluster`` stores the same rows
(apart from times) as the local process pool."""

from __future__ import annotations

import pytest

from experiments.config import load_config
from experiments.harness import InstanceEntry, run_grid
from experiments.store import ResultsStore
from pipecert.testing import dnn_chain, random_dag

distributed = pytest.importorskip("distributed")

TIME_FIELDS = {"build_time_s", "solve_time_s", "wall_time_s", "started_at", "log", "stats",
               "host"}


def _rows(store: ResultsStore) -> list[tuple]:
    return sorted(tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in TIME_FIELDS)
                  for r in store.runs())


def test_dask_local_cluster_gives_the_same_rows_as_the_local_pool(tmp_path):
    entries = [InstanceEntry("r", random_dag(3, 9, name="r"), "test"),
               InstanceEntry("c", dnn_chain(4, 6, name="c"), "test")]
    cfg = load_config(None, {
        "experiment": {"name": "dask", "out": str(tmp_path)},
        "grid": {"instances": ["unused"], "k": [2, 3, 4],
                 "heuristics": ["input_order", "dfs_order", "brkga-100"],
                 "bounds": ["combinatorial", "node_bound", "path_bound"]},
        "budget": {"time_limit_s": 30.0, "grace_s": 30.0},
        "run": {"jobs": 2}})
    local = ResultsStore(tmp_path / "local.sqlite")
    run_grid(cfg, local, entries, executor="local")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        dask = ResultsStore(tmp_path / "dask.sqlite")
        res = run_grid(cfg, dask, entries, executor="dask", dask_client=client)
    assert res.n_errors == 0 and len(dask) == len(local) == 2 * 3 * 6
    assert _rows(dask) == _rows(local)
    assert dask.check().ok
