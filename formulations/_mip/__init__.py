"""Deprecated alias of :mod:`formulations.mip` (the MIP layer is public now).

Kept so that code written against the old private path (``formulations._mip``,
``formulations._mip.template``, ``.backends``, ``.model``, ``.chain``) still imports; new code
imports :mod:`formulations.mip`. ``template`` is now :mod:`formulations.mip.base`.
"""

import sys
import warnings

from formulations import mip as _mip
from formulations.mip import *  # noqa: F403
from formulations.mip import backends, base, chain, model

warnings.warn("formulations._mip is deprecated: import formulations.mip",
              DeprecationWarning, stacklevel=2)

__all__ = _mip.__all__

for _name, _mod in (("template", base), ("backends", backends), ("model", model),
                    ("chain", chain), ("base", base)):
    sys.modules[f"{__name__}.{_name}"] = _mod
