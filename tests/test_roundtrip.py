"""Every writer/reader pair round-trips exactly (docs/guide/formats.md): write -> read -> equal.

Property tests over random instances: random DAGs with precedence-only edges, data-only
edges (in either direction, also against the order), memory, groups, labels, op types,
metadata, suggested k, memory limit, extreme floats (1e-300, 1e300, subnormals, 0) and
unicode ids, for native ``.json`` and ``.json.gz``, dnn-partitioning JSON and networkx.
The dnn-partitioning training layer graphs of ../shared round-trip through every writer.

What dnn-partitioning cannot carry (stated here and in its module docstring): precedence-only
edges and data-only edges other than exactly the edges touching backward nodes (the writer
refuses both with an InputError) and the instance name (the reader names
the instance after the file). Everything else reads back equal, metadata and units
included; the writer keeps what the upstream schema has no field for in ``pipecert*`` keys
upstream tools ignore (non-integer ids, op types, comm of nodes without out-edges,
metadata). Its reader requires the comm of every out-edge of a node to agree exactly,
which every written file satisfies. PipeDream, REGAL and ONNX are read-only formats.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instances import FORMATS, read_instance, write_instance
from pipecert import InputError, Instance

#: values at the edges of the float range (all finite and >= 0)
EXTREME = [0.0, 5e-324, 2.2250738585072014e-308, 1e-300, 1e-9, 1.0, 0.1 + 0.2, 1 / 3,
           123456789.123456789, 1e300]

costs = st.one_of(st.sampled_from(EXTREME),
                  st.floats(min_value=0.0, max_value=1e300, allow_nan=False,
                            allow_infinity=False))
ids_text = st.one_of(
    st.text(min_size=1, max_size=6),
    st.integers(min_value=0, max_value=10**6).map(str),  # canonical integer ids
    st.sampled_from(["01", "-3", "٣", "node1", "é", "名前", "a b", '"q"', "\\"]),
)
json_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                        st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))
json_value = st.recursive(json_scalar,
                          lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                  st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3)),
                          max_leaves=8)


@st.composite
def instances(draw: Any, *, precedence: bool = True, data_only: bool = True) -> Instance:
    """A random valid instance with every optional field sometimes set.

    Data-only edges (``data_only=True``) may point against the topological order: they
    impose no order, so they never close a cycle.
    """
    n = draw(st.integers(1, 9))
    ids = draw(st.lists(ids_text, min_size=n, max_size=n, unique=True))
    order = draw(st.permutations(range(n)))  # topological order of the node indices
    pairs = [(order[a], order[b]) for a in range(n) for b in range(a + 1, n)]
    kinds = draw(st.lists(st.sampled_from(["none", "data", "data", "prec" if precedence
                                           else "none"]),
                          min_size=len(pairs), max_size=len(pairs)))
    data = [p for p, k in zip(pairs, kinds) if k == "data"]
    prec = [p for p, k in zip(pairs, kinds) if k == "prec"]
    data = draw(st.permutations(data))  # edge order in the file
    free: list[tuple[int, int]] = []
    if data_only:
        cand = [(a, b) for a in range(n) for b in range(n) if a != b]
        free = draw(st.lists(st.sampled_from(cand), max_size=6)) if cand else []
    opt = st.booleans()
    units = draw(st.one_of(st.none(), st.fixed_dictionaries(
        {"work": st.sampled_from(["ms", "us", "unit"]),
         "comm": st.sampled_from(["ms", "bytes"]),
         "memory": st.sampled_from(["bytes", "unspecified"])})))
    metadata = draw(st.dictionaries(st.text(max_size=6), json_value, max_size=3))
    if units is not None:
        metadata["units"] = units
    return Instance.from_arrays(
        ids,
        draw(st.lists(costs, min_size=n, max_size=n)),
        draw(st.lists(costs, min_size=n, max_size=n)),
        [u for u, _ in data] + [u for u, _ in free], [v for _, v in data] + [v for _, v in free],
        [u for u, _ in prec], [v for _, v in prec],
        [True] * len(data) + [False] * len(free),
        memory=draw(st.lists(costs, min_size=n, max_size=n)) if draw(opt) else None,
        name=draw(st.text(min_size=1, max_size=10)),
        labels=draw(st.lists(st.text(max_size=6), min_size=n, max_size=n))
        if draw(opt) else None,
        op_types=draw(st.lists(st.text(max_size=6), min_size=n, max_size=n))
        if draw(opt) else None,
        groups=draw(st.lists(st.integers(-1, 4), min_size=n, max_size=n))
        if draw(opt) else None,
        suggested_k=draw(st.one_of(st.none(), st.integers(1, 64))),
        memory_limit=draw(st.one_of(st.none(), costs)),
        metadata=metadata,
    )


def same(a: Instance, b: Instance) -> None:
    """Equal instances, and bit-identical float arrays (``==`` would let -0.0 == 0.0)."""
    assert a == b
    for x, y in ((a.work, b.work), (a.comm, b.comm), (a.memory, b.memory)):
        if x is not None:
            assert x.tobytes() == y.tobytes()
    assert a.units == b.units and a.fingerprint == b.fingerprint


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.mark.parametrize("suffix", [".json", ".json.gz"])
@SETTINGS
@given(inst=instances())
def test_native_round_trip(tmp_path: Path, suffix: str, inst: Instance) -> None:
    p = tmp_path / f"x{suffix}"
    write_instance(inst, p)
    back = read_instance(p)
    same(back, inst)
    assert back.name == inst.name


@SETTINGS
@given(inst=instances(precedence=False, data_only=False))
def test_dnn_partitioning_round_trip(tmp_path: Path, inst: Instance) -> None:
    p = tmp_path / "x.json"
    write_instance(inst, p, format="dnn-partitioning")
    back = read_instance(p)
    assert back.name == "x"  # the format has no name field: the file name
    same(back, inst.replace(name="x"))
    # the written file is valid upstream layout: comm agrees on every out-edge
    raw = json.loads(p.read_text())
    per_source: dict[int, set[float]] = {}
    for e in raw["edges"]:
        per_source.setdefault(e["sourceId"], set()).add(e["cost"])
        if "size" in e:
            assert math.isfinite(e["size"])
    assert all(len(c) == 1 for c in per_source.values())


@SETTINGS
@given(inst=instances())
def test_dnn_partitioning_refuses_what_it_cannot_hold(tmp_path: Path, inst: Instance
                                                      ) -> None:
    p = tmp_path / "x.json"
    p.unlink(missing_ok=True)  # tmp_path is shared by the examples
    if inst.n_precedence_edges:
        with pytest.raises(InputError, match="precedence-only edges"):
            write_instance(inst, p, format="dnn-partitioning")
        assert not p.exists()
    elif inst.n_data_only_edges and not _fits_backward_rule(inst):
        with pytest.raises(InputError, match="data-only") as exc:
            write_instance(inst, p, format="dnn-partitioning")
        assert str(exc.value).startswith(str(p)) and "\n" not in str(exc.value)
        assert not p.exists()
    else:
        write_instance(inst, p, format="dnn-partitioning")
        same(read_instance(p), inst.replace(name="x"))


def test_every_writable_format_is_covered() -> None:
    writable = sorted(name for name, cls in FORMATS.items() if cls.writable)
    assert writable == ["dnn-partitioning", "native"]


def test_writers_refuse_metadata_json_cannot_hold(tmp_path: Path) -> None:
    bad = Instance(["a"], [1.0], [0.0], [], metadata={"x": {1, 2}})
    nan = Instance(["a"], [1.0], [0.0], [], metadata={"x": float("nan")})
    for fmt, name in (("native", "x.json"), ("native", "x.json.gz"),
                      ("dnn-partitioning", "d.json")):
        for inst in (bad, nan):
            with pytest.raises(InputError, match="metadata") as exc:
                write_instance(inst, tmp_path / name, format=fmt)
            assert "\n" not in str(exc.value)


def test_round_trip_of_a_converted_public_graph(tmp_path: Path, shared_instances: Path
                                                ) -> None:
    """PipeDream -> native and -> dnn-partitioning -> read: the same instance."""
    src = read_instance(shared_instances / "pipedream/translation/gnmt.graph.txt")
    for fmt, name in (("native", "g.json.gz"), ("dnn-partitioning", "g.json")):
        p = tmp_path / name
        write_instance(src, p, format=fmt)
        back = read_instance(p)
        same(back, src.replace(name=back.name))
        assert back.units == {"work": "ms", "comm": "ms", "memory": "bytes"}
    assert np.array_equal(read_instance(tmp_path / "g.json").comm, src.comm)


def test_dnn_partitioning_round_trip_with_long_labels_and_metadata(tmp_path: Path) -> None:
    """Detection by content looks at the first 4 KB: a written file must stay recognisable
    however long its metadata and labels are."""
    inst = Instance(["a", "b"], [1.0, 2.0], [0.5, 0.0], [("a", "b")], name="x",
                    labels=["L" * 10_000, "m"], metadata={"note": "n" * 10_000})
    p = tmp_path / "x.json"
    write_instance(inst, p, format="dnn-partitioning")
    same(read_instance(p), inst)


def _fits_backward_rule(inst: Instance) -> bool:
    """Whether the data-only edges are exactly the edges touching the nodes that have a
    data-only edge and no ordering one (what dnn-partitioning's isBackwardNode can say)."""
    free, order = set(), set()
    for u, v, o in zip(inst.src.tolist(), inst.dst.tolist(), inst.edge_orders.tolist()):
        (order if o else free).update((u, v))
    back = free - order
    return all(o == (u not in back and v not in back)
               for u, v, o in zip(inst.src.tolist(), inst.dst.tolist(),
                                  inst.edge_orders.tolist()))


@SETTINGS
@given(inst=instances())
def test_networkx_round_trip(inst: Instance) -> None:
    """to_networkx / from_networkx keep all three edge kinds, groups, memory and the cap."""
    from instances import from_networkx, to_networkx

    G = to_networkx(inst)
    kinds = {d["kind"] for _, _, d in G.edges(data=True)}
    assert any(k.startswith("data_only") for k in kinds) == bool(inst.n_data_only_edges)
    same(from_networkx(G), inst)


@SETTINGS
@given(inst=instances())
def test_native_writes_data_only_edges_only_when_present(tmp_path: Path, inst: Instance
                                                         ) -> None:
    """Files of instances without data-only edges are byte-identical to the old writer's
    (no ``data_only_edges`` key); with them, ``edges`` holds the ordering data edges only."""
    from instances.formats.native import dumps

    raw = json.loads(dumps(inst))
    assert ("data_only_edges" in raw) == bool(inst.n_data_only_edges)
    assert len(raw["edges"]) + len(raw.get("data_only_edges", [])) == inst.n_edges
    assert len(raw.get("data_only_edges", [])) == inst.n_data_only_edges
    if not inst.n_data_only_edges:
        # the old layout: every data edge under "edges", in (src, dst) order
        ids = inst.ids
        assert raw["edges"] == [[ids[u], ids[v]] for u, v in zip(inst.src.tolist(),
                                                                 inst.dst.tolist())]


def test_native_byte_identical_without_data_only_edges(tmp_path: Path) -> None:
    """A file written before data-only edges existed is rewritten byte for byte."""
    from instances import load_bundled, suite_ids
    from instances.formats.native import dumps

    for iid in suite_ids("default")[:3]:
        inst = load_bundled(iid)
        assert inst.n_data_only_edges == 0
        p = tmp_path / "a.json.gz"
        write_instance(inst, p)
        ref = Path(__file__).resolve().parents[1] / "instances" / "data" / f"{iid}.json.gz"
        assert gzip.decompress(p.read_bytes()) == gzip.decompress(ref.read_bytes())
        assert dumps(inst) == gzip.decompress(p.read_bytes()).decode()


TRAINING = ["bert24", "gnmt", "inceptionv3", "resnet50"]


@pytest.mark.parametrize("graph", TRAINING)
def test_training_layer_graphs_round_trip(tmp_path: Path, shared_instances: Path,
                                          graph: str) -> None:
    """Every dnn-partitioning training graph: read, write (dnn-partitioning, native .json,
    .json.gz, networkx), read back, equal: groups, memory, the cap and the data-only
    (backward) edges survive every format."""
    from instances import from_networkx, to_networkx

    src = read_instance(shared_instances / f"dnn-partitioning/LayerGraphs/{graph}_training.json")
    assert src.constraints >= {"groups", "data_only_edges"}
    assert src.n_data_only_edges == src.n_edges // 2 and src.memory_limit is not None
    for fmt, name in (("dnn-partitioning", "t.json"), ("native", "t.native.json"),
                      ("native", "t.json.gz")):
        p = tmp_path / name
        write_instance(src, p, format=fmt)
        back = read_instance(p)
        same(back, src.replace(name=back.name))
        assert back.constraints == src.constraints
    same(from_networkx(to_networkx(src)), src)
    # the upstream flag is written back exactly as the file has it
    raw = json.loads((tmp_path / "t.json").read_text())
    orig = json.loads((shared_instances / f"dnn-partitioning/LayerGraphs/{graph}_training.json"
                       ).read_text())
    flag = {str(nd["id"]): bool(nd["isBackwardNode"]) for nd in orig["nodes"]}
    assert {str(nd["id"]): bool(nd["isBackwardNode"]) for nd in raw["nodes"]} == flag
