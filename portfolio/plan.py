"""The steps of a portfolio: which method runs, when, and on what share of the time.

A :class:`Step` names a registered method by its spec (``name`` or ``name[key=value,...]``,
parsed once when the step is made) and says what it is for (:class:`StepKind`): a
``heuristic`` finds partitions, a ``bound`` proves lower bounds, and a ``refine`` step runs
an improver (:class:`heuristics.base.Improver`) on the best partition found so far, which
it takes from the run context. Every step is run the same way, through the graded ``run``
of a method object built by :func:`make_method` (the registry builds it from the step's
parameters; ``solver`` is added as a parameter, never written into a spec string).

:data:`DEFAULT_PLAN` is the plan of ``pipecert solve`` (the measurements behind it are in
the README, "pipecert solve: default portfolio").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from pipecert.instance import Instance
from pipecert.registry import Method, Registry, Role, parse_method_spec

__all__ = ["StepKind", "Step", "DEFAULT_PLAN", "REFINE_TUBE", "build_plan", "make_method",
           "rescale_shares", "plan_for", "unsupported_reason"]


class StepKind(StrEnum):
    """What a step is for (compares equal to its string, e.g. ``StepKind.BOUND == "bound"``).

    ``refine`` steps run a heuristic (an improver) on the incumbent: they are skipped while
    no partition exists and their runs are reported as heuristic runs.
    """

    HEURISTIC = "heuristic"
    BOUND = "bound"
    REFINE = "refine"

    @property
    def role(self) -> Role:
        """The role of the step's method runs (refine steps run heuristics)."""
        return Role.BOUND if self is StepKind.BOUND else Role.HEURISTIC

    @property
    def method_role(self) -> str:
        """The role of the step's method runs as a string: ``"bound"`` or ``"heuristic"``."""
        return self.role.value

    def registry(self) -> Registry[Any]:
        """``FORMULATIONS`` for bounds, ``HEURISTICS`` otherwise (:meth:`Role.registry`)."""
        return self.role.registry()


@dataclass(frozen=True, slots=True)
class Step:
    """One portfolio step: a method, its share of the remaining time, when it runs.

    Parameters
    ----------
    role : StepKind or str
        ``"heuristic"``, ``"bound"`` or ``"refine"`` (an improver run on the incumbent).
    spec : str
        The method: ``name`` or ``name[key=value,...]`` (parsed once, here).
    share : float
        The fraction of the remaining time this step may use.
    min_s : float
        A floor on the step's time.
    if_gap_open : bool
        Skip the step once the target gap is reached.
    """

    role: StepKind
    spec: str
    share: float
    min_s: float = 0.0
    if_gap_open: bool = True
    name: str = field(init=False, compare=False, repr=False)
    params: Mapping[str, Any] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", StepKind(self.role))
        name, params = parse_method_spec(self.spec)  # InputError on a malformed spec
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", params)


#: The tube search of the refinement steps (widths 1 to 4, tubes of at most 50,000
#: down-sets), run after the local search on the best partition.
REFINE_TUBE = "tube[width=1,max_width=4,max_ideals=50000]"

#: The default plan (see the package docstring and the README for the measurements).
DEFAULT_PLAN: tuple[Step, ...] = (
    Step(StepKind.HEURISTIC, "bfs_order", 0.05, if_gap_open=False),
    Step(StepKind.HEURISTIC, "dfs_order", 0.05),
    Step(StepKind.HEURISTIC, "input_order", 0.05),
    Step(StepKind.BOUND, "combinatorial", 0.01, if_gap_open=False),
    Step(StepKind.BOUND, "node_bound", 0.10),
    # multilevel: the best partition at 120 s, before -> after (2 cores, shared): llama-405b
    # k=32 131,386 -> 15,813, jamba k=8 65,600 -> 5,392, jamba k=32 16,868 -> 14,753,
    # mamba k=8 1,590 -> 1,590 (pipecert solve --time-limit 120, 2026-11-28)
    Step(StepKind.HEURISTIC, "multilevel", 0.15),
    Step(StepKind.HEURISTIC, "brkga-100", 0.10),
    Step(StepKind.REFINE, "local_search", 0.05),
    Step(StepKind.REFINE, REFINE_TUBE, 0.05),
    Step(StepKind.BOUND, "path_bound", 0.20),
    Step(StepKind.HEURISTIC, "downset_dp", 0.08),
    Step(StepKind.BOUND, "guess", 0.40),
    Step(StepKind.HEURISTIC, "brkga[population=100,generations=1000000]", 0.90),
    Step(StepKind.REFINE, "local_search", 1.0),
    Step(StepKind.REFINE, REFINE_TUBE, 1.0),
)


def make_method(step: Step, solver: str | None = None) -> Method:
    """The method object of ``step``, built by its registry from the step's parameters.

    ``solver`` (the MIP backend) is passed to a bound whose class takes a ``solver``
    parameter that the step does not set. Errors are :class:`pipecert.InputError`.
    """
    settings = {"solver": solver} if solver and step.role is StepKind.BOUND else None
    method: Method = step.role.registry().create(step.name, step.params, settings=settings)
    return method


def build_plan(heuristics: Sequence[str] | None = None, bounds: Sequence[str] | None = None
               ) -> list[Step]:
    """The plan for explicit method lists (``all`` expands to every registered one).

    With neither list: :data:`DEFAULT_PLAN` (methods that are not registered are left out).
    With only bounds: the fast heuristics of the default plan, then the bounds. Otherwise
    the named heuristics, then the named bounds, sharing the time equally (each step gets
    ``1 / steps left`` of the remaining time).
    """
    def expand(kind: StepKind, specs: Sequence[str]) -> list[str]:
        out: list[str] = []
        for s in specs:
            if s == "all":
                out += [n for n in kind.registry().names() if n not in out]
            elif s not in out:
                kind.registry().make(s)  # InputError on an unknown name or bad parameters
                out.append(s)
        return out

    if not heuristics and not bounds:
        return [s for s in DEFAULT_PLAN if s.name in s.role.registry()]
    hs = expand(StepKind.HEURISTIC, heuristics or [])
    bs = expand(StepKind.BOUND, bounds or [])
    out: list[Step] = []
    if not hs:  # the fast ones
        out += [s for s in DEFAULT_PLAN[:3] if s.name in s.role.registry()]
    explicit = ([Step(StepKind.HEURISTIC, h, 1.0) for h in hs]
                + [Step(StepKind.BOUND, b, 1.0) for b in bs])
    n = len(explicit)
    for i, s in enumerate(explicit):  # step i of n gets 1/(n - i) of what is left
        out.append(replace(s, share=1.0 / (n - i), if_gap_open=False))
    return out


def unsupported_reason(step: Step, instance: Instance) -> str | None:
    """Why the method of ``step`` cannot run on ``instance``'s variant (None: it can)."""
    ok, why = make_method(step).supports_variant(instance)
    return None if ok else (why or "not supported")


def plan_for(plan: Sequence[Step], instance: Instance) -> list[Step]:
    """The steps of ``plan`` whose methods support ``instance``'s variant (what
    :func:`portfolio.solve` runs with ``skip_unsupported``; :func:`portfolio.warm_up`
    needs no more)."""
    return [s for s in plan if unsupported_reason(s, instance) is None]


def rescale_shares(plan: Sequence[Step], kept: Sequence[Step]) -> list[Step]:
    """``kept`` (a sub-list of ``plan``) with shares that keep their relative allocations.

    A step's share is a fraction of the time *remaining* when it starts, so in the full plan
    step i is allotted ``a_i = share_i * prod_{j<i} (1 - share_j)`` of the budget. Left
    alone, the shares of the kept steps would leave the time of the removed ones unused
    (a constrained instance on which the long BRKGA does not apply ended with most of its
    budget idle); here the kept steps' allotments are scaled to sum to the whole budget
    and turned back into shares of the remaining time (the last kept step gets all of it).
    """
    alloc: list[float] = []
    rem = 1.0
    for s in plan:
        a = min(1.0, max(0.0, s.share)) * rem
        alloc.append(a)
        rem -= a
    ids = {id(s) for s in kept}
    pairs = [(s, a) for s, a in zip(plan, alloc) if id(s) in ids]
    total = sum(a for _, a in pairs)
    if total <= 0:
        return list(kept)
    out: list[Step] = []
    left = 1.0
    for i, (s, a) in enumerate(pairs):
        frac = a / total
        share = 1.0 if i == len(pairs) - 1 or left <= 0 else min(1.0, frac / left)
        left -= frac
        out.append(replace(s, share=share))
    return out
