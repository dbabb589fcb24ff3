"""Presets as named parameter sets: ``brkga-100`` and ``brkga-10000``, and a new one."""

from __future__ import annotations

import pickle

import pytest

from heuristics import HEURISTICS
from heuristics.brkga import PRESETS, Brkga, Brkga100, Brkga10000
from pipecert.presets import Preset, register_preset
from pipecert.results import Budget, Status
from pipecert.testing import brute_force, small_cases


def test_brkga_presets_are_registered_under_their_names_with_their_values() -> None:
    assert set(PRESETS) == {"brkga-100", "brkga-10000"}
    base = Brkga.param_defaults()
    for name, preset in PRESETS.items():
        cls = HEURISTICS.get(name)
        assert issubclass(cls, Brkga) and cls.name == name
        assert cls.param_defaults() == {**base, **preset.params}
        assert dict(cls.preset) == dict(preset.params)
        assert HEURISTICS.make(name).method_id() == name
    assert HEURISTICS.get("brkga-100") is Brkga100
    assert HEURISTICS.get("brkga-10000") is Brkga10000
    assert (Brkga100().population, Brkga100().generations) == (10, 10)
    big = Brkga10000()
    assert (big.population, big.bias, big.resplit, big.bias_gene) == (100, 2.0, True, True)


def test_preset_ids_list_only_what_differs_from_the_preset() -> None:
    assert HEURISTICS.make("brkga-100[population=20]").method_id() == \
        "brkga-100[population=20]"
    assert HEURISTICS.make("brkga-100[population=10]").method_id() == "brkga-100"
    paper = HEURISTICS.make("brkga-10000[bias=0,resplit=false]")
    assert (paper.bias, paper.resplit, paper.bias_gene) == (0, False, True)
    assert paper.method_id() == "brkga-10000[bias=0,resplit=False]"
    assert HEURISTICS.get("brkga-100").summary().startswith("brkga-100: BRKGA with")


def test_preset_instances_pickle_and_reject_unknown_parameters() -> None:
    m = pickle.loads(pickle.dumps(Brkga100(n_jobs=2)))
    assert type(m) is Brkga100 and m.method_id() == "brkga-100[n_jobs=2]"
    with pytest.raises(TypeError):
        Brkga100(nosuch=1)
    with pytest.raises(ValueError, match="has no parameter nosuch"):
        register_preset(HEURISTICS, Preset("brkga-bad", Brkga, {"nosuch": 1}))
    assert "brkga-bad" not in HEURISTICS


def test_a_new_preset_is_one_entry_and_runs() -> None:
    cls = register_preset(HEURISTICS, Preset("brkga-tiny", Brkga,
                                             {"population": 4, "generations": 3},
                                             "brkga-tiny: BRKGA, 4 x 3 (a test preset)."))
    try:
        assert cls.__name__ == "BrkgaTiny" and cls.__module__ == __name__
        inst = next(iter(small_cases(1, seed=5, max_nodes=6)))
        opt, _ = brute_force(inst, 2)
        out = HEURISTICS.make("brkga-tiny").run(inst, 2, Budget(time_limit_s=10), 0)
        assert out.status in (Status.FEASIBLE, Status.OPTIMAL)
        assert out.incumbent is not None and out.incumbent >= opt - 1e-9
        assert out.method == "brkga-tiny"
        assert out.stats["evaluations"] <= 4 * 3
    finally:
        HEURISTICS.unregister("brkga-tiny")
