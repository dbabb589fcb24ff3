"""Splits that run as PyTorch stages: export, run, profile and measure pipeline splits.

Modules: :mod:`runtime.export` (split the ``torch.export`` program of a model along a
partition into stage modules, run and save them), :mod:`runtime.pipelining` (the
``split_spec`` of ``torch.distributed.pipelining`` for a partition that follows module
boundaries, and running it on CPU), :mod:`runtime.profile` (measured per-node costs, like
PipeDream's profiler), :mod:`runtime.tiny_models` (seeded CPU factories for tests and the
README's walk-through). The package depends on :mod:`pipecert` and :mod:`instances`; nothing
below depends on it.
"""
