"""Bundled suite architectures at their published size, with seeded random weights.

:func:`published` builds a model of the bundled ``models`` suite
(:mod:`instances.build_models_suite`: the same ``transformers`` class and published
configuration) on the CPU, with real (random, seeded) weights, so it can be profiled,
exported and run. The suite itself is traced on the ``meta`` device, which allocates
nothing and cannot run.

Nothing is downloaded: the weights are the model's own initialisation under
``torch.manual_seed(seed)``, not the published checkpoint. Operator times do not depend on
weight values (dense kernels run the same arithmetic whatever the numbers), so for timing
this is the published model; its outputs are of course not the checkpoint's.

Examples
--------
``pipecert profile runtime.models:published --option model=gpt2 --option seq_len=128``
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

__all__ = ["published"]


def published(model: str = "gpt2", batch_size: int | None = None, seq_len: int | None = None,
              image_size: int | None = None, num_layers: int | None = None,
              seed: int = 0) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """A bundled suite model at its published configuration, on the CPU, seeded weights.

    Parameters
    ----------
    model : str
        Suite name (``gpt2``, ``bert-base``, ``resnet-50``, ...;
        :data:`instances.build_models_suite.SPECS`).
    batch_size, seq_len, image_size : int, optional
        Input shape; default: the suite entry's.
    num_layers : int, optional
        Override the layer count (as the suite's ``factory``).
    seed : int
        ``torch.manual_seed`` for the weights and the example inputs.

    Returns
    -------
    (module, args, kwargs)
        The model in eval mode and its example inputs, as ``import-torch`` factories return.

    Raises
    ------
    InputError
        For a name that is not in the suite, or a non-positive size.
    """
    import torch
    import transformers

    from instances.build_models_suite import SPECS
    from pipecert.errors import InputError

    specs = {s.name: s for s in SPECS}
    if model not in specs:
        raise InputError(f"unknown suite model {model!r} (known: {', '.join(specs)})")
    for label, v in (("batch_size", batch_size), ("seq_len", seq_len),
                     ("image_size", image_size), ("num_layers", num_layers)):
        if v is not None and int(v) < 1:
            raise InputError(f"{label} must be >= 1, got {v}")
    spec = specs[model]
    config = dict(spec.config)
    if num_layers is not None:
        key = {"GPT2Config": "n_layer", "DistilBertConfig": "n_layers",
               "T5Config": "num_layers"}.get(spec.config_class, "num_hidden_layers")
        config[key] = int(num_layers)
    spec = replace(spec, batch=int(batch_size or spec.batch),
                   seq_len=int(seq_len or spec.seq_len),
                   image_size=int(image_size or spec.image_size))
    torch.manual_seed(int(seed))
    cfg = getattr(transformers, spec.config_class)(**config)
    net = getattr(transformers, spec.hf_class)(cfg).eval()
    b = spec.batch
    if spec.inputs == "image":
        return net, (torch.randn(b, 3, spec.image_size, spec.image_size),), {}
    vocab = int(getattr(cfg, "vocab_size", 128))
    ids = torch.randint(0, vocab, (b, spec.seq_len))
    if spec.inputs == "text":
        return net, (ids,), {}
    if spec.inputs == "causal":
        return net, (ids,), {"use_cache": False}
    dec = torch.randint(0, vocab, (b, spec.seq_len))
    return net, (), {"input_ids": ids, "decoder_input_ids": dec, "use_cache": False}
