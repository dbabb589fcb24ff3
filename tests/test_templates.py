"""The templates for new methods work when copied, and are not registered as they stand."""

import importlib

import numpy as np

from formulations import FORMULATIONS
from heuristics import HEURISTICS
from pipecert.testing import check_formulation, check_heuristic


def test_templates_are_not_registered():
    assert "my_bound" not in FORMULATIONS
    assert "my_heuristic" not in HEURISTICS


def test_template_formulation_passes_the_validity_checks():
    mod = importlib.import_module("formulations.template_formulation")
    try:
        assert check_formulation(mod.MyBound(), count=20) == 80
    finally:
        FORMULATIONS.unregister("my_bound")


def test_template_heuristic_passes_the_heuristic_checks():
    mod = importlib.import_module("heuristics.template_heuristic")
    try:
        assert check_heuristic(mod.MyHeuristic(), count=20) == 80
        assert np.all(mod.MyHeuristic().solve(
            mod.Instance(["a"], [1], [1]), 2, mod.Budget(), np.random.default_rng(0)
        ).partition.stage_of == 0)
    finally:
        HEURISTICS.unregister("my_heuristic")
