"""Named parameter sets ("presets") of a registered method.

A preset is a name for a set of parameter values of an existing method, registered next to
it: ``brkga-100`` is :class:`heuristics.brkga.Brkga` with ``population=10,
generations=10``. It is written as data, not as a subclass that repeats every parameter::

    Brkga100 = register_preset(HEURISTICS, Preset(
        "brkga-100", Brkga, {"population": 10, "generations": 10},
        "brkga-100: BRKGA with population 10 x 10 generations."))

The registered class takes the same parameters as its base, with the preset's values as
defaults, so ``brkga-100`` and ``brkga-100[population=20]`` are method specs like any other
and a method id only lists what differs from the preset (``brkga-100[population=20]``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from pipecert.registry import Method, Registry

__all__ = ["Preset", "register_preset"]

M = TypeVar("M", bound=Method)


@dataclass(frozen=True)
class Preset:
    """A named parameter set of ``base``.

    Attributes
    ----------
    name : str
        Registry name (stable forever: it appears in results files).
    base : type
        The method class the values are for.
    params : mapping
        Parameter values; every key must be a keyword-only parameter of ``base``.
    doc : str
        Docstring of the registered class; its first line is the summary ``pipecert list``
        shows.
    """

    name: str
    base: type[Method]
    params: Mapping[str, Any] = field(default_factory=dict)
    doc: str = ""


def register_preset(registry: Registry[M], preset: Preset, *, qualname: str | None = None,
                    module: str | None = None) -> type[M]:
    """Register ``preset`` in ``registry`` as a class and return the class.

    The class is a subclass of ``preset.base`` whose ``__init__`` has the preset's values as
    defaults. Bind it to a module-level name (``qualname``, default: the name in CamelCase
    without dashes) of ``module`` (default: the caller's module) so that it pickles.

    Raises
    ------
    ValueError
        If a preset value names no keyword-only parameter of the base class.
    """
    base = preset.base
    sig = inspect.signature(base.__init__)
    kw = {p.name: p for p in sig.parameters.values()
          if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = sorted(set(preset.params) - set(kw))
    if unknown:
        raise ValueError(f"preset {preset.name!r}: {base.__name__} has no parameter "
                         f"{', '.join(unknown)} (known: {', '.join(sorted(kw))})")
    values = dict(preset.params)

    def __init__(self: Any, **params: Any) -> None:
        base.__init__(self, **{**values, **params})

    params = [p.replace(default=values[p.name]) if p.name in values else p
              for p in sig.parameters.values()]
    __init__.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    if qualname is None:
        qualname = "".join(part[:1].upper() + part[1:]
                           for part in preset.name.replace("_", "-").split("-"))
    if module is None:
        module = sys._getframe(1).f_globals.get("__name__", base.__module__)
    __init__.__qualname__ = f"{qualname}.__init__"
    cls = type(qualname, (base,), {
        "__init__": __init__,
        "__doc__": preset.doc or f"{preset.name}: {base.__name__} preset.",
        "__module__": module,
        "__qualname__": qualname,
        "name": preset.name,
        "preset": MappingProxyType(values),
    })
    return registry.register(cls)
