"""Build the bundled ``models`` suite (real architectures) in ``instances/data/models/``.

Usage::

    python -m instances.build_models_suite            # (re)write the files and MANIFEST.json
    python -m instances.build_models_suite --check    # verify the committed files match
    python -m instances.build_models_suite --only bert-base,gpt2   # rebuild some entries

Every model is built from its published configuration, written out in code below (no
download), with the Hugging Face ``transformers`` classes on the ``meta`` device: costs depend
only on shapes, so no weights are allocated and nothing random is involved. Each model is
traced with :func:`torch.export.export` and priced by :mod:`instances.costmodel` (see
:mod:`instances.torch_import`). Entries come in two levels:

* ``operator``: one node per ATen operator plus one zero-work node per parameter and input
  (communication-heavy: total comm is several times total work);
* ``layer``: the same graph merged into layers (``<name>-layers``), PipeDream-style
  (compute-heavy).

Files are native JSON gzipped with ``mtime=0``, so a rebuild with the same torch and
transformers versions (recorded in the manifest) gives the same bytes; ``--check`` verifies.
Where a published model is too large to trace in reasonable time, its layer count is reduced
and the manifest entry says so (``reduced``).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import logging
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from instances.build_default_suite import regime_of
from instances.formats.native import dumps
from pipecert.instance import Instance

__all__ = ["SUITE", "SPECS", "ModelSpec", "build", "check", "make_model", "build_entry",
           "factory"]

SUITE = "models"
DATA_DIR = Path(__file__).resolve().parent / "data" / SUITE
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    """One architecture of the suite.

    Attributes
    ----------
    name : str
        Suite name (the instance id is ``models/<name>``).
    model : str
        The published model whose configuration this is.
    hf_class, config_class : str
        ``transformers`` model and configuration classes.
    config : dict
        Keyword arguments of the configuration class (published values; ``{}`` means the
        class defaults, which are the published model's).
    inputs : {"text", "causal", "seq2seq", "image"}
        Kind of example input.
    batch, seq_len, image_size : int
        Example input shape.
    hardware : str
        Hardware profile (``instances/hardware``).
    layers : bool
        Also emit the layer-level graph ``<name>-layers``.
    layer_depth, layer_extra : int
        Arguments of the layer key (:func:`instances.costmodel.layer_key`).
    decompose : bool
        Lower to core ATen before pricing (finer graph).
    reduced : str
        How the published configuration was reduced ('' = full size).
    """

    name: str
    model: str
    hf_class: str
    config_class: str
    config: dict[str, Any] = field(default_factory=dict)
    inputs: str = "text"
    batch: int = 1
    seq_len: int = 128
    image_size: int = 224
    hardware: str = "a100"
    layers: bool = False
    layer_depth: int = 1
    layer_extra: int = 1
    decompose: bool = False
    reduced: str = ""


_LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                  max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5)


def _specs() -> list[ModelSpec]:
    S = ModelSpec
    return [
        # ---- encoders
        S("bert-base", "bert-base-uncased", "BertModel", "BertConfig", {},
          "text", batch=8, seq_len=128, hardware="a100", layers=True),
        S("bert-large", "bert-large-uncased", "BertModel", "BertConfig",
          dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
               intermediate_size=4096), "text", batch=8, seq_len=384, hardware="h100"),
        S("distilbert-base", "distilbert-base-uncased", "DistilBertModel", "DistilBertConfig",
          {}, "text", batch=16, seq_len=128, hardware="tpu-v4"),
        S("albert-base", "albert-base-v2 (one layer's weights shared by all 12)", "AlbertModel",
          "AlbertConfig", dict(embedding_size=128, hidden_size=768, num_hidden_layers=12,
                               num_attention_heads=12, intermediate_size=3072,
                               hidden_act="gelu_new"),
          "text", batch=8, seq_len=128, hardware="a100-pcie"),
        S("roberta-base", "roberta-base", "RobertaModel", "RobertaConfig",
          dict(vocab_size=50265, max_position_embeddings=514, type_vocab_size=1,
               pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5),
          "text", batch=4, seq_len=512, hardware="a100"),
        # ---- decoders
        S("gpt2", "gpt2 (124M)", "GPT2LMHeadModel", "GPT2Config", {},
          "causal", batch=4, seq_len=512, hardware="a100", layers=True),
        S("gpt2-xl", "gpt2-xl (1.5B)", "GPT2LMHeadModel", "GPT2Config",
          dict(n_embd=1600, n_layer=48, n_head=25), "causal", batch=1, seq_len=1024,
          hardware="h100"),
        S("llama-3-8b", "Meta-Llama-3-8B (grouped-query attention, 8 KV heads)",
          "LlamaForCausalLM", "LlamaConfig", _LLAMA3_8B, "causal", batch=1, seq_len=1024,
          hardware="h100", layers=True),
        S("llama-2-7b", "Llama-2-7b (multi-head attention)", "LlamaForCausalLM", "LlamaConfig",
          dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, vocab_size=32000,
               max_position_embeddings=4096, rms_norm_eps=1e-5),
          "causal", batch=2, seq_len=512, hardware="a100"),
        S("tinyllama-1.1b", "TinyLlama-1.1B (grouped-query attention, 4 KV heads)",
          "LlamaForCausalLM", "LlamaConfig",
          dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, vocab_size=32000,
               max_position_embeddings=2048, rms_norm_eps=1e-5),
          "causal", batch=4, seq_len=512, hardware="tpu-v4"),
        S("mistral-7b", "Mistral-7B-v0.1 (GQA, sliding window)", "MistralForCausalLM",
          "MistralConfig", {}, "causal", batch=1, seq_len=1024, hardware="a100-pcie"),
        S("qwen2-0.5b", "Qwen2-0.5B (GQA, 2 KV heads, tied embeddings)", "Qwen2ForCausalLM",
          "Qwen2Config", dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                              num_attention_heads=14, num_key_value_heads=2,
                              vocab_size=151936, max_position_embeddings=32768,
                              rope_theta=1000000.0, rms_norm_eps=1e-6,
                              tie_word_embeddings=True),
          "causal", batch=8, seq_len=256, hardware="a100"),
        S("mixtral-8x7b-8l", "Mixtral-8x7B (8 experts, top-2)", "MixtralForCausalLM",
          "MixtralConfig", dict(num_hidden_layers=8), "causal", batch=1, seq_len=512,
          hardware="h100", layers=True, reduced="8 of 32 decoder layers"),
        S("qwen1.5-moe-a2.7b", "Qwen1.5-MoE-A2.7B (60 experts, top-4, shared expert)",
          "Qwen2MoeForCausalLM", "Qwen2MoeConfig", {}, "causal", batch=2, seq_len=512,
          hardware="a100"),
        S("llama-3.1-405b-core-aten", "Llama-3.1-405B, lowered to core ATen operators",
          "LlamaForCausalLM", "LlamaConfig",
          dict(_LLAMA3_8B, hidden_size=16384, intermediate_size=53248, num_hidden_layers=126,
               num_attention_heads=128, max_position_embeddings=131072),
          "causal", batch=1, seq_len=512, hardware="h100", decompose=True),
        # ---- state-space model: without the CUDA kernels, transformers runs the selective
        # scan as a Python loop over the sequence, so the trace has ~9 operators per token
        # per layer (the recurrence as it is computed): the suite's deepest graph
        S("mamba-130m", "state-spaces/mamba-130m-hf (selective SSM, sequential scan)",
          "MambaForCausalLM", "MambaConfig",
          dict(hidden_size=768, num_hidden_layers=24, vocab_size=50280, state_size=16,
               expand=2, conv_kernel=4, time_step_rank=48),
          "causal", batch=8, seq_len=128, hardware="a100"),
        S("jamba-v0.1", "ai21labs/Jamba-v0.1 (Mamba/attention 7:1, MoE 16 experts top-2 "
          "every other layer, sequential scan)", "JambaForCausalLM", "JambaConfig",
          dict(vocab_size=65536, hidden_size=4096, intermediate_size=14336,
               num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
               num_experts=16, num_experts_per_tok=2, expert_layer_period=2,
               expert_layer_offset=1, attn_layer_period=8, attn_layer_offset=4,
               mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_dt_rank=256,
               max_position_embeddings=262144),
          "causal", batch=2, seq_len=128, hardware="h100"),
        # ---- encoder-decoders
        S("t5-small", "t5-small", "T5ForConditionalGeneration", "T5Config",
          dict(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6,
               num_heads=8, relative_attention_num_buckets=32),
          "seq2seq", batch=8, seq_len=128, hardware="a100"),
        S("t5-base", "t5-base", "T5ForConditionalGeneration", "T5Config",
          dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12,
               num_heads=12, relative_attention_num_buckets=32),
          "seq2seq", batch=4, seq_len=256, hardware="tpu-v4", layers=True, layer_depth=1,
          layer_extra=2),
        S("bart-base", "facebook/bart-base", "BartForConditionalGeneration", "BartConfig",
          dict(d_model=768, encoder_layers=6, decoder_layers=6, encoder_attention_heads=12,
               decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072),
          "seq2seq", batch=8, seq_len=128, hardware="a100"),
        # ---- vision transformers
        S("vit-base-16", "google/vit-base-patch16-224", "ViTModel", "ViTConfig", {},
          "image", batch=16, image_size=224, hardware="a100", layers=True),
        S("vit-large-16", "google/vit-large-patch16-224", "ViTModel", "ViTConfig",
          dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
               intermediate_size=4096), "image", batch=8, image_size=224, hardware="tpu-v4"),
        S("swin-tiny", "microsoft/swin-tiny-patch4-window7-224", "SwinModel", "SwinConfig", {},
          "image", batch=16, image_size=224, hardware="a100", layers=True, layer_depth=2),
        # ---- CNNs
        S("resnet-18", "resnet-18", "ResNetForImageClassification", "ResNetConfig",
          dict(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[64, 128, 256, 512]),
          "image", batch=32, image_size=224, hardware="a100-pcie"),
        S("resnet-50", "microsoft/resnet-50", "ResNetForImageClassification", "ResNetConfig",
          {}, "image", batch=32, image_size=224, hardware="a100", layers=True, layer_depth=2),
        S("resnet-152", "resnet-152", "ResNetForImageClassification", "ResNetConfig",
          dict(depths=[3, 8, 36, 3]), "image", batch=16, image_size=224, hardware="h100"),
        S("mobilenet-v2", "google/mobilenet_v2_1.0_224", "MobileNetV2ForImageClassification",
          "MobileNetV2Config", {}, "image", batch=32, image_size=224, hardware="a100",
          layers=True, layer_extra=0),
        S("efficientnet-b0", "google/efficientnet-b0", "EfficientNetForImageClassification",
          "EfficientNetConfig", dict(width_coefficient=1.0, depth_coefficient=1.0,
                                     image_size=224, dropout_rate=0.2, hidden_dim=1280),
          "image", batch=32, image_size=224, hardware="tpu-v4"),
        S("efficientnet-b7", "google/efficientnet-b7", "EfficientNetForImageClassification",
          "EfficientNetConfig", {}, "image", batch=2, image_size=600, hardware="a100",
          layers=True),
        S("convnext-tiny", "facebook/convnext-tiny-224", "ConvNextForImageClassification",
          "ConvNextConfig", {}, "image", batch=16, image_size=224, hardware="h100",
          layers=True, layer_depth=2, layer_extra=0),
        S("regnet-y-040", "facebook/regnet-y-040", "RegNetForImageClassification",
          "RegNetConfig", {}, "image", batch=16, image_size=224, hardware="a100-pcie"),
    ]


SPECS: list[ModelSpec] = _specs()


def make_model(spec: ModelSpec) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """The module (on the meta device) and example inputs of ``spec``."""
    import torch
    import transformers

    cfg = getattr(transformers, spec.config_class)(**spec.config)
    with torch.device("meta"):
        model = getattr(transformers, spec.hf_class)(cfg).eval()
    b = spec.batch
    if spec.inputs == "image":
        x = torch.zeros(b, 3, spec.image_size, spec.image_size, device="meta")
        return model, (x,), {}
    ids = torch.zeros(b, spec.seq_len, dtype=torch.long, device="meta")
    if spec.inputs == "text":
        return model, (ids,), {}
    if spec.inputs == "causal":
        return model, (ids,), {"use_cache": False}
    if spec.inputs == "seq2seq":
        dec = torch.zeros(b, spec.seq_len, dtype=torch.long, device="meta")
        return model, (), {"input_ids": ids, "decoder_input_ids": dec, "use_cache": False}
    raise ValueError(f"unknown input kind {spec.inputs!r}")


def factory(model: str = "bert-base", batch_size: int | None = None,
            seq_len: int | None = None, image_size: int | None = None,
            num_layers: int | None = None) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """A model of the suite as an ``import-torch`` factory, with its inputs changeable.

    ``pipecert import-torch instances.build_models_suite:factory --option model=gpt2
    --batch-size 8`` traces GPT-2 at batch 8; ``num_layers`` overrides the layer count.
    """
    specs = {s.name: s for s in SPECS}
    if model not in specs:
        from pipecert.errors import InputError

        raise InputError(f"unknown suite model {model!r} (known: {', '.join(specs)})")
    spec = specs[model]
    changes: dict[str, Any] = {}
    if batch_size is not None:
        changes["batch"] = int(batch_size)
    if seq_len is not None:
        changes["seq_len"] = int(seq_len)
    if image_size is not None:
        changes["image_size"] = int(image_size)
    if num_layers is not None:
        key = {"GPT2Config": "n_layer", "DistilBertConfig": "n_layers",
               "T5Config": "num_layers"}.get(spec.config_class, "num_hidden_layers")
        changes["config"] = dict(spec.config, **{key: int(num_layers)})
    return make_model(replace(spec, **changes))


def _versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": str(torch.__version__), "transformers": str(transformers.__version__)}


def _gzip(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def _provenance(spec: ModelSpec, level: str) -> dict[str, Any]:
    return {
        "model": spec.model,
        "hf_class": spec.hf_class,
        "config_class": spec.config_class,
        "config": dict(spec.config),
        "inputs": spec.inputs,
        "batch_size": spec.batch,
        "seq_len": None if spec.inputs == "image" else spec.seq_len,
        "image_size": spec.image_size if spec.inputs == "image" else None,
        "hardware": spec.hardware,
        "compute_dtype": "bfloat16",
        "level": level,
        "layer_key": ({"depth": spec.layer_depth, "extra": spec.layer_extra}
                      if level == "layer" else None),
        "ir": "core-aten" if spec.decompose else "aten (export IR)",
        "weights": "none: built on the meta device (costs depend on shapes only)",
        "reduced": spec.reduced or None,
    }


def build_entry(spec: ModelSpec) -> list[tuple[str, Instance, dict[str, Any]]]:
    """Trace ``spec`` and return ``(name, instance, provenance)`` for each of its levels."""
    from instances.costmodel import CostModel
    from instances.torch_import import import_exported, trace

    module, args, kwargs = make_model(spec)
    ep = trace(module, args, kwargs, name=spec.name)
    cm = CostModel(spec.hardware, "bfloat16")
    out = []
    levels = ["operator"] + (["layer"] if spec.layers else [])
    for level in levels:
        name = spec.name if level == "operator" else f"{spec.name}-layers"
        prov = _provenance(spec, level)
        inst = import_exported(ep, cost_model=cm, level=level, layer_depth=spec.layer_depth,
                               layer_extra=spec.layer_extra,
                               name=f"{SUITE}/{name}", decompose=spec.decompose,
                               metadata={"provenance": prov})
        out.append((name, inst, prov))
    return out


def _entry(name: str, inst: Instance, prov: dict[str, Any], raw: bytes,
           versions: dict[str, str]) -> dict[str, Any]:
    ratio = inst.comm_work_ratio
    totals = dict(inst.metadata.get("totals", {}))
    return {
        "id": f"{SUITE}/{name}",
        "file": f"{name}.json.gz",
        "n_nodes": inst.n_nodes,
        "n_edges": inst.n_edges,
        "n_precedence_edges": inst.n_precedence_edges,
        "total_work": inst.total_work,
        "total_comm": inst.total_comm,
        "comm_work_ratio": ratio,
        "regime": regime_of(ratio),
        "generator": "instances.torch_import.import_exported",
        "params": prov,
        "seed": None,
        "description": f"{prov['model']}, {prov['level']} graph, batch {prov['batch_size']}, "
                       f"{prov['hardware']}" + (f" ({prov['reduced']})" if prov["reduced"]
                                                else ""),
        "units": {"work": "us", "comm": "us", "memory": "bytes"},
        "flops": totals.get("flops"),
        "parameter_bytes": totals.get("parameter_bytes"),
        "versions": versions,
        "sha256": hashlib.sha256(raw).hexdigest(),
    }


def build(out_dir: Path = DATA_DIR, only: set[str] | None = None) -> list[dict[str, Any]]:
    """Trace every spec into ``out_dir`` and write ``MANIFEST.json``.

    With ``only``, rebuild just those specs and keep the other manifest entries.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    versions = _versions()
    old: dict[str, dict[str, Any]] = {}
    man_path = out_dir / "MANIFEST.json"
    if only and man_path.is_file():
        old = {e["id"]: e for e in json.loads(man_path.read_text())["instances"]}
    entries: list[dict[str, Any]] = []
    for spec in SPECS:
        if only and spec.name not in only:
            names = [spec.name] + ([f"{spec.name}-layers"] if spec.layers else [])
            entries.extend(old[f"{SUITE}/{n}"] for n in names if f"{SUITE}/{n}" in old)
            continue
        t0 = time.perf_counter()
        for name, inst, prov in build_entry(spec):
            raw = dumps(inst).encode("utf-8")
            (out_dir / f"{name}.json.gz").write_bytes(_gzip(raw))
            entries.append(_entry(name, inst, prov, raw, versions))
            log.info("%s: %d nodes, comm/work %.3g", name, inst.n_nodes, inst.comm_work_ratio)
        log.info("%s built in %.1f s", spec.name, time.perf_counter() - t0)
    manifest = {
        "schema": 1,
        "suite": SUITE,
        "description": "Real architectures from their published configs, traced with "
                       "torch.export and priced by the roofline cost model "
                       "(python -m instances.build_models_suite)",
        "versions": versions,
        "instances": entries,
    }
    man_path.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return entries


def check(data_dir: Path = DATA_DIR) -> list[str]:
    """Rebuild into a temporary folder and list every file that differs from ``data_dir``."""
    problems = []
    man = data_dir / "MANIFEST.json"
    if man.is_file():
        recorded = json.loads(man.read_text()).get("versions")
        if recorded != _versions():
            problems.append(f"versions differ: built with {recorded}, running {_versions()} "
                            "(node names may change between versions)")
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        for p in sorted(Path(tmp).iterdir()):
            old = data_dir / p.name
            if not old.is_file():
                problems.append(f"{p.name}: missing")
            elif old.read_bytes() != p.read_bytes():
                problems.append(f"{p.name}: differs")
        fresh = {p.name for p in Path(tmp).iterdir()}
        for p in sorted(data_dir.iterdir()):
            if p.name not in fresh:
                problems.append(f"{p.name}: not produced by the build")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify the committed files")
    ap.add_argument("--only", help="comma-separated spec names to rebuild")
    ap.add_argument("--out", type=Path, default=DATA_DIR, help="output folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.check:
        problems = check(args.out)
        for p in problems:
            print(p)
        print("ok" if not problems else f"{len(problems)} problem(s)")
        return 1 if problems else 0
    only = set(args.only.split(",")) if args.only else None
    entries = build(args.out, only)
    total = sum((args.out / e["file"]).stat().st_size for e in entries)
    print(f"{len(entries)} instances, {total / 1e6:.2f} MB compressed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
