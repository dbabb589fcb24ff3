"""BRKGA with the sort-and-slice decoder: SliceGraph's search (docs/theory/algorithms.md#brkga).

A biased random-key genetic algorithm (Gonçalves & Resende 2011) over chromosomes
``r in [0, 1)^n``, decoded by Algorithm 2 (:mod:`heuristics.decoder`: min-key Kahn order,
then the exact slicing DP). One generation::

    sort P by fitness (ties by position, elites first)
    elite   = best ceil(elite_frac * p)
    mutants = ceil(mutant_frac * p) fresh random chromosomes
    offspring (the rest): parent A uniform from the elite, B uniform from the non-elite,
        child[i] = A[i] with probability rho_e else B[i]
    evaluate mutants and offspring (elite fitness is cached)

Presets (docs/theory/algorithms.md#brkga), the named parameter sets of :data:`PRESETS`:
``brkga-100`` = population 10 x 10 generations, ``brkga-10000`` = 100 x 100 (with the
progress-biased decoder gene and the exact polish); ``brkga`` exposes every parameter
(defaults 100 x 100).
Candidate evaluations are counted as ``population`` per generation, so ``p * g`` matches the
paper's budget names.

**Exact pruning.** With ``prune=True`` a new chromosome is decoded with the largest elite
fitness ``T`` as the DP's incumbent: it gets its true value if that is ``< T`` and ``inf``
otherwise. Selection only needs to know which chromosomes beat ``T`` (the elite of the next
generation is the best ``|elite|`` of old elites and newcomers; a newcomer at ``>= T`` cannot
displace an old elite because elites are sorted first on ties), so pruning changes the speed,
never the search trajectory (the non-elite stay in population order, so the draw of
parent B does not see their values either).

Anytime: ``history`` holds ``(time_s, evaluations, best_value)`` at every improvement; the
search stops at the budget (polled every ``chunk`` decodes) and returns the best so far.
``n_jobs > 1`` decodes a population with a thread pool (the numba kernels release the GIL).
``seed_orders=True`` puts the BFS and DFS orders (as keys) into the first population.
Randomness only comes from the given generator.

**Progress-biased decoder** (``bias > 0``, a pipecert extension; ``bias=0`` is the paper's
decoder). The decoder sorts by ``r[v] + bias * pi(v)`` instead of ``r[v]``, where
``pi(v) = (A(v) - w(v)/2) / (A(v) + D(v) - w(v))`` is how far through the work of its own
ancestor/descendant cone node ``v`` lies (``A``: work of ``v`` and its ancestors, ``D``: of
``v`` and its descendants; exact sums by bitsets up to ``PROGRESS_EXACT_MAX`` nodes, longest
paths beyond). Two independent chains (the forward and backward passes of a training graph)
are thus interleaved by their *fraction* of work done, which is what a balanced pipeline
needs; the random keys perturb that order. The price: with keys in ``[0, 1)``, ``v`` can
only be taken before a ready ``u`` if ``pi(v) < pi(u) + 1 / bias``, so for ``bias >= 1``
not every topological order is reachable (the search is biased, still a valid heuristic:
every partition is re-scored). Seeded orders have the offset subtracted, so they decode
to themselves.

**Constraints** (``handles`` = groups, memory, data-only edges). With co-location groups
active a chromosome has one key per *unit* (:attr:`Instance.unit_of`), the decoder sorts the
unit DAG of the ordering edges and expands it to a unit order (:mod:`heuristics.decoder`;
every unit order is reachable, so the search space still holds an optimal partition); the
slicing cuts only between units, skips segments over the memory cap and charges every data
edge, including data-only ones pointing backward in the order (:mod:`heuristics.slicing`).
Every decoded partition is therefore feasible; a chromosome whose order admits no slicing
within the cap has fitness ``inf`` (it loses every comparison), and if no chromosome had a
feasible slicing the method returns no partition with ``stats["reason"]``. The progress
priority is computed on the unit DAG with unit work. The polish stays feasible: the local
search moves whole units within the cap (:mod:`heuristics.local_search`), and the tube
search runs only on instances whose constraints :class:`heuristics.tube.TubeSearch`
declares it handles, its result kept only if :func:`check_feasible` accepts it. The exact
reductions are not used on a constrained instance (:func:`heuristics.base.search_instance`).
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import numba as nb
import numpy as np
from numpy.typing import NDArray

from heuristics.base import HEURISTICS, ORDER_BASED, Heuristic, search_instance
from heuristics.decoder import (
    LARGE_N,
    bfs_order,
    decode,
    decode_batch,
    decode_within,
    dfs_order,
    keys_from_order,
    n_genes,
    unitised,
)
from heuristics.downset_dp import lift_partition
from heuristics.local_search import finish, refine_partition
from heuristics.tube import TubeSearch, tube_search
from pipecert.instance import Instance
from pipecert.partition import Partition, check_feasible, evaluate
from pipecert.presets import Preset, register_preset
from pipecert.results import Budget, HeuristicResult, SolveContext, Status

__all__ = ["Brkga", "Brkga100", "Brkga10000", "PRESETS", "brkga_search", "progress_priority"]

PROGRESS_EXACT_MAX = 20_000
TUBE_MAX_WIDTH = 4  # the polish's tube search widens from 1 up to this width
TUBE_MAX_IDEALS = 50_000  # down-sets per tube in the polish


@nb.njit(cache=True, nogil=True)
def _cone_work(order, ptr, adj, work):  # type: ignore[no-untyped-def]
    """Work of each node plus all nodes reaching it along ``order`` (bitset closure)."""
    n = order.size
    nw = (n + 63) >> 6
    bits = np.zeros((n, nw), np.uint64)
    out = np.empty(n)
    for v in order:
        for e in range(ptr[v], ptr[v + 1]):
            u = adj[e]
            for j in range(nw):
                bits[v, j] |= bits[u, j]
        bits[v, v >> 6] |= np.uint64(1) << np.uint64(v & 63)
        s = 0.0
        for j in range(nw):
            x = bits[v, j]
            b = 0
            while x:
                if x & np.uint64(1):
                    s += work[(j << 6) + b]
                x >>= np.uint64(1)
                b += 1
        out[v] = s
    return out


@nb.njit(cache=True, nogil=True)
def _path_work(order, ptr, adj, work):  # type: ignore[no-untyped-def]
    """Heaviest path work ending at each node along ``order``."""
    out = np.zeros(order.size)
    for v in order:
        m = 0.0
        for e in range(ptr[v], ptr[v + 1]):
            m = max(m, out[adj[e]])
        out[v] = m + work[v]
    return out


def progress_priority(instance: Instance) -> NDArray[np.float64]:
    """``pi(x)`` in ``[0, 1]`` per gene: the share of its cone's work done before ``x``
    (module doc); genes are units (unit DAG, unit work) when groups are active."""
    if unitised(instance):
        topo = np.arange(instance.n_units, dtype=np.int64)  # units are numbered topologically
        pp, pr = (np.ascontiguousarray(x, dtype=np.int64) for x in instance.unit_pred_csr)
        sp, sc = (np.ascontiguousarray(x, dtype=np.int64) for x in instance.unit_succ_csr)
        w = np.ascontiguousarray(instance.unit_sums(instance.work), dtype=np.float64)
    else:
        topo = np.ascontiguousarray(instance.topo_order, dtype=np.int64)
        pp, pr = (np.ascontiguousarray(x, dtype=np.int64) for x in instance.order_pred_csr)
        sp, sc = (np.ascontiguousarray(x, dtype=np.int64) for x in instance.order_succ_csr)
        w = np.ascontiguousarray(instance.work, dtype=np.float64)
    f = _cone_work if topo.size <= PROGRESS_EXACT_MAX else _path_work
    a = f(topo, pp, pr, w)
    d = f(topo[::-1].copy(), sp, sc, w)
    tot = a + d - w
    pi = np.where(tot > 0, (a - 0.5 * w) / np.maximum(tot, 1e-300), 0.0)
    return np.clip(pi, 0.0, 1.0)


def brkga_search(
    instance: Instance,
    k: int,
    budget: Budget,
    rng: np.random.Generator,
    *,
    population: int,
    generations: int,
    elite_frac: float = 0.2,
    mutant_frac: float = 0.2,
    rho_e: float = 0.7,
    seed_orders: bool = False,
    n_jobs: int = 1,
    prune: bool = True,
    chunk: int = 8,
    key_offset: NDArray[np.float64] | None = None,
    best_by_option: dict[int, tuple[float, NDArray[np.float64]]] | None = None,
    decoded: dict[str, Any] | None = None,
) -> tuple[NDArray[np.float64] | None, float, dict[str, Any], list[tuple[float, int, float]],
           bool]:
    """Run BRKGA; returns ``(best_keys, best_value, stats, history, stopped_by_budget)``.

    Chromosomes have one key per gene (:func:`heuristics.decoder.n_genes`: units when
    groups are active). ``best_keys`` is None (``best_value`` inf) when no chromosome's
    order had a slicing within the memory cap.

    On graphs of more than :data:`LARGE_N` nodes one decode can take minutes (the slicing
    DP is quadratic in n): rows are then decoded one by one with budget checks inside the
    DP (:func:`heuristics.decoder.decode_within`, the greedy slicing of the order when
    stopped), and ``decoded``, if given, receives ``value``, ``keys``, ``order`` and
    ``cuts`` of the best row so the caller need not decode it again.

    ``key_offset`` (one value per node) is added to every chromosome before decoding (the
    progress-biased decoder); ``best_keys`` are returned without it. A 2-D ``key_offset``
    of ``m > 1`` rows makes each chromosome one key longer: its last key ``g`` picks the
    row ``floor(g m)`` added to the other keys (the decoder is itself inherited);
    ``best_by_option``, if given, is filled with the best ``(value, keys)`` of each row.
    """
    if population < 1 or generations < 1:
        raise ValueError("population and generations must be >= 1")
    if not (0 < elite_frac < 1 and 0 <= mutant_frac < 1 and 0 <= rho_e <= 1):
        raise ValueError("need 0 < elite_frac < 1, 0 <= mutant_frac < 1, 0 <= rho_e <= 1")
    t0 = time.perf_counter()
    n = n_genes(instance)
    offsets = None if key_offset is None else np.atleast_2d(key_offset)
    genes = n + 1 if offsets is not None and offsets.shape[0] > 1 else n
    p = population
    ne = min(p, max(1, math.ceil(elite_frac * p)))
    nm = min(p - ne, math.ceil(mutant_frac * p))
    n_off = p - ne - nm
    pool = ThreadPoolExecutor(n_jobs) if n_jobs > 1 else None
    evals = 0
    pruned = 0
    best_val = math.inf
    best_keys: NDArray[np.float64] | None = None
    history: list[tuple[float, int, float]] = []
    stopped = False
    row_time: list[float | None] = [None]  # seconds per decoded row (per thread), measured
    large = instance.n_nodes > LARGE_N

    def evaluate_rows(keys: NDArray[np.float64], upper: float) -> NDArray[np.float64]:
        nonlocal evals, pruned, best_val, best_keys, stopped
        out = np.full(keys.shape[0], np.inf)
        # rows per budget check: at least ``chunk`` per thread, more on small graphs, but
        # never more than about 0.25 s of decoding (or the time left) once the cost of one
        # row is known: one decode of a 36,000-node graph takes seconds. Blocking changes
        # only where a budget stop can happen, never the result of a finished search.
        base = max(max(1, chunk) * max(1, n_jobs), 50_000 // max(instance.n_nodes, 1))
        a = 0
        while a < keys.shape[0]:
            if budget.expired() and evals > 0:
                stopped = True
                break
            if row_time[0] is None:
                step = 1
            else:
                cap = 0.25 / max(row_time[0], 1e-9)
                rem = budget.remaining()
                if math.isfinite(rem):
                    cap = min(cap, rem / max(row_time[0], 1e-9))
                step = max(1, min(base, int(cap) * max(1, n_jobs)))
            block = keys[a : a + step]
            tb = time.perf_counter()
            if offsets is None:
                dec = block
            elif genes == n:
                dec = block + offsets[0]
            else:
                pick = np.minimum((block[:, n] * offsets.shape[0]).astype(np.int64),
                                  offsets.shape[0] - 1)
                dec = block[:, :n] + offsets[pick]
            if large:
                # one decode may take minutes: decode row by row, the DP in chunks with
                # budget checks; keep the order and cuts of the best row
                vals = np.empty(block.shape[0])
                for r in range(block.shape[0]):
                    v, o_, c_, _done = decode_within(instance, dec[r], k, budget, upper)
                    vals[r] = v
                    if decoded is not None and v < decoded.get("value", math.inf):
                        decoded.update(value=v, keys=block[r].copy(), order=o_, cuts=c_)
            elif pool is None:
                vals = decode_batch(instance, dec, k, upper)
            else:
                parts = np.array_split(np.arange(block.shape[0]), n_jobs)
                futs = [pool.submit(decode_batch, instance, dec[ix], k, upper)
                        for ix in parts if ix.size]
                vals = np.concatenate([f.result() for f in futs])
            out[a : a + step] = vals
            if best_by_option is not None and genes > n:
                for o in np.unique(pick).tolist():
                    sel = np.flatnonzero(pick == o)
                    j = int(sel[np.argmin(vals[sel])])
                    if vals[j] < best_by_option.get(o, (math.inf, None))[0]:
                        best_by_option[o] = (float(vals[j]), block[j].copy())
            row_time[0] = (time.perf_counter() - tb) / block.shape[0] * max(1, n_jobs)
            a += block.shape[0]
            evals += block.shape[0]
            pruned += int(np.sum(~np.isfinite(vals)))
            i = int(np.argmin(vals))
            if vals[i] < best_val:
                best_val = float(vals[i])
                best_keys = block[i].copy()
                history.append((time.perf_counter() - t0, evals, best_val))
        return out

    try:
        pop = rng.random((p, genes))
        if seed_orders:
            for r, order in enumerate((bfs_order(instance), dfs_order(instance))[:p]):
                pop[r, :n] = keys_from_order(order, instance)
                if offsets is not None:  # decode exactly to the seeded order
                    pop[r, :n] -= offsets[0]
                    pop[r, n:] = 0.0
        fit = evaluate_rows(pop, math.inf)
        gens = 1
        while gens < generations and not stopped:
            rank = np.argsort(fit, kind="stable")
            # the non-elite keep their population order (not their fitness order), so
            # parent B's draw does not depend on pruned (inf) fitness values
            non_idx = np.sort(rank[ne:])
            elite, elite_fit = pop[rank[:ne]], fit[rank[:ne]]
            nonelite = pop[non_idx] if p > ne else elite
            mutants = rng.random((nm, genes))
            a_idx = rng.integers(0, ne, size=n_off)
            b_idx = rng.integers(0, nonelite.shape[0], size=n_off)
            mask = rng.random((n_off, genes)) < rho_e
            offspring = np.where(mask, elite[a_idx], nonelite[b_idx])
            newcomers = np.vstack([mutants, offspring])
            upper = float(elite_fit.max()) if prune else math.inf
            new_fit = evaluate_rows(newcomers, upper)
            pop = np.vstack([elite, newcomers])
            fit = np.concatenate([elite_fit, new_fit])
            gens += 1
    finally:
        if pool is not None:
            pool.shutdown()
    history.append((time.perf_counter() - t0, evals, best_val))
    stats = {"evaluations": evals, "generations": gens, "pruned_evaluations": pruned,
             "best_value": best_val, "population": p, "elite": ne, "mutants": nm,
             "search_time_s": time.perf_counter() - t0}
    return best_keys, best_val, stats, history, stopped


def _polish(instance: Instance, k: int, part: Partition, budget: Budget,
            stats: dict[str, Any]) -> Partition:
    """Alternate local search and the tube search while either improves.

    Both keep feasibility on a constrained instance: the local search moves whole units
    within the cap; the tube search runs only when :class:`TubeSearch` handles every active
    constraint, and a partition it returns is kept only if :func:`check_feasible` accepts
    it (module docstring).
    """
    val = evaluate(instance, part)
    stats["polish_before"] = val
    use_tube = instance.constraints <= TubeSearch.handles
    if not use_tube:
        stats["tube_stop"] = "not run (tube does not handle " \
            + ", ".join(sorted(instance.constraints - TubeSearch.handles)) + ")"
    for it in range(30):
        cand, _ = refine_partition(instance, part, k, budget)
        if it > 0 and not evaluate(instance, cand) < val:
            break  # the last round's result, which the tube search already settled
        if use_tube:
            tubed, st = tube_search(instance, cand, k, budget, width=1,
                                    max_width=TUBE_MAX_WIDTH, max_ideals=TUBE_MAX_IDEALS)
            stats["tube_stop"] = st["tube_stop"]
            if check_feasible(instance, tubed, k=k):
                st = {"tube_stop": "infeasible tube result dropped"}
                stats["tube_stop"] = st["tube_stop"]
            else:
                cand = tubed
        else:
            st = {}
        cval = evaluate(instance, cand)
        if st.get("tube_optimal"):  # the tube held every down-set: cand is optimal
            part, val = (cand, cval) if cval < val else (part, val)
            break
        if cval >= val or budget.expired():
            if cval < val:
                part, val = cand, cval
            break
        part, val = cand, cval
    stats["polish_after"] = val
    return part


@HEURISTICS.register
class Brkga(Heuristic):
    """BRKGA over random keys with the sort-and-slice decoder (SliceGraph), all parameters.

    Parameters
    ----------
    population, generations : int
        Population size ``p`` and number of generations ``g`` (``p * g`` evaluations).
    elite_frac, mutant_frac, rho_e : float
        Elite, mutant fractions and elite-inheritance probability (docs/theory/algorithms.md#brkga
        guesses 0.2, 0.2, 0.7, inside Gonçalves-Resende's recommended ranges).
    seed_orders : bool
        Seed the first population with the BFS and DFS orders.
    n_jobs : int
        Threads decoding a population (default 1).
    prune : bool
        Exact incumbent pruning of the decoder (module docstring); does not change results.
    reduce : bool
        Search the instance reduced by the exact reductions of :mod:`heuristics.downset_dp`
        (zero-work single-consumer sources join their consumer; zero-cost sources go to
        stage 0) and lift the result back at equal cost. ``False`` is the paper's plain
        decoder, whose random keys scatter weight nodes (sources, ready from the start)
        through the order.
    refine : bool
        Finish with the local search.
    bias : float
        Progress-biased decoder (module docstring): sort by ``r + bias * pi``. ``0`` is the
        paper's decoder.
    bias_gene : bool
        With ``bias > 0``: each chromosome carries one more key that picks its decoder,
        the paper's (key < 0.5) or the progress-biased one, so the search keeps both and
        selection settles which suits the graph (the bias helps training graphs and hurts
        communication-heavy operator graphs at large k).
    resplit : bool
        Polish the final best partition (with ``bias_gene``: the best of each decoder):
        alternate the local search and the tube search (:mod:`heuristics.tube`: the exact
        down-set DP over the partitions whose every cut stays within a few stages of the
        incumbent's, widths 1 to ``TUBE_MAX_WIDTH``, at most ``TUBE_MAX_IDEALS``
        down-sets; width 1 holds every exact re-split of a pair of adjacent stages)
        while either improves. Post-processing only (no decoder evaluations).
    """

    name = "brkga"
    handles: ClassVar[frozenset[str]] = ORDER_BASED
    citation = "Archer et al., ICML 2024 (SliceGraph); Gonçalves & Resende, J. Heuristics 2011"

    def __init__(
        self,
        *,
        population: int = 100,
        generations: int = 100,
        elite_frac: float = 0.2,
        mutant_frac: float = 0.2,
        rho_e: float = 0.7,
        seed_orders: bool = False,
        n_jobs: int = 1,
        prune: bool = True,
        reduce: bool = True,
        refine: bool = False,
        bias: float = 0.0,
        resplit: bool = False,
        bias_gene: bool = False,
    ) -> None:
        if bias < 0:
            raise ValueError("bias must be >= 0")
        self.population = population
        self.generations = generations
        self.elite_frac = elite_frac
        self.mutant_frac = mutant_frac
        self.rho_e = rho_e
        self.seed_orders = seed_orders
        self.n_jobs = n_jobs
        self.prune = prune
        self.reduce = reduce
        self.refine = refine
        self.bias = bias
        self.resplit = resplit
        self.bias_gene = bias_gene

    def solve(
        self,
        instance: Instance,
        k: int,
        budget: Budget,
        rng: np.random.Generator,
        context: SolveContext | None = None,
    ) -> HeuristicResult:
        """Run the search, decode the best chromosome with its slices, optionally refine."""
        red, kept, host = search_instance(instance, self.reduce)
        offset: NDArray[np.float64] | None = None
        if self.bias > 0:
            offset = self.bias * progress_priority(red)
            if self.bias_gene:  # rows: the paper's decoder, the progress-biased one
                offset = np.vstack([np.zeros_like(offset), offset])
        by_option: dict[int, tuple[float, NDArray[np.float64]]] = {}
        decoded: dict[str, Any] = {}
        keys, _, stats, history, stopped = brkga_search(
            red, k, budget, rng,
            population=self.population, generations=self.generations,
            elite_frac=self.elite_frac, mutant_frac=self.mutant_frac, rho_e=self.rho_e,
            seed_orders=self.seed_orders, n_jobs=self.n_jobs, prune=self.prune,
            key_offset=offset, best_by_option=by_option, decoded=decoded,
        )
        n = n_genes(red)
        if keys is None:  # no chromosome had a slicing within the memory cap
            stats["reason"] = (f"no decoded order ({stats['evaluations']} evaluated) has a "
                               f"slicing into at most {k} stages that meets the memory cap")
            return HeuristicResult(None, Status.TIME_LIMIT if stopped else Status.NO_SOLUTION,
                                   stats, tuple(history))

        def partition_of(keys: NDArray[np.float64]) -> Partition | None:
            """Decode ``keys`` (with the decoder its gene picked) and lift the result (None
            if the order has no slicing within the memory cap, or none in the budget)."""
            if offset is None:
                dec = keys
            elif offset.ndim == 1:
                dec = keys + offset
            else:
                pick = min(int(keys[n] * offset.shape[0]), offset.shape[0] - 1)
                dec = keys[:n] + offset[pick]
            if "keys" in decoded and np.array_equal(keys, decoded["keys"]):
                order, cuts = decoded["order"], decoded["cuts"]  # large graph: decoded once
                val = float(decoded["value"])
            elif red.n_nodes > LARGE_N:
                val, order, cuts, _done = decode_within(red, dec, k, budget)
            else:
                val, order, cuts = decode(red, dec, k)
            if not math.isfinite(val):
                return None
            out = Partition.from_slices(order, cuts.tolist(), k)
            if kept is not None and host is not None and red is not instance:
                out = lift_partition(instance, kept, host, out.stage_of, k)
            return out

        part: Partition | None = partition_of(keys)
        if offset is not None and offset.ndim == 2:
            stats["biased_decoder"] = bool(min(int(keys[n] * 2), 1))
        stats["n_nodes_searched"] = red.n_nodes
        if self.resplit and part is not None:
            # polish the best of each decoder: the two settle in different local optima, and
            # the second best before polishing is sometimes the best after (measured)
            starts = [part] + [partition_of(kv) for o, (_, kv) in sorted(by_option.items())
                               if not np.array_equal(kv, keys)]
            best_val = math.inf
            for i, start in enumerate(starts):
                if start is None:
                    continue
                st: dict[str, Any] = {}
                cand = _polish(instance, k, start, budget, st)
                cval = evaluate(instance, cand)
                if cval < best_val:
                    best_val, part = cval, cand
                    stats.update(st, polish_start=i)
        if part is None:
            stats["reason"] = "the best order's slicing did not finish within the budget"
            return HeuristicResult(None, Status.TIME_LIMIT, stats, tuple(history))
        part = finish(instance, k, part, budget, self.refine, stats)
        status = Status.TIME_LIMIT if stopped else Status.FEASIBLE
        return HeuristicResult(part, status, stats, tuple(history))


#: The named parameter sets of :class:`Brkga` (docs/theory/algorithms.md#brkga), each
#: registered under its name with these values as its defaults
#: (``brkga-100[population=20]`` overrides one).
PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("brkga-100", Brkga, {"population": 10, "generations": 10},
           "brkga-100: BRKGA with population 10 x 10 generations (100 evaluations, "
           "Archer et al.)."),
    Preset("brkga-10000", Brkga,
           {"population": 100, "generations": 100, "bias": 2.0, "resplit": True,
            "bias_gene": True},
           """brkga-10000: BRKGA, population 100 x 100 (10^4 evaluations, Archer et al.).

    Defaults to a decoder gene choosing between the paper's decoder and the progress-biased
    one (``bias=2, bias_gene=True``) and the exact polish (``resplit=True``: tube search,
    pair re-splits); ``brkga-10000[bias=0,resplit=false]`` is the paper's configuration.
    """),
)}

Brkga100 = register_preset(HEURISTICS, PRESETS["brkga-100"], qualname="Brkga100")
Brkga10000 = register_preset(HEURISTICS, PRESETS["brkga-10000"], qualname="Brkga10000")
