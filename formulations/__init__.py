"""Lower-bound methods: every registered :class:`Formulation`.

Importing this package imports every module in it, so dropping a file with a class decorated
by ``@FORMULATIONS.register`` is all it takes to add a bound.
"""

from formulations.base import FORMULATIONS, Formulation, combinatorial_bound
from pipecert.registry import discover

discover(__name__)

__all__ = ["FORMULATIONS", "Formulation", "combinatorial_bound"]
