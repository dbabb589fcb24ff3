"""Hand computation on every public graph: ``evaluate`` with the file's values agrees
with a hand computation from the file (docs/guide/formats.md).

Each file of ``../shared/instances`` is parsed here by a minimal parser written from the
format table in ``docs/guide/formats.md#formats`` (plain ``json`` and line parsing;
no pipecert reader). A deterministic partition (a topological order, smallest file position
first, cut into k contiguous chunks) is priced by hand with the block cost of
``docs/theory/problem.md#block-cost``: the work of the stage's nodes, plus the comm of every
producer outside the stage that some node of the stage reads, plus the comm of every
producer of the stage that some node outside reads, each producer charged once per stage.
``pipecert.evaluate`` on the instance pipecert reads (default options: the file's values)
must agree to 1e-12 relative, stage by stage.
"""

from __future__ import annotations

import heapq
import json
import re
from pathlib import Path
from typing import Any

import pytest

from instances import read_instance
from pipecert import Partition, evaluate, stage_costs

RTOL = 1e-12
GRAPH_SUFFIXES = (".json", ".graph.txt", ".pbtxt")


class Hand:
    """A graph as the README describes it: ids in file order, w, c, memory, edges."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.work: dict[str, float] = {}
        self.comm: dict[str, float] = {}
        self.memory: dict[str, float] = {}
        self.edges: list[tuple[str, str]] = []  # data edges (producer, consumer)
        self.order_edges: list[tuple[str, str]] = []  # ordering only (REGAL control)


def parse_dnn_partitioning(path: Path) -> Hand:
    """``nodes[]``: ``id``, ``fpgaLatency`` (w), ``size`` (memory); ``edges[]``:
    ``sourceId``, ``destId``, ``cost`` (the source's comm, equal on all its out-edges)."""
    d = json.loads(path.read_text())
    g = Hand()
    for node in d["nodes"]:
        v = str(node["id"])
        g.ids.append(v)
        g.work[v] = node["fpgaLatency"]
        g.memory[v] = node["size"]
        g.comm[v] = 0.0
    for e in d["edges"]:
        u, v = str(e["sourceId"]), str(e["destId"])
        g.comm[u] = e["cost"]
        g.edges.append((u, v))
    return g


def _field(raw: str) -> float:
    raw = raw.strip()
    if raw.startswith("["):  # a tuple output: the README's activation list, summed
        return sum(float(x) for x in raw.strip("[]").split(";") if x.strip())
    return float(raw)


def parse_pipedream(path: Path) -> Hand:
    """``nodeX -- desc -- forward_compute_time=..., activation_size=..., parameter_size=...``
    then ``<TAB>nodeA -- nodeB``; w = forward time, c = activation_size / 2^31 (bytes per
    ms), memory = activation + parameter size."""
    g = Hand()
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        if line.startswith("\t"):
            a, b = line.strip().split(" -- ")
            g.edges.append((a, b))
            continue
        parts = line.split(" -- ")
        v = parts[0]
        fields = dict(item.strip().split("=", 1) for item in parts[-1].split(","))
        g.ids.append(v)
        g.work[v] = _field(fields["forward_compute_time"])
        g.comm[v] = _field(fields["activation_size"]) / 2.0**31
        g.memory[v] = _field(fields["activation_size"]) + _field(fields["parameter_size"])
    return g


def parse_regal(path: Path) -> Hand:
    """``node { ... }`` blocks: ``id``, ``compute_cost`` (w, absent = 0),
    ``output_info { size }`` per port, ``input_info { preceding_node preceding_port }`` data
    edges, ``control_input`` ordering edges; ``_SOURCE`` dropped; c = sizes of the output
    ports some consumer reads."""
    blocks: list[dict[str, Any]] = []
    stack: list[dict[str, Any]] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.endswith("{"):
            blk: dict[str, Any] = {"_kind": line[:-1].strip()}
            if stack:
                stack[-1].setdefault(blk["_kind"], []).append(blk)
            stack.append(blk)
        elif line == "}":
            done = stack.pop()
            if not stack:
                blocks.append(done)
        else:
            key, value = (x.strip() for x in line.split(":", 1))
            stack[-1].setdefault(key, []).append(value.strip('"'))
    g = Hand()
    sizes: dict[str, list[float]] = {}
    read_ports: dict[str, set[int]] = {}
    dropped = {b.get("id", ["0"])[0] for b in blocks if b["name"] == ["_SOURCE"]}
    for b in blocks:
        v = b.get("id", ["0"])[0]
        if v in dropped:
            continue
        g.ids.append(v)
        g.work[v] = float(b.get("compute_cost", ["0"])[0])
        sizes[v] = [float(o["size"][0]) for o in b.get("output_info", [])]
        read_ports.setdefault(v, set())
    for b in blocks:
        v = b.get("id", ["0"])[0]
        if v in dropped:
            continue
        for inp in b.get("input_info", []):
            u = inp["preceding_node"][0]
            if u in dropped:
                continue
            g.edges.append((u, v))
            read_ports.setdefault(u, set()).add(int(inp.get("preceding_port", ["0"])[0]))
        for u in b.get("control_input", []):
            if u not in dropped:
                g.order_edges.append((u, v))
    for v in g.ids:
        g.comm[v] = sum(sizes[v][p] for p in read_ports[v])
        g.memory[v] = 0.0
    return g


PARSERS = {".json": parse_dnn_partitioning, ".graph.txt": parse_pipedream,
           ".pbtxt": parse_regal}


def topological_order(g: Hand) -> list[str]:
    """Kahn's algorithm over data and ordering edges, smallest file position first."""
    pos = {v: i for i, v in enumerate(g.ids)}
    succ: dict[str, list[str]] = {v: [] for v in g.ids}
    indeg = dict.fromkeys(g.ids, 0)
    for u, v in g.edges + g.order_edges:
        succ[u].append(v)
        indeg[v] += 1
    heap = [pos[v] for v in g.ids if indeg[v] == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        u = g.ids[heapq.heappop(heap)]
        order.append(u)
        for v in succ[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(heap, pos[v])
    assert len(order) == len(g.ids), "the file's graph has a cycle"
    return order


def hand_stage_costs(g: Hand, stage: dict[str, int], k: int) -> list[float]:
    """docs/theory/problem.md#block-cost block cost of every stage, with Python sets and sums."""
    out = []
    for b in range(k):
        members = {v for v in g.ids if stage[v] == b}
        received = {u for u, v in g.edges if v in members and u not in members}
        sent = {u for u, v in g.edges if u in members and v not in members}
        cost = sum(g.work[v] for v in members)
        cost += sum(g.comm[u] for u in received) + sum(g.comm[u] for u in sent)
        out.append(cost)
    return out


def shared_graph_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and p.name.endswith(GRAPH_SUFFIXES))


def hand_check(path: Path, k: int) -> float:
    """Max relative difference between the hand and pipecert stage costs (and bottleneck)."""
    suffix = next(s for s in GRAPH_SUFFIXES if path.name.endswith(s))
    g = PARSERS[suffix](path)
    order = topological_order(g)
    n = len(order)
    stage = {v: (i * k) // n for i, v in enumerate(order)}  # k contiguous chunks
    hand = hand_stage_costs(g, stage, k)
    inst = read_instance(path)
    assert set(inst.ids) == set(g.ids)
    part = Partition.from_stages(inst, [[v for v in order if stage[v] == b]
                                        for b in range(k)], k)
    got = stage_costs(inst, part)
    worst = 0.0
    for b in range(k):
        worst = max(worst, abs(float(got.total[b]) - hand[b]) / max(abs(hand[b]), 1e-300))
    bottleneck = evaluate(inst, part)
    worst = max(worst, abs(bottleneck - max(hand)) / max(hand))
    if inst.memory is not None:
        for b in range(k):
            mem = sum(g.memory[v] for v in g.ids if stage[v] == b)
            worst = max(worst, abs(float(got.memory[b]) - mem) / max(mem, 1e-300))
    return worst


def test_every_shared_graph_file_is_covered(shared_instances: Path) -> None:
    files = shared_graph_files(shared_instances)
    assert len(files) == 8 + 14 + 1  # layer graphs, PipeDream profiles, REGAL sample
    assert {f.suffix for f in files} == {".json", ".txt", ".pbtxt"}


@pytest.mark.parametrize("k", [3, 2, 7])
def test_evaluate_matches_hand_computation_on_every_shared_file(shared_instances: Path,
                                                                k: int) -> None:
    results = {f.name: hand_check(f, k) for f in shared_graph_files(shared_instances)}
    bad = {name: d for name, d in results.items() if not d <= RTOL}
    assert not bad, bad


def test_hand_parsers_see_the_input_work(shared_instances: Path) -> None:
    """The hand parsers read the file's values: the inputs keep their data-loading work,
    and so does pipecert by default (docs/guide/formats.md)."""
    lg = parse_dnn_partitioning(shared_instances / "dnn-partitioning/LayerGraphs/"
                                "resnet50_inference.json")
    pd = parse_pipedream(shared_instances / "pipedream/image_classification/"
                         "alexnet.graph.txt")
    assert lg.work["1"] == 18.962 and pd.work["node1"] == 635.902
    assert read_instance(shared_instances / "pipedream/image_classification/"
                         "alexnet.graph.txt").total_work == pytest.approx(sum(pd.work.values()),
                                                                         rel=1e-15)
    assert re.match(r"^node\d+$", pd.ids[0])
