"""Measure the training cost model against real forward and backward times on this CPU.

``python -m instances.measure_training`` builds three small architectures (an MLP, a
ResNet-like CNN and a pre-norm transformer, each an ``nn.Sequential`` of layers), then for
every layer

* **measures** its forward time (the layer alone on its real input activation) and its
  backward time (``torch.autograd.grad`` of its output with respect to its parameters and,
  except for the first layer, its input, i.e. exactly what a pipeline stage computes),
  single-threaded, median of repeated runs;
* **predicts** both with the importer (``import_module(..., training=True,
  level="layer")``) priced by a roofline profile of this CPU measured on the spot (peak
  float32 FLOP/s of a large matrix product, memory bandwidth of a large copy, launch
  overhead of a tiny operator).

It prints, per architecture, the totals, the measured/predicted ratios (forward, backward,
the whole layer) and the backward/forward ratios measured and predicted. The numbers of one
run are quoted in :mod:`instances.torch_import`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

__all__ = ["cpu_profile", "measure_layers", "predict_layers", "architectures", "main"]


def _median_time(fn: Callable[[], Any], reps: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_profile(reps: int = 5) -> Any:
    """A :class:`~instances.costmodel.HardwareProfile` of this CPU (one thread, float32)."""
    import torch

    from instances.costmodel import HardwareProfile

    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    t = _median_time(lambda: a @ b, reps)
    peak = 2 * 1024**3 / t
    x = torch.randn(32 * 2**20 // 4)
    y = torch.empty_like(x)
    t = _median_time(lambda: y.copy_(x), reps)
    bandwidth = 2 * x.numel() * 4 / t
    s = torch.randn(8)
    t = _median_time(lambda: torch.relu(s), 200)
    return HardwareProfile(name="cpu-measured", peak_flops={"float32": peak},
                           memory_bandwidth=bandwidth, interconnect_bandwidth=bandwidth,
                           launch_overhead=t, description="this CPU, one thread, measured")


def architectures() -> dict[str, tuple[Any, Any]]:
    """``name -> (nn.Sequential model in eval mode, example input)``."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    torch.manual_seed(0)

    class Basic(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.b1 = nn.BatchNorm2d(c)
            self.c2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm2d(c)

        def forward(self, x: Any) -> Any:
            return F.relu(x + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))

    class Down(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=False)
            self.b1 = nn.BatchNorm2d(2 * c)
            self.c2 = nn.Conv2d(2 * c, 2 * c, 3, padding=1, bias=False)
            self.b2 = nn.BatchNorm2d(2 * c)
            self.sc = nn.Conv2d(c, 2 * c, 1, stride=2, bias=False)

        def forward(self, x: Any) -> Any:
            return F.relu(self.sc(x) + self.b2(self.c2(F.relu(self.b1(self.c1(x))))))

    class Block(nn.Module):
        def __init__(self, d: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.n1 = nn.LayerNorm(d)
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)
            self.n2 = nn.LayerNorm(d)
            self.fc1 = nn.Linear(d, 4 * d)
            self.fc2 = nn.Linear(4 * d, d)

        def forward(self, x: Any) -> Any:
            b, s, d = x.shape
            q, k, v = self.qkv(self.n1(x)).view(b, s, 3, self.heads, d // self.heads) \
                .permute(2, 0, 3, 1, 4).unbind(0)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(b, s, d))
            return x + self.fc2(F.gelu(self.fc1(self.n2(x))))

    mlp = nn.Sequential(nn.Linear(1024, 4096), nn.GELU(), nn.Linear(4096, 4096), nn.GELU(),
                        nn.Linear(4096, 1024), nn.GELU(), nn.Linear(1024, 10))
    cnn = nn.Sequential(
        nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32),
                      nn.ReLU()),
        Basic(32), Basic(32), Down(32), Basic(64), Down(64), Basic(128),
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, 10)))
    tfm = nn.Sequential(*[Block(256, 4) for _ in range(4)], nn.LayerNorm(256),
                        nn.Linear(256, 1000))
    return {
        "mlp": (mlp.eval(), torch.randn(128, 1024)),
        "resnet-like": (cnn.eval(), torch.randn(8, 3, 64, 64)),
        "transformer": (tfm.eval(), torch.randn(8, 128, 256)),
    }


def measure_layers(model: Any, x: Any, reps: int = 7) -> list[tuple[float, float]]:
    """``(forward s, backward s)`` of every child of ``model``, measured alone."""
    import torch

    out = []
    a = x
    for i, layer in enumerate(model):
        inp = a.detach().requires_grad_(i > 0)
        params = [p for p in layer.parameters() if p.requires_grad]
        wrt = ([inp] if i > 0 else []) + params
        with torch.no_grad():
            y0 = layer(inp)
        g = torch.randn_like(y0)
        fwd = _median_time(partial(layer, inp), reps)
        if wrt:
            times = []
            for _ in range(reps + 1):
                y = layer(inp)
                t0 = time.perf_counter()
                torch.autograd.grad(y, wrt, g, allow_unused=True)
                times.append(time.perf_counter() - t0)
            bwd = statistics.median(times[1:])
        else:
            bwd = 0.0
        out.append((fwd, bwd))
        a = y0
    return out


def predict_layers(model: Any, x: Any, profile: Any) -> list[tuple[float, float]]:
    """``(forward s, backward s)`` of every child of ``model`` by the training cost model."""
    from instances.costmodel import CostModel
    from instances.torch_import import import_module

    inst = import_module(model, (x,), cost_model=CostModel(profile, None), level="layer",
                         layer_depth=1, layer_extra=0, training=True, name="m")
    out = []
    for i in range(len(model)):
        f = inst.index.get(str(i))
        b = inst.index.get(f"{i}grad")
        out.append((0.0 if f is None else inst.work[f] * 1e-6,
                     0.0 if b is None else inst.work[b] * 1e-6))
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    prof = cpu_profile()
    print(f"CPU profile: peak {prof.peak_flops['float32'] / 1e9:.1f} GFLOP/s, memory "
          f"{prof.memory_bandwidth / 1e9:.1f} GB/s, launch {prof.launch_overhead * 1e6:.1f} us")
    for name, (model, x) in architectures().items():
        meas = measure_layers(model, x, args.reps)
        pred = predict_layers(model, x, prof)
        mf = sum(m[0] for m in meas)
        mb = sum(m[1] for m in meas)
        pf = sum(p[0] for p in pred)
        pb = sum(p[1] for p in pred)
        per = [(m[1] / m[0], p[1] / p[0]) for m, p in zip(meas, pred) if m[0] and p[0]]
        rf = [m[0] / p[0] for m, p in zip(meas, pred) if p[0]]
        rb = [m[1] / p[1] for m, p in zip(meas, pred) if p[1]]
        print(f"{name}: {len(meas)} layers; measured fwd {mf * 1e3:.2f} ms bwd "
              f"{mb * 1e3:.2f} ms; predicted fwd {pf * 1e3:.2f} ms bwd {pb * 1e3:.2f} ms")
        print(f"  measured/predicted: fwd {mf / pf:.2f}, bwd {mb / pb:.2f}, fwd+bwd "
              f"{(mf + mb) / (pf + pb):.2f}; per layer median fwd "
              f"{statistics.median(rf):.2f} (range {min(rf):.2f}-{max(rf):.2f}), bwd "
              f"{statistics.median(rb):.2f} (range {min(rb):.2f}-{max(rb):.2f})")
        print(f"  bwd/fwd: measured {mb / mf:.2f}, predicted {pb / pf:.2f}; per layer "
              f"median measured {statistics.median(r[0] for r in per):.2f}, predicted "
              f"{statistics.median(r[1] for r in per):.2f}")
        for i, (m, p) in enumerate(zip(meas, pred)):
            print(f"    layer {i}: fwd {m[0] * 1e3:8.3f} / {p[0] * 1e3:8.3f} ms  bwd "
                  f"{m[1] * 1e3:8.3f} / {p[1] * 1e3:8.3f} ms  (measured / predicted)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
