"""pipecert: pipeline partitioning of DNN graphs with certified optimality gaps.

The core package: the problem model (:class:`Instance`, :class:`Partition`), the one
reference cost function (:func:`evaluate`, :func:`stage_costs`, :func:`check_feasible`), the
generic plug-in :class:`Registry`, the shared result types and the one cache helper
(:class:`Memo`, keyed by :attr:`Instance.fingerprint` through :func:`instance_key`). It
imports no solver and no plotting library.
"""

from pipecert.errors import (
    FormatError,
    InputError,
    InstanceError,
    InvalidBoundError,
    PipecertError,
)
from pipecert.instance import CONSTRAINTS, Instance, validate_k
from pipecert.memo import Memo, instance_key
from pipecert.partition import (
    Partition,
    StageCosts,
    block_cost,
    check_feasible,
    evaluate,
    is_feasible,
    stage_costs,
)
from pipecert.registry import Method, Registry, discover, parse_method_spec
from pipecert.results import (
    BOUND_ATOL,
    BOUND_RTOL,
    DUAL_BOUND_MARGIN,
    BoundResult,
    Budget,
    HeuristicResult,
    RunOutcome,
    SolveContext,
    Status,
    bound_exceeds,
    safe_dual_bound,
)
from pipecert.seeding import derive_seed

__version__ = "0.1.0"

__all__ = [
    "BOUND_ATOL",
    "BOUND_RTOL",
    "DUAL_BOUND_MARGIN",
    "BoundResult",
    "CONSTRAINTS",
    "Budget",
    "FormatError",
    "HeuristicResult",
    "InputError",
    "Instance",
    "InstanceError",
    "InvalidBoundError",
    "Memo",
    "Method",
    "Partition",
    "PipecertError",
    "Registry",
    "RunOutcome",
    "SolveContext",
    "StageCosts",
    "Status",
    "block_cost",
    "bound_exceeds",
    "check_feasible",
    "derive_seed",
    "discover",
    "evaluate",
    "instance_key",
    "is_feasible",
    "parse_method_spec",
    "safe_dual_bound",
    "stage_costs",
    "validate_k",
    "__version__",
]
