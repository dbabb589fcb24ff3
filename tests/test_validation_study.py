"""The validation study (runtime.study), its calibrated roofline (runtime.calibrate), the
published-size factory (runtime.models) and the study's figure (paper_figures.fig_validation)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from instances.costmodel import CostModel, HardwareProfile  # noqa: E402
from pipecert.errors import InputError  # noqa: E402
from runtime.calibrate import calibrate, profile_toml, write_profile  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _small_profile(**kw: Any) -> dict[str, Any]:
    return calibrate("cpu", gemm_sizes=(16, 32), copy_bytes=1 << 16, warmup=0, repeats=2, **kw)


# -- calibrate ---------------------------------------------------------------------------

def test_calibrate_gives_a_valid_profile_that_round_trips(tmp_path: Path) -> None:
    table = _small_profile(name="here")
    prof = HardwareProfile.from_dict(table)
    assert prof.name == "here"
    assert set(prof.peak_flops) == {"float32"} and prof.peak("float32") > 0
    assert prof.memory_bandwidth > 0 and prof.interconnect_bandwidth > 0
    assert prof.launch_overhead > 0
    assert prof.memory_capacity is not None and prof.memory_capacity > 0
    assert any("matmul" in s for s in prof.sources)
    path = tmp_path / "cpu.toml"
    write_profile(table, path)
    back = HardwareProfile.from_toml(path)
    assert back.peak_flops == table["peak_flops"]  # floats written with full precision
    assert back.memory_bandwidth == table["memory_bandwidth"]
    assert back.launch_overhead == table["launch_overhead"]
    assert back.interconnect_bandwidth == table["interconnect_bandwidth"]
    assert back.memory_capacity == table["memory_capacity"]
    assert list(back.sources) == table["sources"]
    assert profile_toml(table).startswith("#")


def test_calibrated_profile_prices_a_model(tmp_path: Path) -> None:
    from instances.torch_import import import_module

    path = tmp_path / "cpu.toml"
    write_profile(_small_profile(), path)
    net = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    inst = import_module(net, (torch.zeros(4, 8),), cost_model=CostModel(path, None))
    assert inst.total_work > 0
    overhead = HardwareProfile.from_toml(path).launch_overhead
    # three kernels at least: each pays the launch overhead (work is in us)
    assert inst.total_work >= 3 * overhead * 1e6 * (1 - 1e-12)


@pytest.mark.parametrize("kw, match", [
    ({"dtypes": ("int8",)}, "not a floating torch dtype"),
    ({"dtypes": ("nonsense",)}, "dtype"),
    ({"dtypes": ()}, "at least one dtype"),
    ({"repeats": 0}, "repeats"),
    ({"gemm_sizes": (0,)}, "matmul sizes"),
])
def test_calibrate_rejects_bad_input(kw: dict[str, Any], match: str) -> None:
    args = dict(gemm_sizes=(8,), copy_bytes=1024, warmup=0, repeats=1)
    args.update(kw)
    with pytest.raises(InputError, match=match):
        calibrate("cpu", **args)


def test_calibrate_cli(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    import runtime.calibrate as cal
    from cli import main

    monkeypatch.setattr(cal, "GEMM_SIZES", (16,))
    monkeypatch.setattr(cal, "COPY_BYTES", 1 << 16)
    out = tmp_path / "p.toml"
    code = main(["calibrate", "--repeats", "1", "--warmup", "0", "--threads", "1",
                 "--name", "box", "-o", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "GFLOP/s" in text and f"wrote {out}" in text
    assert HardwareProfile.from_toml(out).name == "box"
    code = main(["calibrate", "--repeats", "0"])
    err = capsys.readouterr().err
    assert code == 2 and "--repeats must be >= 1" in err and "Traceback" not in err
    code = main(["calibrate", "--device", "tpu"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and len(err.strip().splitlines()) == 1


# -- the published-size factory ----------------------------------------------------------

def test_published_builds_the_suite_configuration_seeded() -> None:
    from runtime.models import published

    net, args, kwargs = published("bert-base", batch_size=2, seq_len=8, num_layers=1, seed=3)
    assert net.config.hidden_size == 768 and net.config.num_hidden_layers == 1
    assert tuple(args[0].shape) == (2, 8) and kwargs == {}
    assert not any(p.is_meta for p in net.parameters())
    net2, args2, _ = published("bert-base", batch_size=2, seq_len=8, num_layers=1, seed=3)
    assert torch.equal(args[0], args2[0])
    p1 = dict(net.named_parameters())["encoder.layer.0.attention.self.query.weight"]
    p2 = dict(net2.named_parameters())["encoder.layer.0.attention.self.query.weight"]
    assert torch.equal(p1, p2)
    with torch.no_grad():
        assert torch.isfinite(net(*args).last_hidden_state).all()


@pytest.mark.parametrize("kw, match", [
    ({"model": "no-such-model"}, "unknown suite model"),
    ({"model": "gpt2", "seq_len": 0}, "seq_len must be >= 1"),
    ({"model": "resnet-18", "batch_size": -1}, "batch_size must be >= 1"),
])
def test_published_rejects_bad_input(kw: dict[str, Any], match: str) -> None:
    from runtime.models import published

    with pytest.raises(InputError, match=match):
        published(**kw)


# -- the study -----------------------------------------------------------------------------

def _cell(model: str, cm: str, k: int, pred: list[float], meas: list[float]) -> dict[str, Any]:
    pb = max(range(len(pred)), key=pred.__getitem__)
    mb = max(range(len(meas)), key=meas.__getitem__)
    scale = sum(meas) / sum(pred)
    return {"model": model, "level": "layer", "cost_model": cm, "k": k, "repeats": 3,
            "split_measured_max_ms": max(meas),
            "stages": [{"stage": b, "measured_total_ms": m,
                        "predicted": {cm: {"total_ms": p}}}
                       for b, (p, m) in enumerate(zip(pred, meas, strict=True))],
            "bottleneck": {cm: {"predicted_bottleneck": pb, "measured_bottleneck": mb,
                                "predicted_max_ms": pred[pb], "measured_max_ms": meas[mb],
                                "error": (pred[pb] - meas[mb]) / meas[mb],
                                "shape_error": (pred[pb] * scale - meas[mb]) / meas[mb],
                                "agrees": pb == mb, "measured_at_predicted_ms": meas[pb]}}}


def test_summarise_counts_agreement_errors_and_regret() -> None:
    from runtime.study import summarise

    cells = [_cell("m", "measured", 2, [10, 5], [11, 6]),        # right stage, -9.1%
             _cell("m", "roofline-a100", 2, [1, 2], [12, 6]),    # wrong stage
             _cell("m", "measured", 4, [4, 4.5], [5, 4])]        # wrong stage, -10%
    s = summarise(cells)
    assert s["measured"]["cells"] == 2 and s["measured"]["agree"] == 1
    assert s["roofline-a100"]["agree"] == 0
    assert s["measured"]["max_abs_error"] == pytest.approx(0.1)
    # k = 2: the measured model's split (11 ms) beats the A100 roofline's (12 ms)
    assert s["measured"]["median_regret"] == 0.0
    assert s["roofline-a100"]["max_regret"] == pytest.approx(12 / 11 - 1)
    assert "roofline-calibrated" not in s


def test_study_end_to_end_resumes_and_draws(tmp_path: Path, monkeypatch: Any) -> None:
    """A tiny grid through the whole pipeline: calibrate, three graphs with the same nodes,
    pipecert solve, export, timing, cells and noise on disk; a rerun measures nothing; the
    figure."""
    import runtime.study as study_mod
    from paper_figures.fig_validation import data, make

    monkeypatch.setattr(study_mod, "DEFAULT_MODELS", {})
    models = {"resnet-18": {"batch_size": 1, "image_size": 32}}
    out = tmp_path / "study"
    logs: list[str] = []
    study = study_mod.run_study(out, models=models, levels=("layer",), ks=(2,), threads=1,
                                time_limit=5, repeats=1, warmup=0, profile_repeats=1,
                                log=logs.append)
    cells = study["cells"]
    assert [c["cost_model"] for c in cells] == list(study_mod.COST_MODELS)
    for c in cells:
        assert c["k"] == 2 and len(c["stages"]) == 2
        assert c["solve"]["status"] in ("optimal", "time_limit", "feasible")
        for s in c["stages"]:
            assert s["measured_compute_ms"] > 0 and s["measured_transfer_ms"] >= 0
            assert set(s["predicted"]) == set(study_mod.COST_MODELS)
        own = c["bottleneck"][c["cost_model"]]
        assert math.isfinite(own["error"]) and own["measured_max_ms"] == max(
            s["measured_total_ms"] for s in c["stages"])
    assert (out / "calibrated-cpu.toml").exists()
    # the noise floor: one split timed again and the model profiled again
    (noise,) = study["noise"]
    assert noise["split"] == {"cost_model": "measured", "k": 2}
    assert len(noise["retime"]) == 2 and len(noise["reprofile"]) == 2
    assert set(study["noise_summary"]) == {"retime", "reprofile"}
    assert all(math.isfinite(v) for v in study["noise_summary"].values())
    assert json.loads((out / "study.json").read_text())["summary"] == study["summary"]
    # a split chosen by two cost models is timed once: equal splits, equal measurements
    by_split: dict[tuple[int, ...], list[float]] = {}
    for c in cells:
        m = [s["measured_total_ms"] for s in c["stages"]]
        assert by_split.setdefault(tuple(c["stage_of"]), m) == m

    def boom(*a: Any, **k: Any) -> Any:
        raise AssertionError("a finished cell was measured again")

    monkeypatch.setattr(study_mod, "_measure", boom)
    monkeypatch.setattr(study_mod, "_solve", boom)
    monkeypatch.setattr(study_mod, "_noise", boom)
    again = study_mod.run_study(out, models=models, levels=("layer",), ks=(2,), threads=1,
                                log=logs.append)
    assert again["cells"] == cells
    info = data(again)
    assert info.rows[-1][0] == "median (abs.)" and len(info.rows) == 2
    paths = make(out / "study.json", tmp_path / "fig")
    assert sorted(p.suffix for p in paths) == [".csv", ".csv", ".md", ".md", ".pdf", ".png",
                                                ".tex", ".tex"]
    assert all(p.stat().st_size > 0 for p in paths)


def test_study_cli_errors(capsys: Any, tmp_path: Path) -> None:
    from runtime.study import main

    assert main(["-o", str(tmp_path), "--levels", "block"]) == 2
    assert "unknown level" in capsys.readouterr().err
    assert main(["-o", str(tmp_path), "-k", "0"]) == 2
    assert "k must be >= 1" in capsys.readouterr().err
    if not torch.cuda.is_available():  # the GPU path fails cleanly where there is none
        assert main(["-o", str(tmp_path / "gpu"), "--device", "cuda"]) == 2
        assert "cuda" in capsys.readouterr().err.lower()
    assert main(["-o", str(tmp_path), "--models", "nope", "--levels", "layer"]) == 2
    assert "unknown suite model" in capsys.readouterr().err
