"""Upper-bound methods: every registered :class:`Heuristic`.

Importing this package imports every module in it, so dropping a file with a class decorated
by ``@HEURISTICS.register`` is all it takes to add a method.
"""

from heuristics.base import HEURISTICS, Heuristic, Improver
from pipecert.registry import discover

discover(__name__)

__all__ = ["HEURISTICS", "Heuristic", "Improver"]
