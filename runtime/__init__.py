"""Splits that run: pipecert partitions turned into PyTorch stage modules.

``runtime`` sits on top of :mod:`pipecert` and :mod:`instances` (nothing below depends on
it). :mod:`runtime.export` splits the ``torch.export`` program of a model along a partition
of the graph imported from it (:func:`runtime.export.export_stages`) into stage modules
that run in order and give the unsplit model's outputs.
"""
