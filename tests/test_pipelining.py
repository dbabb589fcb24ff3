"""runtime.pipelining: split_spec of a partition at module boundaries, run with pipeline()."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.distributed.pipelining import SplitPoint  # noqa: E402

from instances.torch_import import import_module  # noqa: E402
from pipecert.errors import InputError  # noqa: E402
from pipecert.partition import Partition  # noqa: E402
from runtime.pipelining import (  # noqa: E402
    format_split_spec,
    run_gpipe_cpu,
    run_pipeline_cpu,
    spec_for_stages,
    split_spec_for,
    split_spec_text,
    verify_split_spec,
)

torch.set_num_threads(1)


class Block(nn.Module):
    """A pre-norm residual block (one layer key per block)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.fc = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc(self.ln(x))


class Net(nn.Module):
    """Embedding, 4 blocks in a ModuleList, a final norm and a head, with a skip to the head."""

    def __init__(self, d: int = 8, n: int = 4) -> None:
        super().__init__()
        self.emb = nn.Linear(4, d)
        self.blocks = nn.ModuleList([Block(d) for _ in range(n)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e = self.emb(x)
        h = e
        for b in self.blocks:
            h = b(h)
        return self.head(self.norm(h) + e)  # the root's add: outside any submodule


@pytest.fixture(scope="module")
def net() -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    return Net().eval(), torch.randn(4, 4)


def _stages_by_index(inst, cuts: list[int]) -> Partition:
    """Partition of the layer-level instance: stage b = layers [cuts[b-1], cuts[b])."""
    bounds = [0, *cuts, inst.n_nodes]
    stage_of = [0] * inst.n_nodes
    for b in range(len(bounds) - 1):
        for i in range(bounds[b], bounds[b + 1]):
            stage_of[i] = b
    return Partition(stage_of, len(bounds) - 1)


def test_layer_level_spec_and_pipeline(net):
    m, x = net
    inst = import_module(m, (x,), level="layer")
    assert inst.ids[:3] == ("emb", "blocks.0", "blocks.1")
    part = Partition.from_stages(inst, [["emb", "blocks.0"], ["blocks.1", "blocks.2"],
                                        [i for i in inst.ids if i not in
                                         ("emb", "blocks.0", "blocks.1", "blocks.2")]])
    spec, why = split_spec_for(inst, part, m)
    assert spec == {"blocks.1": SplitPoint.BEGINNING, "blocks.3": SplitPoint.BEGINNING}, why
    run = run_pipeline_cpu(m, x, spec, n_microbatches=2)
    assert run.num_stages == 3
    # stage 2 gets h and the skip e from stage 0 (passed through stage 1)
    assert run.stage_inputs[0] == 1 and run.stage_inputs[2] >= 2
    assert run.max_abs_error <= 1e-5


def test_layer_level_not_at_module_boundary(net):
    m, x = net
    inst = import_module(m, (x,), level="layer")
    ids = list(inst.ids)
    # not contiguous: blocks.2 before blocks.1
    part = Partition.from_stages(inst, [[i for i in ids if i != "blocks.1"], ["blocks.1"]])
    spec, why = split_spec_for(inst, part, m)
    assert spec is None and "not contiguous" in why and "blocks.1" in why
    # a stage starting with the root's own operators (<top>): no submodule starts there
    top = ids.index("<top>")
    spec, why = split_spec_for(inst, _stages_by_index(inst, [top]), m)
    assert spec is None and "outside any submodule" in why
    # one stage: an empty spec (pipeline() then makes one stage)
    assert spec_for_stages(inst, [ids], m)[0] == {}
    text = split_spec_text(inst, _stages_by_index(inst, [top]), m)
    assert text.startswith("# no split_spec: stage 1 begins with '<top>'")
    text = split_spec_text(inst, _stages_by_index(inst, [2]), m)
    assert 'split_spec = {\n    "blocks.1": SplitPoint.BEGINNING,\n}' in text


def test_operator_level_spec(net):
    m, x = net
    inst = import_module(m, (x,), level="operator")
    ops = [i for i, t in zip(inst.ids, inst.op_types, strict=True)
           if t not in ("parameter", "input")]
    labels = dict(zip(inst.ids, inst.labels, strict=True))
    # stage 1 starts at the first operator of blocks.2 (its layer_norm)
    first = next(o for o in ops if labels[o].startswith("blocks.2"))
    cut = ops.index(first)
    stage_of = [0 if (v in ops and ops.index(v) < cut) or v not in ops else 1
                for v in inst.ids]
    spec, why = split_spec_for(inst, Partition(stage_of, 2), m)
    assert spec == {"blocks.2": SplitPoint.BEGINNING}, why
    assert run_pipeline_cpu(m, x, spec).num_stages == 2
    # one operator later: blocks.2.fc starts (the residual input crosses the boundary)
    stage_of = [0 if (v in ops and ops.index(v) <= cut) or v not in ops else 1
                for v in inst.ids]
    spec, why = split_spec_for(inst, Partition(stage_of, 2), m)
    assert spec == {"blocks.2.fc": SplitPoint.BEGINNING}, why
    run = run_pipeline_cpu(m, x, spec)
    # stage 1 reads the norm output, the residual h and the skip e
    assert run.stage_inputs == (1, 3) and run.max_abs_error <= 1e-5
    assert verify_split_spec(inst, Partition(stage_of, 2), m, (x,), spec) == []
    # two operators later: the residual add of blocks.2, whose operators already ran
    assert labels[ops[cut + 2]] == "blocks.2"
    stage_of = [0 if (v in ops and ops.index(v) <= cut + 1) or v not in ops else 1
                for v in inst.ids]
    spec, why = split_spec_for(inst, Partition(stage_of, 2), m)
    assert spec is None and "earlier operator already ran" in why
    # the final norm starts a stage: the shallowest fresh module is "norm"
    first = next(o for o in ops if labels[o] == "norm")
    cut = ops.index(first)
    stage_of = [0 if (v in ops and ops.index(v) < cut) or v not in ops else 1
                for v in inst.ids]
    spec, why = split_spec_for(inst, Partition(stage_of, 2), m)
    assert spec == {"norm": SplitPoint.BEGINNING}, why
    # every operator is in the pipe stage the partition gives it; a wrong spec is caught
    assert verify_split_spec(inst, Partition(stage_of, 2), m, (x,), spec) == []
    bad = verify_split_spec(inst, Partition(stage_of, 2), m, (x,),
                            {"head": SplitPoint.BEGINNING})
    assert bad and all("partition stage 1, pipe stage 0" in b for b in bad)
    run = run_pipeline_cpu(m, x, spec)
    assert run.max_abs_error <= 1e-5


def test_module_list_is_not_a_split_point(net):
    m, x = net
    inst = import_module(m, (x,), level="operator")
    ops = [i for i, t in zip(inst.ids, inst.op_types, strict=True)
           if t not in ("parameter", "input")]
    labels = dict(zip(inst.ids, inst.labels, strict=True))
    # stage 1 from blocks.0: "blocks" is fresh but a ModuleList, so blocks.0 is chosen
    cut = next(j for j, o in enumerate(ops) if labels[o].startswith("blocks.0"))
    stage_of = [1 if v in ops and ops.index(v) >= cut else 0 for v in inst.ids]
    spec, _ = split_spec_for(inst, Partition(stage_of, 2), m)
    assert spec == {"blocks.0": SplitPoint.BEGINNING}


def test_errors(net):
    m, x = net
    inst = import_module(m, (x,), level="layer")
    with pytest.raises(InputError, match="nodes"):
        split_spec_for(inst, Partition([0, 1], 2), m)
    bare = inst.replace(metadata={})
    with pytest.raises(InputError, match="not imported from PyTorch"):
        split_spec_for(bare, Partition([0] * inst.n_nodes, 1), m)


def test_format_split_spec_is_python():
    spec = {"transformer.h.4": SplitPoint.BEGINNING, "transformer.h.8": SplitPoint.BEGINNING}
    text = format_split_spec(spec)
    assert 'split_spec = {\n    "transformer.h.4": SplitPoint.BEGINNING,' in text
    ns: dict = {}
    exec(text, ns)  # noqa: S102 - the point: the printed code runs
    assert ns["split_spec"] == spec


def test_gpt2_layer_level():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=16,
                                  vocab_size=64)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.config.use_cache = False
    ids = torch.randint(0, 64, (2, 8))
    inst = import_module(model, (ids,), level="layer")
    assert "transformer.h.1" in inst.ids
    pos = inst.ids.index("transformer.h.1")
    spec, why = split_spec_for(inst, _stages_by_index(inst, [pos]), model)
    assert spec == {"transformer.h.1": SplitPoint.BEGINNING}, why
    run = run_pipeline_cpu(model, ids, spec, n_microbatches=2)
    assert run.num_stages == 2
    # ln_f is the second run of "transformer"'s operators: not a module boundary here
    after = [i for i, v in enumerate(inst.ids) if v.startswith("transformer#")]
    if after:
        spec, why = split_spec_for(inst, _stages_by_index(inst, [after[0]]), model)
        assert spec is None and "run 2" in why


def test_gpipe_two_processes():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(),
                      nn.Linear(8, 3)).eval()
    x = torch.randn(4, 4)
    inst = import_module(m, (x,), level="layer")
    assert inst.ids == ("0", "1", "2", "3", "4")
    part = Partition.from_stages(inst, [["0", "1"], ["2", "3", "4"]])
    spec, why = split_spec_for(inst, part, m)
    assert spec == {"2": SplitPoint.BEGINNING}, why
    assert run_pipeline_cpu(m, x, spec, n_microbatches=2).max_abs_error <= 1e-6
    run = run_gpipe_cpu(m, x, spec, n_microbatches=2)
    assert run.num_stages == 2 and run.max_abs_error <= 1e-6


class Twice(nn.Module):
    """Calls one block twice: a split before it cuts before each call."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Linear(4, 8)
        self.blk = Block(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blk(self.blk(self.emb(x))))


def test_module_called_twice_is_caught():
    torch.manual_seed(0)
    m, x = Twice().eval(), torch.randn(2, 4)
    inst = import_module(m, (x,), level="layer")
    assert inst.ids == ("emb", "blk", "head")  # both calls are one run of operators
    spec, why = split_spec_for(inst, Partition.from_stages(inst, [["emb"], ["blk", "head"]]),
                               m)
    assert spec == {"blk": SplitPoint.BEGINNING}, why
    with pytest.raises(AssertionError, match="called more than once"):
        run_pipeline_cpu(m, x, spec)


def test_gpt2_operator_level_ln_f():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=16,
                                  vocab_size=64)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    model.config.use_cache = False
    ids = torch.randint(0, 64, (2, 8))
    inst = import_module(model, (ids,), level="operator")
    ops = [i for i, t in zip(inst.ids, inst.op_types, strict=True)
           if t not in ("parameter", "buffer", "input", "constant")]
    labels = dict(zip(inst.ids, inst.labels, strict=True))
    # the layer level cannot start a stage at ln_f (transformer#2); the operator level can
    cut = next(j for j, o in enumerate(ops) if labels[o] == "transformer.ln_f")
    later = set(ops[cut:])
    stage_of = [1 if v in later else 0 for v in inst.ids]
    spec, why = split_spec_for(inst, Partition(stage_of, 2), model)
    assert spec == {"transformer.ln_f": SplitPoint.BEGINNING}, why
    assert verify_split_spec(inst, Partition(stage_of, 2), model, (ids,), spec) == []
    assert run_pipeline_cpu(model, ids, spec).max_abs_error <= 1e-4
