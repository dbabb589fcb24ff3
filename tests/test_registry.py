"""The generic registry, method specs and the registries of formulations and heuristics."""

import pytest

from formulations import FORMULATIONS, Formulation
from heuristics import HEURISTICS, Heuristic
from pipecert import InputError, Registry, parse_method_spec


def test_parse_method_spec():
    assert parse_method_spec("brkga") == ("brkga", {})
    assert parse_method_spec("x[a=1,b=true,c=hello,d=0.5]") == (
        "x", {"a": 1, "b": True, "c": "hello", "d": 0.5})
    with pytest.raises(InputError):
        parse_method_spec("bad spec!")


def test_duplicate_name_raises_and_unknown_lists_names():
    reg: Registry[Formulation] = Registry("formulation", Formulation)
    cls = FORMULATIONS.get("combinatorial")
    reg.register(cls)

    class Other(cls):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(ValueError, match="already registered"):
        reg.register(Other)
    with pytest.raises(KeyError, match="known: combinatorial"):
        reg.get("combinatorail")


@pytest.mark.parametrize("registry,base", [(FORMULATIONS, Formulation), (HEURISTICS, Heuristic)])
def test_every_registered_method_is_default_constructible_and_round_trips(registry, base):
    for name, cls in registry.items():
        obj = cls()
        assert isinstance(obj, base)
        assert obj.name == name
        again = registry.make(obj.method_id())
        assert again.params() == obj.params(), f"{name}: method_id does not round-trip"
        assert cls.summary(), f"{name}: the class needs a docstring (its first line is shown)"
