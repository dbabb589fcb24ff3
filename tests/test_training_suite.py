"""The bundled ``models-training`` suite: training graphs with groups, data-only edges, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

import instances
from instances.build_training_suite import SPECS, SUITE, memory_summary

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def test_suite_is_listed_with_every_spec():
    assert SUITE in instances.list_suites()
    ids = instances.suite_ids(SUITE)
    assert ids == [f"{SUITE}/{s.name}" for s in SPECS]
    assert 4 <= len(ids) <= 8


@pytest.mark.parametrize("entry", instances.suite_manifest(SUITE), ids=lambda e: e["id"])
def test_entries_are_training_graphs_with_a_cap(entry):
    inst = instances.load_bundled(entry["id"])
    # a forward node needing a gradient and its backward node share a co-location group
    # (the inputs need none: no backward node, no group)
    assert inst.groups is not None and "groups" in inst.constraints
    grouped = inst.groups[inst.groups >= 0]
    _, counts = np.unique(grouped, return_counts=True)
    assert (counts == 2).all() and grouped.size >= 0.9 * inst.n_nodes
    assert entry["n_groups"] == counts.size
    # gradient and stash edges carry data but impose no stage order
    assert "data_only_edges" in inst.constraints
    assert 0 < inst.n_data_only_edges < inst.n_edges
    assert inst.n_units < inst.n_nodes
    # memory (bytes) and the importer's cap (the hardware profile's device memory)
    assert inst.memory is not None and float(inst.memory.sum()) > 0
    assert inst.memory_unit == "bytes"
    assert inst.memory_limit == entry["memory_limit"] == 80e9
    mem = memory_summary(inst)
    for key in ("total_memory", "max_unit_memory", "min_stages_for_memory", "cap_binds"):
        assert mem[key] == pytest.approx(entry[key], rel=1e-12)
    assert entry["min_stages_for_memory"] == max(1, math.ceil(mem["total_memory"] / 80e9))
    assert (entry["n_units"], entry["n_data_only_edges"]) == (inst.n_units,
                                                             inst.n_data_only_edges)
    assert entry["params"]["training"] is True and entry["params"]["level"] == "layer"
    # a binding cap makes too few stages provably infeasible
    tight = inst.replace(memory_limit=mem["total_memory"] / 2.5)
    assert "memory" in tight.constraints
    assert tight.infeasible_reason(2) is not None
    assert tight.infeasible_reason(inst.n_nodes) is None


def test_info_reads_a_suite_entry(capsys):
    from cli import main

    assert main(["info", f"{SUITE}/gpt2-layers"]) == 0
    out = capsys.readouterr().out
    assert "co-location groups" in out and "data-only" in out
    assert "memory limit" in out


def test_one_entry_rebuilds_bit_identically():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from instances.build_training_suite import check

    assert check(only={"t5-small"}) == []


@pytest.mark.slow
def test_suite_rebuilds_bit_identically():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from instances.build_training_suite import check

    assert check() == []
