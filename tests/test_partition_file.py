"""The partition file (schema 2, provenance, old files) and partitions with k > n in O(n)."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from pipecert import FormatError, Instance, Partition, block_cost, check_feasible, evaluate
from pipecert.partition import FULL_LISTING_MAX_K, stage_costs
from pipecert.partition_file import (
    PARTITION_FORMAT,
    PARTITION_VERSION,
    PartitionFile,
    json_safe,
    partition_json,
)
from pipecert.testing import random_dag, worked_example

HEADER_KEYS = {"format", "version", "k", "value", "lower_bound", "gap", "units", "cost_model",
               "variant",
               "graph", "found_by", "proved_by", "solvers", "pipecert_version", "seed",
               "time_s", "created", "stages"}


def _example_with_units() -> Instance:
    inst = worked_example()
    return inst.replace(memory=[1.0, 2.0, 3.0, 4.0, 5.0], metadata={
        "units": {"work": "ms", "comm": "ms", "memory": "bytes"},
        "cost_model": {"kind": "roofline", "hardware": {"name": "a100"}},
    })


def test_file_carries_its_provenance_and_reads_back(tmp_path):
    inst = _example_with_units()
    part = Partition.from_stages(inst, [["a", "b", "c"], ["d", "e"]], k=2)
    f = tmp_path / "p.json"
    part.write(f, inst, graph_path="w.json", lower_bound=12.0, found_by="bfs_order",
               proved_by="node_bound", solvers={"highspy": "1.0"}, seed=3, time_s=1.5)
    data = json.loads(f.read_text())
    assert set(data) == HEADER_KEYS
    assert data["format"] == PARTITION_FORMAT and data["version"] == PARTITION_VERSION
    assert data["k"] == 2 and data["value"] == evaluate(inst, part) == 15.0
    assert data["lower_bound"] == 12.0 and data["gap"] == pytest.approx(0.2)
    assert data["units"] == {"work": "ms", "comm": "ms", "memory": "bytes", "time": "ms"}
    assert data["cost_model"]["hardware"]["name"] == "a100"
    g = data["graph"]
    assert g["path"] == "w.json" and g["name"] == inst.name
    assert (g["n_nodes"], g["n_edges"]) == (5, 6)
    assert g["structure_fingerprint"] == inst.structure_fingerprint
    assert g["fingerprint"] == inst.fingerprint
    assert (data["found_by"], data["proved_by"], data["seed"]) == ("bfs_order", "node_bound", 3)
    assert data["solvers"] == {"highspy": "1.0"} and data["created"].endswith("+00:00")
    assert Partition.read(f, inst) == part
    pf = PartitionFile.read(f)
    assert pf.k == 2 and pf.version == 2 and pf.structure_fingerprint == \
        inst.structure_fingerprint
    assert pf.structure_mismatch(inst) is None
    # costs changed, structure not: same structure, another fingerprint
    other_costs = inst.replace(work=inst.work * 2)
    assert pf.structure_mismatch(other_costs) is None
    assert other_costs.fingerprint != data["graph"]["fingerprint"]


def test_old_files_still_read():
    inst = worked_example()
    pf = PartitionFile.from_json({"k": 3, "stages": [["a", "b", "c"], ["d", "e"]]})
    assert pf.version == 1 and pf.k == 3 and pf.structure_fingerprint is None
    assert pf.structure_mismatch(inst) is None  # nothing recorded: nothing to warn about
    assert pf.partition(inst) == Partition([0, 0, 0, 1, 1], k=3)
    no_k = PartitionFile.from_json({"stages": [["a", "b", "c"], ["d", "e"]]})
    assert no_k.k is None and no_k.partition(inst).k == 2
    assert Partition.from_json({"stages": [["a", "b", "c", "d", "e"]]}, inst).k == 1


@pytest.mark.parametrize("data, needle", [
    ([1, 2], "must be"),
    ({"k": 2}, "must be"),
    ({"format": "pipecert-instance", "stages": []}, "not a partition file"),
    ({"format": PARTITION_FORMAT, "version": PARTITION_VERSION + 1, "stages": []}, "newer"),
    ({"format": PARTITION_FORMAT, "version": "2", "stages": []}, "version"),
    ({"k": 1, "stages": [["a"], ["b"]]}, "2 stage lists for k = 1"),
    ({"k": 0, "stages": []}, "k"),
    ({"k": 2.5, "stages": []}, "k"),
    ({"stages": [["a", 1.5]]}, "node id"),
    ({"stages": "a b"}, "list of lists"),
])
def test_malformed_files_name_the_file(data, needle):
    with pytest.raises(FormatError) as exc:
        PartitionFile.from_json(data, source="p.json")
    assert str(exc.value).startswith("p.json: ") and needle in str(exc.value)


def test_unreadable_files_are_input_errors(tmp_path):
    bad = tmp_path / "b.json"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(FormatError, match="UTF-8"):
        PartitionFile.read(bad)
    deep = tmp_path / "d.json"
    deep.write_text('{"stages": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(FormatError):
        PartitionFile.read(deep)
    with pytest.raises(FormatError, match="unknown node 'zz'"):
        PartitionFile.from_json({"stages": [["zz"]]}, source="p").partition(worked_example())


def test_structure_mismatch_names_both_graphs():
    a = worked_example()
    b = random_dag(1, 6, name="other")
    pf = PartitionFile.from_json(partition_json(Partition([0] * 6, 1), b, graph_path="o.json"),
                                 source="p.json")
    msg = pf.structure_mismatch(a)
    assert msg is not None and "p.json" in msg and "'other'" in msg and "o.json" in msg
    assert pf.structure_mismatch(b) is None


def test_json_safe_never_writes_infinity():
    obj = json_safe({"a": float("inf"), "b": [float("nan"), 1.0], "c": np.float64(2.0),
                     "d": object()})
    assert obj["a"] is None and obj["b"] == [None, 1.0] and obj["c"] == 2.0
    json.dumps(obj, allow_nan=False)


# ------------------------------------------------------------------ k > n in O(n)
def _hand_stage_costs(inst: Instance, stage_of: np.ndarray) -> dict[int, float]:
    """f(S_b) of every non-empty stage, one block_cost call per stage (the reference)."""
    return {int(b): block_cost(inst, np.flatnonzero(stage_of == b)) for b in np.unique(stage_of)}


@pytest.mark.parametrize("seed", range(6))
def test_costs_with_k_above_n_match_the_reference(seed):
    rng = np.random.default_rng(seed)
    inst = random_dag(seed, 12, name=f"r{seed}")
    n = inst.n_nodes
    for k, high in ((n + 1, n + 1), (10**12, n), (10**12, 10**12), (3 * n, 3 * n)):
        labels = rng.integers(0, min(high, k), size=n)
        part = Partition(labels, k)
        sc = stage_costs(inst, part)
        hand = _hand_stage_costs(inst, labels)
        got = dict(zip(sc.stages.tolist(), sc.total.tolist()))
        listed = k if k <= FULL_LISTING_MAX_K else n  # every stage, or at most n
        assert len(got) <= listed and sc.k == k and sc.n_unlisted == k - len(got)
        for b, cost in got.items():
            assert cost == pytest.approx(hand.get(b, 0.0), rel=1e-12, abs=1e-12)
        assert set(hand) <= set(got)
        assert evaluate(inst, part) == pytest.approx(max(hand.values()), rel=1e-12)
        assert sc.bottleneck_stage == min(b for b, c in hand.items() if c == max(hand.values()))
        # the same stages compacted cost the same
        assert evaluate(inst, part.compact()) == pytest.approx(evaluate(inst, part), rel=1e-12)
        lists = part.stages(inst)
        assert len(lists) <= listed and sum(map(len, lists)) == n


def test_practical_k_keeps_every_stage():
    """Up to 65,536 stages (or n) every stage has an entry: code may index costs by stage."""
    inst = worked_example()
    for k in (5, 8, FULL_LISTING_MAX_K):
        part = Partition([0, 0, 0, 1, 1], k=k)
        sc = stage_costs(inst, part)
        assert sc.total.tolist() == [15.0, 9.0] + [0.0] * (k - 2) and sc.stage_index is None
        assert part.stages(inst) == [["a", "b", "c"], ["d", "e"]] + [[]] * (k - 2)
    part = Partition([0, 0, 0, 1, 1], k=FULL_LISTING_MAX_K + 1)  # above: at most n entries
    assert stage_costs(inst, part).total.tolist() == [15.0, 9.0, 0.0, 0.0, 0.0]
    assert len(part.stages(inst)) == 5


def test_huge_k_allocates_o_of_n():
    inst = random_dag(3, 200, name="r")
    k = 10**9
    labels = np.sort(np.random.default_rng(0).integers(0, 8, size=200))
    tracemalloc.start()
    try:
        part = Partition.from_stages(inst, [[inst.ids[i] for i in np.flatnonzero(labels == b)]
                                            for b in range(8)], k=k)
        stage_costs(inst, part)
        check_feasible(inst, part, k=k)
        check_feasible(inst.replace(memory=np.ones(200)), part, memory_limit=1.0)
        part.compact()
        obj = partition_json(part, inst)
        sparse = Partition(labels * (k // 8), k)
        stage_costs(inst, sparse)
        sparse.stages(inst)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # a length-k float array alone would be 8 GB
    assert obj["k"] == k and len(obj["stages"]) == 8  # trailing empty stages not listed
    back = PartitionFile.from_json(obj).partition(inst)
    assert back.k == k and evaluate(inst, back) == evaluate(inst, part)


def test_memory_violation_names_the_real_stage():
    inst = worked_example().replace(memory=[1.0, 1.0, 1.0, 5.0, 1.0])
    part = Partition([0, 0, 0, 10**8, 10**8], k=10**9)
    assert check_feasible(inst, part, memory_limit=4.0) == [
        "stage 100000000 uses memory 6 > limit 4"]


def test_stage_lists_refuse_labels_outside_k():
    from pipecert import InputError

    for labels in ([0, -1], [0, 2]):
        with pytest.raises(InputError, match="outside 0..1"):
            Partition(labels, 2).stages()


def test_written_partition_file_has_umask_permissions(tmp_path: Path) -> None:
    """The atomic write must not leave the file private (mkstemp's 0600)."""
    import os
    import stat

    from pipecert.partition_file import write_partition_json

    umask = os.umask(0o022)
    try:
        out = tmp_path / "p.partition.json"
        write_partition_json(out, {"format": "pipecert-partition", "version": 2, "k": 1,
                                   "stages": [["a"]]})
        assert stat.S_IMODE(out.stat().st_mode) == 0o644
    finally:
        os.umask(umask)


def test_file_records_the_variant_it_solves(tmp_path):
    from pipecert.testing import random_training_dag

    inst = random_training_dag(3, 4, memory="binding")
    part = Partition([0] * inst.n_nodes, k=2)
    data = part.to_json(inst)
    v = data["variant"]
    assert v["constraints"] == ["data_only_edges", "groups", "memory"]
    assert v["memory_limit"] == inst.memory_limit
    assert v["stage_memory"][0] == pytest.approx(float(inst.memory.sum()))
    assert v["feasible"] is False  # everything in one stage exceeds the binding cap
    plain = Partition([0, 0, 1], k=2).to_json(
        Instance(["a", "b", "c"], [1, 1, 1], [1, 1, 0], [("a", "b"), ("b", "c")]))
    assert plain["variant"] == {"constraints": [], "memory_limit": None,
                                "stage_memory": None, "feasible": True}
