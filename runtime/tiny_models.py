"""Small models with real weights on the CPU, as ``import-torch`` factories.

For trying the import -> solve -> export -> run loop on a laptop and for the equivalence
tests of :mod:`runtime.export`. Weights are seeded (``seed``, default 0), so two calls build
the same model.

* :func:`mlp`: a 4-layer MLP with one skip connection;
* :func:`cnn`: a small residual CNN (conv, batch norm, ReLU; two residual blocks, one with a
  1x1 projection shortcut; pooling and a linear head);
* :func:`suite`: an architecture of the bundled ``models`` suite
  (:mod:`instances.build_models_suite`: same ``transformers`` class) in a tiny
  configuration (:data:`TINY_CONFIGS`: hidden size 32, 2 layers, vocabulary 128, ...).

Examples
--------
``pipecert import-torch runtime.tiny_models:suite --option model=gpt2 -o g.json``
"""

from __future__ import annotations

from typing import Any

__all__ = ["mlp", "cnn", "suite", "TINY_CONFIGS"]

_TEXT = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=64, max_position_embeddings=64)
_LLAMA = dict(_TEXT, num_key_value_heads=1)

#: Tiny configuration overrides per bundled suite model (applied over the suite's config).
TINY_CONFIGS: dict[str, dict[str, Any]] = {
    "bert-base": dict(_TEXT, type_vocab_size=2),
    "distilbert-base": dict(vocab_size=128, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                            max_position_embeddings=64),
    "albert-base": dict(_TEXT, embedding_size=16),
    "roberta-base": dict(_TEXT, max_position_embeddings=66),
    "gpt2": dict(vocab_size=128, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                 bos_token_id=0, eos_token_id=0),
    "llama-3-8b": dict(_LLAMA),
    "qwen2-0.5b": dict(_LLAMA, tie_word_embeddings=True),
    "mistral-7b": dict(_LLAMA, sliding_window=None),
    "mixtral-8x7b-8l": dict(_LLAMA, num_local_experts=4, num_experts_per_tok=2),
    "t5-small": dict(vocab_size=128, d_model=32, d_kv=16, d_ff=64, num_layers=2,
                     num_heads=2, relative_attention_num_buckets=8),
    "bart-base": dict(vocab_size=128, d_model=32, encoder_layers=2, decoder_layers=2,
                      encoder_attention_heads=2, decoder_attention_heads=2,
                      encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64),
    "vit-base-16": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, image_size=32, patch_size=8),
    "swin-tiny": dict(image_size=32, patch_size=4, embed_dim=16, depths=[1, 1],
                      num_heads=[2, 2], window_size=4),
    "resnet-18": dict(layer_type="basic", depths=[1, 1], hidden_sizes=[8, 16],
                      embedding_size=8),
    "resnet-50": dict(depths=[1, 1], hidden_sizes=[16, 32], embedding_size=8),
    "mobilenet-v2": dict(depth_multiplier=0.25, image_size=32),
    "convnext-tiny": dict(depths=[1, 1], hidden_sizes=[8, 16], num_stages=2),
}


def _seeded(seed: int) -> Any:
    import torch

    torch.manual_seed(int(seed))
    return torch


def mlp(batch_size: int = 2, width: int = 16, seed: int = 0) -> tuple[Any, Any]:
    """A 4-layer MLP whose first hidden activation also feeds the last layer (a skip)."""
    import torch

    _seeded(seed)
    nn = torch.nn

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(8, width)
            self.fc2 = nn.Linear(width, width)
            self.fc3 = nn.Linear(width, width)
            self.fc4 = nn.Linear(width, 4)

        def forward(self, x: Any) -> Any:
            h1 = torch.relu(self.fc1(x))
            h2 = torch.relu(self.fc2(h1))
            h3 = torch.tanh(self.fc3(h2))
            return self.fc4(h3 + h1)

    return MLP().eval(), (torch.randn(batch_size, 8),)


def cnn(batch_size: int = 2, image_size: int = 16, seed: int = 0) -> tuple[Any, Any]:
    """A small residual CNN (two residual blocks, batch norm, pooling, linear head)."""
    import torch

    _seeded(seed)
    nn = torch.nn

    class Block(torch.nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                           nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return torch.relu(y + self.shortcut(x))

    class CNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU())
            self.layers = nn.Sequential(Block(8, 8, 1), Block(8, 16, 2))
            self.head = nn.Linear(16, 10)

        def forward(self, x: Any) -> Any:
            y = self.layers(self.stem(x))
            return self.head(y.mean(dim=(2, 3)))

    model = CNN()
    with torch.no_grad():  # non-trivial running statistics, so batch norm is not identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None \
                    and m.running_var is not None:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    return model.eval(), (torch.randn(batch_size, 3, image_size, image_size),)


def suite(model: str = "gpt2", batch_size: int = 1, seq_len: int = 8,
          image_size: int | None = None, seed: int = 0) -> tuple[Any, tuple[Any, ...],
                                                                  dict[str, Any]]:
    """A bundled suite architecture in its tiny configuration, with random weights.

    Raises
    ------
    InputError
        For a suite model without a tiny configuration.
    """
    from dataclasses import replace

    from instances.build_models_suite import SPECS
    from pipecert.errors import InputError

    specs = {s.name: s for s in SPECS}
    if model not in TINY_CONFIGS or model not in specs:
        raise InputError(f"no tiny configuration for {model!r} (known: "
                         f"{', '.join(TINY_CONFIGS)})")
    torch = _seeded(seed)
    import transformers

    spec = specs[model]
    cfg = getattr(transformers, spec.config_class)(**dict(spec.config, **TINY_CONFIGS[model]))
    net = getattr(transformers, spec.hf_class)(cfg).eval()
    size = image_size or int(TINY_CONFIGS[model].get("image_size", 32))
    spec = replace(spec, batch=int(batch_size), seq_len=int(seq_len), image_size=size)
    b = spec.batch
    if spec.inputs == "image":
        return net, (torch.randn(b, 3, size, size),), {}
    vocab = int(getattr(cfg, "vocab_size", 128))
    ids = torch.randint(0, vocab, (b, spec.seq_len))
    if spec.inputs == "text":
        return net, (ids,), {}
    if spec.inputs == "causal":
        return net, (ids,), {"use_cache": False}
    dec = torch.randint(0, vocab, (b, spec.seq_len))
    return net, (), {"input_ids": ids, "decoder_input_ids": dec, "use_cache": False}
