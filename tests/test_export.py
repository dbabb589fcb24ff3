"""Stage export (runtime.export): the stages run in order give the unsplit model's outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from instances.torch_import import call_factory, import_module  # noqa: E402
from pipecert.errors import InputError  # noqa: E402
from pipecert.instance import Instance  # noqa: E402
from pipecert.partition import Partition, check_feasible  # noqa: E402
from runtime import tiny_models  # noqa: E402
from runtime.export import export_stages, load_staged  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _build(name: str) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    if name == "mlp":
        return call_factory(tiny_models.mlp)
    if name == "cnn":
        return call_factory(tiny_models.cnn)
    return call_factory(tiny_models.suite, options={"model": name})


_IMPORTED: dict[tuple[str, str], tuple[Any, Any, Any, Instance]] = {}


def _imported(name: str, level: str) -> tuple[Any, Any, Any, Instance]:
    """(module, args, kwargs, instance), imported once per test session."""
    if (name, level) not in _IMPORTED:
        m, a, kw = _build(name)
        inst = import_module(m, a, kw, level=level, layer_depth=1, layer_extra=1)
        _IMPORTED[name, level] = (m, a, kw, inst)
    return _IMPORTED[name, level]


def random_partition(inst: Instance, k: int, seed: int) -> Partition:
    """A random feasible partition: a random topological order cut at random places."""
    rng = np.random.default_rng(seed)
    indeg = np.zeros(inst.n_nodes, dtype=int)
    for v in range(inst.n_nodes):
        for w in inst.successors(v):
            indeg[w] += 1
    ready = [v for v in range(inst.n_nodes) if indeg[v] == 0]
    order = []
    while ready:
        v = ready.pop(int(rng.integers(len(ready))))
        order.append(v)
        for w in inst.successors(v):
            indeg[w] -= 1
            if indeg[w] == 0:
                ready.append(int(w))
    kk = min(k, inst.n_nodes)
    cuts = sorted(rng.choice(np.arange(1, inst.n_nodes), kk - 1, replace=False)) \
        if kk > 1 else []
    p = Partition.from_slices(order, cuts, k)
    assert not check_feasible(inst, p, memory_limit=None)
    return p


def _assert_same(staged: Any, m: Any, a: Any, kw: Any) -> int:
    with torch.no_grad():
        got = torch.utils._pytree.tree_leaves(staged.run(*a, **kw))
        want = torch.utils._pytree.tree_leaves(m(*a, **kw))
    assert len(got) == len(want)
    n = 0
    for g, w in zip(got, want, strict=True):
        if isinstance(w, torch.Tensor):
            torch.testing.assert_close(g, w)
            n += 1
    assert n >= 1
    return n


@pytest.mark.parametrize("level", ["operator", "layer"])
@pytest.mark.parametrize("name", ["mlp", "cnn", "gpt2"])
def test_stages_in_order_equal_the_unsplit_model(name: str, level: str) -> None:
    m, a, kw, inst = _imported(name, level)
    for k, seed in ((1, 0), (2, 1), (4, 2)):
        p = random_partition(inst, k, seed)
        staged = export_stages(m, a, kw, instance=inst, partition=p)
        assert staged.k == min(k, inst.n_nodes)
        assert len(staged.stages) == staged.k
        assert sorted(v for b in staged.boundary for v in b.nodes) == sorted(inst.ids)
        _assert_same(staged, m, a, kw)
        # chain: what a stage sends is what the next one receives
        for i in range(1, staged.k):
            assert staged.boundary[i].receives == staged.boundary[i - 1].sends
        assert staged.boundary[-1].sends == ()
        if k == 1:
            assert staged.boundary[0].receives == () and not staged.tensors.keys() - set(
                staged.user_inputs)


def test_heuristic_partition_of_a_transformer_block_exchanges_several_tensors() -> None:
    from heuristics.decoder import input_order

    m, a, kw, inst = _imported("bert-base", "operator")
    order = input_order(inst)
    p = Partition.from_slices(order, [len(order) // 4, len(order) // 2, 3 * len(order) // 4],
                              4)
    staged = export_stages(m, a, kw, instance=inst, partition=p)
    _assert_same(staged, m, a, kw)
    acts = [[v for v in b.sends if staged.tensors[v].kind == "activation"]
            for b in staged.boundary[:-1]]
    assert max(len(x) for x in acts) >= 2  # several activations cross one boundary
    for i, b in enumerate(staged.boundary[:-1]):
        rb, sb = staged.stage_bytes(i)
        assert sb == sum(staged.tensors[v].nbytes for v in b.sends) > 0
        for v in b.sends:
            t = staged.tensors[v]
            assert t.nbytes == int(np.prod(t.shape or (0,))) * 4 or t.dtype != "float32"


def test_skip_connection_across_two_stages_is_forwarded() -> None:
    m, a, kw, inst = _imported("mlp", "operator")
    # fc1 + relu in stage 0, fc2 in 1, fc3 in 2, the sum and fc4 in 3: h1 = relu skips 1, 2
    first = {"x", "p_fc1_weight", "p_fc1_bias", "linear", "relu"}
    second = {"p_fc2_weight", "p_fc2_bias", "linear_1", "relu_1"}
    third = {"p_fc3_weight", "p_fc3_bias", "linear_2", "tanh"}
    stages = [sorted(first), sorted(second), sorted(third),
              sorted(set(inst.ids) - first - second - third)]
    p = Partition.from_stages(inst, stages, 4)
    staged = export_stages(m, a, kw, instance=inst, partition=p)
    _assert_same(staged, m, a, kw)
    skip = staged.tensors["relu"]
    assert (skip.producer, skip.last_consumer) == (0, 3)
    assert skip in staged.skip_connections()
    assert "relu" in staged.boundary[0].sends
    assert "relu" in staged.boundary[1].forwarded and "relu" in staged.boundary[2].forwarded
    assert "relu" in staged.boundary[3].receives
    assert "relu_1" in staged.boundary[1].sends and "relu_1" not in staged.boundary[1].forwarded
    # the skipped stages do not compute it: their graphs only pass the placeholder through
    code1 = staged.stages[1].code
    assert "aten.relu.default(linear)" not in code1


def test_tied_weights_travel_or_are_replicated() -> None:
    m, a, kw, inst = _imported("qwen2-0.5b", "layer")
    ids = list(inst.ids)
    p = Partition.from_stages(inst, [ids[:1], ids[1:-1], ids[-1:]], 3)
    staged = export_stages(m, a, kw, instance=inst, partition=p)
    _assert_same(staged, m, a, kw)
    tied = [t for t in staged.tensors.values() if t.kind == "parameter"]
    assert tied and all(t.producer == 0 and t.last_consumer == 2 for t in tied)
    rep = export_stages(m, a, kw, instance=inst, partition=p, replicate_parameters=True)
    _assert_same(rep, m, a, kw)
    assert not [t for t in rep.tensors.values() if t.kind == "parameter"]
    assert rep.stage_bytes(0)[1] < staged.stage_bytes(0)[1]


def test_module_boundary_split_gives_a_split_spec_that_pipeline_runs() -> None:
    from torch.distributed.pipelining import SplitPoint, pipeline

    m, a, kw, inst = _imported("gpt2", "layer")
    ids = list(inst.ids)
    cut = next(i for i, v in enumerate(ids) if v.startswith("transformer.h.1"))
    p = Partition.from_stages(inst, [ids[:cut], ids[cut:]], 2)
    staged = export_stages(m, a, kw, instance=inst, partition=p)
    # runtime.pipelining names the layer where stage 1 begins (its first module call)
    assert staged.info["split_spec"] == {"transformer.h.1.ln_1": "BEGINNING"}
    _assert_same(staged, m, a, kw)
    # a cut after the block's first layer norm begins at its attention module
    inner = Partition.from_stages(inst, [ids[:cut + 1], ids[cut + 1:]], 2)
    inner_staged = export_stages(m, a, kw, instance=inst, partition=inner)
    assert inner_staged.info["split_spec"] == {"transformer.h.1.attn": "BEGINNING"}
    for st in (staged, inner_staged):
        spec = {f: SplitPoint.BEGINNING for f in st.info["split_spec"]}
        fresh = _build("gpt2")[0]  # pipeline() annotates the module's forward in place
        pipe = pipeline(fresh, mb_args=a, mb_kwargs=kw, split_spec=spec)
        assert pipe.num_stages == 2
        with torch.no_grad():
            torch.testing.assert_close(torch.utils._pytree.tree_leaves(pipe(*a, **kw))[0],
                                       torch.utils._pytree.tree_leaves(m(*a, **kw))[0])
    # MLP: a cut between fc1 and the ReLU of forward() is not at a module call
    m, a, kw, inst = _imported("mlp", "operator")
    first = {"x", "p_fc1_weight", "p_fc1_bias", "linear"}
    p = Partition.from_stages(inst, [sorted(first), sorted(set(inst.ids) - first)], 2)
    staged = export_stages(m, a, kw, instance=inst, partition=p)
    assert staged.info["split_spec"] is None
    assert staged.info["split_spec_reason"]
    _assert_same(staged, m, a, kw)


def test_infeasible_partition_is_refused_in_one_line() -> None:
    m, a, kw, inst = _imported("mlp", "operator")
    stage_of = np.zeros(inst.n_nodes, dtype=int)
    stage_of[inst.node_index("x")] = 1  # the input after its consumer
    with pytest.raises(InputError, match="infeasible partition: edge") as err:
        export_stages(m, a, kw, instance=inst, partition=Partition(stage_of, 2))
    assert "\n" not in str(err.value)


def test_instance_of_another_model_training_and_meta_are_refused() -> None:
    m, a, kw, inst = _imported("mlp", "operator")
    other, oa, okw = call_factory(tiny_models.mlp, options={"width": 8, "seed": 1})
    other_inst = import_module(other, oa, okw, level="layer")
    p = Partition(np.zeros(other_inst.n_nodes, dtype=int), 1)
    with pytest.raises(InputError, match="not imported from this model"):
        export_stages(m, a, kw, instance=other_inst, partition=p)
    train = import_module(m, a, kw, training=True)
    with pytest.raises(InputError, match="training graph"):
        export_stages(m, a, kw, instance=train,
                      partition=Partition(np.zeros(train.n_nodes, dtype=int), 1))
    with torch.device("meta"):
        meta_m = torch.nn.Linear(8, 4)
    meta_inst = import_module(meta_m, (torch.zeros(2, 8, device="meta"),))
    with pytest.raises(InputError, match="meta device"):
        export_stages(meta_m, (torch.zeros(2, 8, device="meta"),), instance=meta_inst,
                      partition=Partition(np.zeros(meta_inst.n_nodes, dtype=int), 1))


def test_save_load_round_trip(tmp_path: Path) -> None:
    m, a, kw, inst = _imported("cnn", "layer")
    p = random_partition(inst, 3, 5)
    staged = export_stages(m, a, kw, instance=inst, partition=p)
    path = staged.save(tmp_path / "st")
    man = json.loads(path.read_text())
    assert man["format"] == "pipecert-stages" and man["k"] == 3
    assert [s["nodes"] for s in man["stages"]] == [list(b.nodes) for b in staged.boundary]
    back = load_staged(tmp_path / "st")
    assert back.boundary == staged.boundary and back.tensors == staged.tensors
    assert back.info == staged.info
    _assert_same(back, m, a, kw)
    x2 = torch.randn_like(a[0])  # other inputs of the same shape: still equal
    with torch.no_grad():
        torch.testing.assert_close(back.run(x2), m(x2))
    (tmp_path / "st" / "stage_1.pt").unlink()
    with pytest.raises(InputError, match="missing stage file"):
        load_staged(tmp_path / "st")
    with pytest.raises(InputError, match="cannot read stage manifest"):
        load_staged(tmp_path / "nowhere")


def test_kwargs_in_another_order_and_wrong_inputs() -> None:
    m, a, kw, inst = _imported("t5-small", "layer")
    staged = export_stages(m, a, kw, instance=inst, partition=random_partition(inst, 2, 3))
    reordered = dict(reversed(list(kw.items())))
    _assert_same(staged, m, a, reordered)
    with pytest.raises(InputError, match="do not match"):
        staged.run(torch.zeros(1, 8, dtype=torch.long))


def test_core_aten_graph_is_re_exported_decomposed() -> None:
    m, a, kw = _build("gpt2")
    inst = import_module(m, a, kw, level="operator", decompose=True)
    assert inst.metadata["ir"] == "core-aten"
    staged = export_stages(m, a, kw, instance=inst, partition=random_partition(inst, 3, 4))
    _assert_same(staged, m, a, kw)
    assert "aten.linear" not in "".join(st.code for st in staged.stages)


def test_measure_times_each_stage() -> None:
    m, a, kw, inst = _imported("mlp", "operator")
    staged = export_stages(m, a, kw, instance=inst, partition=random_partition(inst, 2, 0))
    times = staged.measure(*a, warmup=1, repeats=3, **kw)
    assert len(times) == 2 and all(t > 0 for t in times)
    with pytest.raises(InputError):
        staged.measure(*a, repeats=0)


# -------------------------------------------------------------------------------- the CLI
def _cli(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    from cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_export_writes_stages_and_checks_them(tmp_path: Path, capsys: Any) -> None:
    from instances import read_instance
    from pipecert.partition_file import write_partition

    g = str(tmp_path / "g.json")
    code, _, err = _cli(["import-torch", "runtime.tiny_models:suite", "--option",
                         "model=gpt2", "--level", "layer", "-o", g], capsys)
    assert code == 0, err
    inst = read_instance(g)
    part = str(tmp_path / "p.json")
    write_partition(part, random_partition(inst, 4, 0), inst)
    out_dir = tmp_path / "stages"
    code, out, err = _cli(["export", g, part, "-o", str(out_dir), "--time", "--repeats",
                           "2"], capsys)
    assert code == 0, err
    assert "4 stages (layer level)" in out and "match the unsplit model" in out
    assert "median ms" in out
    assert len([ln for ln in out.splitlines() if ln.startswith("    ")]) == 4
    back = load_staged(out_dir)
    m, a, kw = call_factory(tiny_models.suite, options={"model": "gpt2"})
    _assert_same(back, m, a, kw)
    assert back.info["factory"] == "runtime.tiny_models:suite"

    # a partition of another graph: the structure fingerprint says so
    code, _, err = _cli(["import-torch", "runtime.tiny_models:mlp", "-o",
                         str(tmp_path / "mlp.json")], capsys)
    assert code == 0
    code, _, err = _cli(["export", str(tmp_path / "mlp.json"), part, "-o",
                         str(tmp_path / "x")], capsys)
    assert code == 2 and "structure differs" in err and err.count("\n") == 1
    # a graph not imported from PyTorch
    from pipecert.partition_file import write_partition as wp

    plain = Instance(["a", "b"], work=[1, 1], comm=[1, 0], edges=[("a", "b")])
    from instances import write_instance

    write_instance(plain, tmp_path / "plain.json")
    wp(tmp_path / "plain.part.json", Partition([0, 1], 2), plain)
    code, _, err = _cli(["export", str(tmp_path / "plain.json"),
                         str(tmp_path / "plain.part.json"), "-o", str(tmp_path / "y")], capsys)
    assert code == 2 and "not a graph imported from PyTorch" in err
    # a graph imported by the Python API records no factory: --factory gives it
    from runtime.tiny_models import mlp

    api = import_module(*mlp()[:1], mlp()[1])
    write_instance(api, tmp_path / "api.json")
    wp(tmp_path / "api.part.json", random_partition(api, 2, 0), api)
    argv = ["export", str(tmp_path / "api.json"), str(tmp_path / "api.part.json"), "-o",
            str(tmp_path / "w")]
    code, _, err = _cli(argv, capsys)
    assert code == 2 and "records no factory" in err
    code, out, err = _cli([*argv, "--factory", "runtime.tiny_models:mlp"], capsys)
    assert code == 0 and "match the unsplit model" in out, err
    # an infeasible partition
    mi = read_instance(tmp_path / "mlp.json")
    stage_of = np.zeros(mi.n_nodes, dtype=int)
    stage_of[mi.node_index("x")] = 1
    wp(tmp_path / "bad.json", Partition(stage_of, 2), mi)
    code, _, err = _cli(["export", str(tmp_path / "mlp.json"), str(tmp_path / "bad.json"),
                         "-o", str(tmp_path / "z")], capsys)
    assert code == 2 and "infeasible partition" in err and err.count("\n") == 1


# ------------------------------------------------ every bundled architecture, tiny config
@pytest.mark.parametrize("level", ["operator", "layer"])
@pytest.mark.parametrize("name", sorted(tiny_models.TINY_CONFIGS))
def test_every_bundled_architecture_splits_exactly(name: str, level: str) -> None:
    m, a, kw = _build(name)
    inst = import_module(m, a, kw, level=level, layer_depth=1, layer_extra=1)
    staged = export_stages(m, a, kw, instance=inst, partition=random_partition(inst, 4, 7))
    _assert_same(staged, m, a, kw)


def test_cli_profile_then_solve_then_export(tmp_path: Path, capsys: Any) -> None:
    """The measured graph of `pipecert profile` exports like an imported one."""
    g = str(tmp_path / "prof.json")
    code, _, err = _cli(["profile", "runtime.tiny_models:mlp", "--repeats", "2", "--warmup",
                         "1", "-o", g], capsys)
    assert code == 0, err
    part = str(tmp_path / "p.json")
    code, _, err = _cli(["solve", g, "-k", "2", "--time-limit", "5", "-q", "-o", part], capsys)
    assert code == 0, err
    code, out, err = _cli(["export", g, part, "-o", str(tmp_path / "stages")], capsys)
    assert code == 0, err
    assert "match the unsplit model" in out
