"""A roofline hardware profile measured on this machine (``pipecert calibrate``).

The roofline cost model (:class:`instances.costmodel.CostModel`) prices an operator as
``max(flops / peak, bytes / memory_bandwidth) + launch_overhead`` on a hardware profile
(``instances/hardware/*.toml``: datasheet numbers for accelerators). :func:`calibrate`
measures the same four quantities on the local device, so ``pipecert import-torch
--hardware measured.toml`` predicts *this* machine:

* ``peak_flops[dtype]``: the best ``2 n^3 / t`` of a square ``n x n`` matmul over
  ``n`` in :data:`GEMM_SIZES` (median of ``repeats`` timed runs per size), per dtype;
* ``memory_bandwidth``: ``2 x bytes / t`` of ``dst.copy_(src)`` on a buffer far larger than
  the caches (read once, written once: the roofline counts input plus output bytes);
* ``launch_overhead``: the median time per operator of a chain of :data:`CHAIN` additions
  on one-element tensors (the fixed cost of dispatching a kernel, which the roofline adds
  per operator);
* ``interconnect_bandwidth``: :func:`runtime.profile.measure_bandwidth` for the device
  pair of a pipeline on this device;
* ``memory_capacity``: physical memory (CPU) or the device's memory (CUDA).

The result is a profile like the bundled ones (its ``sources`` say how and when it was
measured); like every measurement it varies between runs and with the machine's load.
On a GPU the same code times with CUDA events and synchronisation; that path is written but
has not run on a GPU in this project's CI.
"""

from __future__ import annotations

import datetime
import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipecert.errors import InputError

__all__ = ["calibrate", "profile_toml", "write_profile", "GEMM_SIZES", "CHAIN"]

#: Square matmul sizes tried for the peak FLOP/s (the best one counts).
GEMM_SIZES: tuple[int, ...] = (256, 512, 1024, 2048)
#: Operators in the chain that measures the launch overhead.
CHAIN = 200
#: Bytes of the buffer copied for the memory bandwidth (far beyond any CPU cache).
COPY_BYTES = 256 * 2**20


def _timed(fn: Any, device: Any, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn()`` on ``device`` (synchronised on CUDA)."""
    import time

    import torch

    cuda = device.type == "cuda"
    for _ in range(max(warmup, 0)):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    samples = []
    for _ in range(max(repeats, 1)):
        if cuda:
            a = torch.cuda.Event(enable_timing=True)
            b = torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize(device)
            samples.append(float(a.elapsed_time(b)) * 1e-3)
        else:
            t0 = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - t0) * 1e-9)
    return float(statistics.median(samples))


def _memory_capacity(device: Any) -> float | None:
    import torch

    if device.type == "cuda":
        return float(torch.cuda.get_device_properties(device).total_memory)
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def calibrate(device: str = "cpu", *, dtypes: Sequence[str] = ("float32",),
              warmup: int = 2, repeats: int = 7, name: str | None = None,
              gemm_sizes: Sequence[int] | None = None,
              copy_bytes: int | None = None) -> dict[str, Any]:
    """Measure a roofline hardware profile on ``device``.

    Parameters
    ----------
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.
    dtypes : sequence of str
        Dtypes whose peak FLOP/s is measured (``float32``, ``bfloat16``, ``float16``...).
    warmup, repeats : int
        Untimed and timed runs per measurement (the median of the timed ones counts).
    name : str, optional
        Profile name (default ``measured-<device type>``).
    gemm_sizes : sequence of int, optional
        Matmul sizes tried for the peak (default :data:`GEMM_SIZES`).
    copy_bytes : int, optional
        Size of the buffer copied for the memory bandwidth (default :data:`COPY_BYTES`).

    Returns
    -------
    dict
        A profile table in the layout of ``instances/hardware/*.toml``, accepted by
        :meth:`instances.costmodel.HardwareProfile.from_dict`.

    Raises
    ------
    InputError
        A bad device, dtype or count.
    """
    import torch

    from instances.costmodel import dtype_name
    from runtime.profile import _device_name, measure_bandwidth, resolve_device

    if warmup < 0 or repeats < 1:
        raise InputError(f"warmup must be >= 0 and repeats >= 1, got {warmup}, {repeats}")
    gemm_sizes = tuple(GEMM_SIZES if gemm_sizes is None else gemm_sizes)
    copy_bytes = COPY_BYTES if copy_bytes is None else int(copy_bytes)
    if not dtypes:
        raise InputError("calibrate needs at least one dtype")
    if any(int(n) < 1 for n in gemm_sizes) or not gemm_sizes:
        raise InputError(f"matmul sizes must be >= 1, got {list(gemm_sizes)}")
    dev = resolve_device(device)
    peaks: dict[str, float] = {}
    for d in dtypes:
        dn = dtype_name(d)
        tdt = getattr(torch, dn, None)
        if not isinstance(tdt, torch.dtype) or not tdt.is_floating_point:
            raise InputError(f"calibrate: {d!r} is not a floating torch dtype")
        best = 0.0
        for n in gemm_sizes:
            a = torch.randn(int(n), int(n), device=dev).to(tdt)
            b = torch.randn(int(n), int(n), device=dev).to(tdt)
            sec = _timed(lambda a=a, b=b: torch.mm(a, b), dev, warmup, repeats)
            if sec > 0:
                best = max(best, 2.0 * float(n) ** 3 / sec)
        if not best > 0:
            raise InputError(f"calibrate: no matmul time measured for {dn}")
        peaks[dn] = best
    n = max(int(copy_bytes) // 4, 1)
    bufs = [torch.ones(n, dtype=torch.float32, device=dev)]
    bufs.append(torch.empty_like(bufs[0]))
    sec = _timed(lambda: bufs[1].copy_(bufs[0]), dev, warmup, repeats)
    membw = 2.0 * n * 4 / sec if sec > 0 else math.inf
    bufs.clear()
    one = torch.ones(1, device=dev)

    def chain() -> None:
        x = one
        for _ in range(CHAIN):
            x = torch.add(x, one)

    launch = _timed(chain, dev, warmup, repeats) / CHAIN
    link = measure_bandwidth(dev)
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    label = _device_name(dev)
    table: dict[str, Any] = {
        "name": name or f"measured-{dev.type}",
        "description": f"measured on {label}, torch {torch.__version__}, "
                       f"{torch.get_num_threads()} threads, {when}",
        "peak_flops": peaks,
        "memory_bandwidth": membw,
        "interconnect_bandwidth": float(link["bytes_per_s"]),
        "launch_overhead": launch,
        "sources": [
            "pipecert calibrate (runtime/calibrate.py): peak = best 2n^3/t of an n x n "
            f"matmul, n in {list(int(x) for x in gemm_sizes)}, median of {repeats} runs",
            f"memory bandwidth = 2 x {n * 4} bytes / t of a buffer copy",
            f"launch overhead = median time per operator of {CHAIN} one-element additions",
            f"interconnect = {link['path']}",
        ],
    }
    cap = _memory_capacity(dev)
    if cap is not None:
        table["memory_capacity"] = cap
    return table


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        return "[\n" + "".join(f"  {_toml_value(x)},\n" for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def profile_toml(table: dict[str, Any]) -> str:
    """The TOML text of a profile table (floats written with full precision)."""
    head = "# roofline hardware profile measured by `pipecert calibrate`\n"
    return head + "".join(f"{k} = {_toml_value(v)}\n" for k, v in table.items())


def write_profile(table: dict[str, Any], path: str | Path) -> None:
    """Write ``table`` as TOML, checked by reading it back as a hardware profile."""
    from instances.costmodel import HardwareProfile

    p = Path(path)
    p.write_text(profile_toml(table), encoding="utf-8")
    back = HardwareProfile.from_toml(p)
    if back.peak_flops != table["peak_flops"] or back.memory_bandwidth != \
            table["memory_bandwidth"]:
        raise InputError("the written profile does not read back identically", source=str(p))
