"""Bundled suites: manifests match the files, the default suite rebuilds bit-identically."""

from __future__ import annotations

import gzip
import hashlib

import pytest

import instances
from instances.build_default_suite import SPECS, check, regime_of
from instances.bundled import DATA_DIR
from pipecert import InputError

REQUIRED = {"id", "file", "n_nodes", "n_edges", "total_work", "total_comm",
            "comm_work_ratio", "regime", "generator", "params", "seed", "sha256"}


def test_default_suite_is_listed():
    assert "default" in instances.list_suites()
    ids = instances.suite_ids()
    assert len(ids) == len(SPECS) >= 24
    assert all(i.startswith("default/") for i in ids) and len(set(ids)) == len(ids)


@pytest.mark.parametrize("suite", instances.list_suites())
def test_manifest_matches_every_file(suite):
    for e in instances.suite_manifest(suite):
        assert REQUIRED <= set(e), f"{e.get('id')}: missing {REQUIRED - set(e)}"
        assert e["id"] == f"{suite}/{e['file'].removesuffix('.json.gz')}"
        raw = gzip.decompress((DATA_DIR / suite / e["file"]).read_bytes())
        assert hashlib.sha256(raw).hexdigest() == e["sha256"], e["id"]
        inst = instances.load_bundled(e["id"])
        assert inst.name == e["id"]
        assert (inst.n_nodes, inst.n_edges) == (e["n_nodes"], e["n_edges"])
        assert inst.total_work == pytest.approx(e["total_work"], rel=1e-12)
        assert inst.total_comm == pytest.approx(e["total_comm"], rel=1e-12)
        assert e["regime"] == regime_of(inst.comm_work_ratio)


def test_default_suite_covers_sizes_and_both_regimes():
    man = instances.suite_manifest("default")
    sizes = [e["n_nodes"] for e in man]
    assert min(sizes) <= 10 and max(sizes) >= 2000
    regimes = {e["regime"] for e in man}
    assert {"compute-heavy", "comm-heavy"} <= regimes
    assert sum(e["comm_work_ratio"] >= 6 for e in man) >= 3  # operator-graph-like
    total = sum((DATA_DIR / "default" / e["file"]).stat().st_size for e in man)
    assert total < 5e6


def test_default_suite_rebuilds_bit_identically():
    assert check() == []


def test_unknown_suite_and_id_are_input_errors():
    with pytest.raises(InputError, match="unknown bundled suite 'nope'"):
        instances.suite_ids("nope")
    with pytest.raises(InputError, match="unknown bundled instance"):
        instances.load_bundled("default/nope")
    with pytest.raises(InputError, match="SUITE/NAME"):
        instances.load_bundled("default")
