"""Measured vs predicted stage times of a partition (``pipecert bench-stages``).

For each stage ``b`` of a partition exported by :mod:`runtime.export`:

* predicted: the instance's cost model, exactly :func:`pipecert.stage_costs` -- ``work``
  (sum of the stage's node work), ``transfer = comm_in + comm_out`` and their sum, in the
  instance's time unit (``metadata["units"]["work"]``, e.g. ``us``);
* measured: the stage run alone on its recorded inputs (the stages first run once in order),
  ``warmup`` untimed runs then the median of ``repeats`` timed ones --
  :meth:`runtime.export.StagedModel.measure` (``time.perf_counter``) on the CPU, CUDA event
  pairs with a synchronise on a GPU -- and ``transfer = (bytes received + bytes sent) /
  bandwidth`` with the boundary bytes of :meth:`~runtime.export.StagedModel.stage_bytes`
  and a given bandwidth or one measured by :func:`runtime.profile.measure_bandwidth`;
  converted to the same unit.

The report names the predicted bottleneck (argmax of the predicted totals) and the measured
one (argmax of the measured totals), and the relative error of the predicted bottleneck
value, ``(max predicted - max measured) / max measured``. A roofline instance (the default
of ``pipecert import-torch``) predicts the times of its hardware profile (an A100 by
default), so on a CPU its ratios are far from 1 while its bottleneck may still be right; a
graph written by ``pipecert profile`` on the same machine predicts this machine.

On CUDA the stage modules and the inputs are moved to the device; a stage whose exported
graph creates a tensor on a fixed device (``device=cpu`` in an ATen call) fails there. The
CUDA path is written but tested in CI only for its error when no CUDA device exists.

The measured transfer is a model too (bytes over a copy bandwidth): the stages run in one
process and hand tensors over by reference, so there is no transfer to clock.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pipecert.errors import InputError
from pipecert.instance import Instance
from pipecert.partition import Partition, stage_costs

__all__ = ["BenchReport", "StageRow", "bench_stages", "export_for_bench", "time_unit",
           "UNIT_SECONDS"]

#: Seconds per time unit an instance may state.
UNIT_SECONDS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


@dataclass(frozen=True)
class StageRow:
    """One stage: predicted and measured times in the report's unit.

    ``ratio`` is measured total / predicted total and ``work_ratio`` measured compute /
    predicted work (None when the prediction is 0).
    """

    stage: int
    nodes: int
    predicted_work: float
    predicted_transfer: float
    predicted_total: float
    bytes_in: int
    bytes_out: int
    measured_compute: float
    measured_transfer: float
    measured_total: float
    ratio: float | None
    work_ratio: float | None


@dataclass
class BenchReport:
    """Per-stage predicted vs measured times and the bottleneck they name.

    Attributes
    ----------
    unit : str
        Time unit of every time (the instance's, e.g. ``"us"``).
    rows : list of StageRow
        One row per stage, in pipeline order.
    predicted_bottleneck, measured_bottleneck : int
        Argmax of the predicted / measured stage totals.
    predicted_bottleneck_value, measured_bottleneck_value : float
        The two maxima.
    relative_error : float
        ``(predicted_bottleneck_value - measured_bottleneck_value) /
        measured_bottleneck_value``.
    measured_at_predicted : float
        The measured total of the predicted bottleneck stage (equal to
        ``measured_bottleneck_value`` when the two agree): what the model's choice costs by
        the clock, whatever the model's scale (a roofline of another device).
    device, bandwidth_bytes_per_s, bandwidth_source, warmup, repeats, threads, method :
        How it was measured.
    cost_model : str
        The instance's cost model kind (``roofline``, ``measured``...).
    """

    unit: str
    rows: list[StageRow]
    predicted_bottleneck: int
    measured_bottleneck: int
    predicted_bottleneck_value: float
    measured_bottleneck_value: float
    relative_error: float
    measured_at_predicted: float
    device: str
    bandwidth_bytes_per_s: float
    bandwidth_source: str
    warmup: int
    repeats: int
    threads: int
    method: str
    cost_model: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        """Number of stages."""
        return len(self.rows)

    @property
    def bottleneck_agrees(self) -> bool:
        """Whether the predicted bottleneck stage is the measured one."""
        return self.predicted_bottleneck == self.measured_bottleneck

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (``stages``: one object per row)."""
        d = asdict(self)
        d["stages"] = d.pop("rows")
        d["k"] = self.k
        d["bottleneck_agrees"] = self.bottleneck_agrees
        return d

    def dumps(self) -> str:
        """:meth:`to_json` as indented JSON text."""
        return json.dumps(self.to_json(), indent=1)


def time_unit(instance: Instance) -> str:
    """The instance's time unit (``metadata["units"]["work"]``, else the cost model's).

    Raises
    ------
    InputError
        When the instance states none of :data:`UNIT_SECONDS`.
    """
    meta: dict[str, Any] = dict(instance.metadata or {})
    units = meta.get("units")
    unit = units.get("work") if isinstance(units, Mapping) else None
    if unit is None:
        cm = meta.get("cost_model")
        unit = cm.get("time_unit") if isinstance(cm, Mapping) else None
    if unit not in UNIT_SECONDS:
        raise InputError(f"the graph states no time unit in {sorted(UNIT_SECONDS)} "
                         f"(metadata units: {units!r}): its costs cannot be compared with a "
                         "clock")
    return str(unit)


def export_for_bench(model_path: str, partition_path: str, *, factory: str | None = None,
                     options: Mapping[str, Any] | None = None,
                     batch_size: int | None = None) -> tuple[Instance, Partition, Any, Any, Any]:
    """Read a graph and its partition and export the stages as ``pipecert export`` does
    (:func:`runtime.export.export_from_files`); also checks the graph states a time unit.

    Returns ``(instance, partition, staged, args, kwargs)``: the factory's example inputs
    run the stages.
    """
    from runtime.export import export_from_files

    inst, part, staged, _module, f_args, f_kwargs = export_from_files(
        model_path, partition_path, factory=factory, options=options, batch_size=batch_size,
        purpose="bench-stages runs")
    time_unit(inst)
    return inst, part, staged, f_args, f_kwargs


def _measure_cuda(staged: Any, args: Sequence[Any], kwargs: Mapping[str, Any], device: Any,
                  warmup: int, repeats: int) -> list[float]:
    """Median seconds per stage on a CUDA device (stages and inputs moved there).

    Each timed run is bracketed by a pair of ``torch.cuda.Event`` and synchronised before
    its time is read.
    """
    import torch

    from runtime.profile import _to_device

    stages = [s.to(device) for s in staged.stages]
    old = staged.stages
    staged.stages = stages
    try:
        with torch.no_grad():
            feeds = staged.stage_feeds(*_to_device(tuple(args), device),
                                       **_to_device(dict(kwargs), device))
            out = []
            for stage, feed in zip(stages, feeds, strict=True):
                for _ in range(warmup):
                    stage(*feed)
                torch.cuda.synchronize(device)
                times = []
                for _ in range(repeats):
                    a = torch.cuda.Event(enable_timing=True)
                    b = torch.cuda.Event(enable_timing=True)
                    a.record()
                    stage(*feed)
                    b.record()
                    torch.cuda.synchronize(device)
                    times.append(float(a.elapsed_time(b)) * 1e-3)
                out.append(statistics.median(times))
    finally:
        staged.stages = old
    return out


def bench_stages(instance: Instance, partition: Partition, staged: Any, args: Sequence[Any],
                 kwargs: Mapping[str, Any] | None = None, *, device: str = "cpu",
                 warmup: int = 2, repeats: int = 7,
                 bandwidth: float | None = None) -> BenchReport:
    """Run each stage alone and compare its time with the instance's prediction.

    Parameters
    ----------
    instance, partition : Instance, Partition
        The graph and the partition the stages were exported from.
    staged : runtime.export.StagedModel
        The exported stages (:func:`runtime.export.export_stages`).
    args, kwargs
        The model's example inputs (the factory's).
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (:func:`runtime.profile.resolve_device`).
    warmup, repeats : int
        Untimed and timed runs per stage (median of the timed ones).
    bandwidth : float, optional
        Bytes/s between stages; default: measured on ``device``
        (:func:`runtime.profile.measure_bandwidth`).

    Returns
    -------
    BenchReport

    Raises
    ------
    InputError
        Bad ``warmup`` / ``repeats`` / ``bandwidth`` / device, no time unit, stages that are
        not the partition's.
    """
    import torch

    from runtime.profile import measure_bandwidth, resolve_device

    if warmup < 0 or repeats < 1:
        raise InputError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
    if bandwidth is not None and not (math.isfinite(bandwidth) and bandwidth > 0):
        raise InputError(f"bandwidth must be a positive number of bytes/s, got {bandwidth!r}")
    dev = resolve_device(device)
    unit = time_unit(instance)
    scale = 1.0 / UNIT_SECONDS[unit]
    costs = stage_costs(instance, partition)
    if costs.total.size != staged.k:
        raise InputError(f"{staged.k} exported stages but the partition lists "
                         f"{costs.total.size}: the stages are not this partition's")
    kwargs = dict(kwargs or {})
    if dev.type == "cuda":
        seconds = _measure_cuda(staged, args, kwargs, dev, warmup, repeats)
        method = "torch.cuda.Event pairs, synchronised per run, median"
    else:
        seconds = staged.measure(*args, warmup=warmup, repeats=repeats, **kwargs)
        method = "time.perf_counter per run, median"
    if bandwidth is None:
        bw_info = measure_bandwidth(dev)
        bw = float(bw_info["bytes_per_s"])
        bw_source = f"measured: {bw_info['path']}"
    else:
        bw = float(bandwidth)
        bw_source = "given (--bandwidth)"
    rows = []
    for b in range(staged.k):
        rb, sb = staged.stage_bytes(b)
        comp = float(seconds[b]) * scale
        tran = (rb + sb) / bw * scale
        pw = float(costs.work[b])
        pt = float(costs.comm_in[b] + costs.comm_out[b])
        ptot = float(costs.total[b])
        mtot = comp + tran
        rows.append(StageRow(b, len(staged.boundary[b].nodes), pw, pt, ptot, int(rb),
                             int(sb), comp, tran, mtot,
                             mtot / ptot if ptot > 0 else None,
                             comp / pw if pw > 0 else None))
    pb = max(range(len(rows)), key=lambda i: rows[i].predicted_total)
    mb = max(range(len(rows)), key=lambda i: rows[i].measured_total)
    pv, mv = rows[pb].predicted_total, rows[mb].measured_total
    meta: dict[str, Any] = dict(instance.metadata or {})
    cm = meta.get("cost_model")
    kind = str(cm.get("kind", "unknown")) if isinstance(cm, Mapping) else "unknown"
    return BenchReport(unit, rows, pb, mb, pv, mv, (pv - mv) / mv if mv > 0 else math.inf,
                       rows[pb].measured_total,
                       str(dev), bw, bw_source, warmup, repeats, torch.get_num_threads(),
                       method, kind, {"instance": instance.name,
                                      "level": staged.info.get("level"),
                                      "factory": staged.info.get("factory"),
                                      "batch_size": staged.info.get("batch_size")})
