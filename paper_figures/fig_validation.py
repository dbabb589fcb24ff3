"""Figure and table of the validation study (:mod:`runtime.study`): predicted vs measured.

Reads the study's ``study.json`` (not a results store: the study times stages, it does not
run methods). The figure has one panel per cost model (roofline on the A100 profile,
roofline calibrated on this CPU, measured profile) and one point per stage of every split
that cost model chose (models x levels x k): predicted stage time on x, measured on y, both
in milliseconds, log-log, with the line y = x. A model of another device sits far from the
line; what matters there is whether the points lie on a line parallel to it (a right shape).

The table has one row per (model, level, k) and, per cost model, the bottleneck error of
its own split, ``(predicted max - measured max) / measured max``, its shape error (the same
after one scale factor), and whether it named the measured bottleneck stage; the summary
rows give the medians.

Usage: ``python -m paper_figures.fig_validation results/validation/study.json -o DIR``
(writes ``fig_validation.png/.pdf`` and ``table_validation.md/.tex/.csv``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

NAME = "fig_validation"
TABLE = "table_validation"
LABELS = {"roofline-a100": "roofline (A100 profile)",
          "roofline-calibrated": "roofline (calibrated here)",
          "measured": "measured profile"}
_MARK = {"gpt2": "o", "bert-base": "s", "resnet-50": "^"}
_COLOUR = {2: "#1f77b4", 4: "#ff7f0e", 8: "#2ca02c"}


class Info(NamedTuple):
    """Pure data of the figure and the table."""

    #: cost model -> list of (model, level, k, predicted ms, measured ms), one per stage
    points: dict[str, list[tuple[str, str, int, float, float]]]
    #: table header and rows (strings)
    head: list[str]
    rows: list[list[str]]
    #: the study's machine and method, one line
    caption: str
    #: per cost model: the study summary (medians, agreement counts)
    summary: dict[str, dict[str, Any]]


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def data(study: Mapping[str, Any]) -> Info:
    """Pure: points, table rows and caption from a ``study.json`` document."""
    from runtime.study import COST_MODELS, summarise

    cells: Sequence[Mapping[str, Any]] = study.get("cells", [])
    cms = [c for c in COST_MODELS if any(x["cost_model"] == c for x in cells)]
    points: dict[str, list[tuple[str, str, int, float, float]]] = {c: [] for c in cms}
    for c in cells:
        cm = c["cost_model"]
        for s in c["stages"]:
            points[cm].append((c["model"], c["level"], int(c["k"]),
                               float(s["predicted"][cm]["total_ms"]),
                               float(s["measured_total_ms"])))
    head = ["model", "level", "k"]
    for cm in cms:
        head += [f"{LABELS[cm]}: error", "shape error", "right stage"]
    keys = sorted({(c["model"], c["level"], int(c["k"])) for c in cells},
                  key=lambda t: (t[1], t[0], t[2]))
    by = {(c["model"], c["level"], int(c["k"]), c["cost_model"]): c for c in cells}
    rows: list[list[str]] = []
    for m, lv, k in keys:
        row = [m, lv, str(k)]
        for cm in cms:
            cell = by.get((m, lv, k, cm))
            if cell is None:
                row += ["", "", ""]
                continue
            b = cell["bottleneck"][cm]
            miss = b["measured_at_predicted_ms"] / b["measured_max_ms"] - 1
            row += [_pct(b["error"]), _pct(b["shape_error"]),
                    "yes" if b["agrees"] else f"no ({miss:+.0%})"]
        rows.append(row)
    summary = summarise(cells)
    med = ["median (abs.)", "", ""]
    for cm in cms:
        s = summary[cm]
        med += [f"{s['median_abs_error']:.1%}", f"{s['median_abs_shape_error']:.1%}",
                f"{s['agree']}/{s['cells']}"]
    rows.append(med)
    env = study.get("environment", {})
    caption = (f"Predicted vs measured bottleneck stage time of the split each cost model "
               f"chose (pipecert solve), per model, level and k; measured on "
               f"{env.get('device', '?')}, {env.get('threads', '?')} thread(s), torch "
               f"{env.get('torch', '?')}, median of {cells[0]['repeats'] if cells else '?'} "
               "runs per stage. error = (predicted max - measured max) / measured max; "
               "shape error = the same after scaling all predictions by sum(measured) / "
               "sum(predicted); right stage = the predicted bottleneck stage is the measured "
               "one (if not: how much faster, by the clock, the stage it named is than the "
               "slowest).")
    return Info(points, head, rows, caption, summary)


def draw(info: Info) -> Any:
    """One log-log panel per cost model: predicted (x) vs measured (y) stage time, ms."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    cms = list(info.points)
    fig, axes = plt.subplots(1, max(len(cms), 1), figsize=(4.2 * max(len(cms), 1), 4.0),
                             squeeze=False)
    for ax, cm in zip(axes[0], cms, strict=False):
        pts = info.points[cm]
        for model, level, k, p, m in pts:
            ax.scatter([p], [m], marker=_MARK.get(model, "o"), s=22,
                       facecolors=_COLOUR.get(k, "#7f7f7f") if level == "layer" else "none",
                       edgecolors=_COLOUR.get(k, "#7f7f7f"), linewidths=0.9, alpha=0.85)
        vals = [v for _, _, _, p, m in pts for v in (p, m) if v > 0]
        if vals:
            lo, hi = min(vals) / 1.5, max(vals) * 1.5
            ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # plain numbers at 1, 2, 5 x 10^j
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        s = info.summary.get(cm, {})
        ax.set_title(f"{LABELS.get(cm, cm)}\nmedian |bottleneck error| "
                     f"{s.get('median_abs_error', float('nan')):.0%}, right stage "
                     f"{s.get('agree', 0)}/{s.get('cells', 0)}", fontsize=9)
        ax.set_xlabel("predicted stage time (ms)")
        ax.set_ylabel("measured stage time (ms)")
        ax.grid(True, which="both", lw=0.3, alpha=0.5)
    handles = [Line2D([], [], marker=mk, ls="", color="#444444", label=m)
               for m, mk in _MARK.items()]
    handles += [Line2D([], [], marker="o", ls="", color=c, label=f"k = {k}")
                for k, c in _COLOUR.items()]
    handles += [Line2D([], [], marker="o", ls="", color="#444444", label="layer level"),
                Line2D([], [], marker="o", ls="", markerfacecolor="none",
                       color="#444444", label="operator level")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False, bbox_to_anchor=(0.5, -0.06))
    fig.tight_layout()
    return fig


def summary_table(study: Mapping[str, Any]) -> tuple[list[str], list[list[str]], str]:
    """Pure: one row per cost model (the README's table): head, rows, caption."""
    from runtime.study import COST_MODELS, summarise

    cells = study.get("cells", [])
    s = summarise(cells)
    head = ["cost model", "median abs. bottleneck error", "median abs. shape error",
            "right bottleneck stage (median shortfall)", "median (max) regret of its split"]
    rows = [[LABELS.get(cm, cm), f"{s[cm]['median_abs_error']:.1%}",
             f"{s[cm]['median_abs_shape_error']:.1%}",
             f"{s[cm]['agree']}/{s[cm]['cells']} ({s[cm]['median_named_gap']:.1%})",
             f"{s[cm]['median_regret']:.1%} ({s[cm]['max_regret']:.1%})"]
            for cm in COST_MODELS if cm in s]
    noise = study.get("noise_summary") or {}
    caption = ("Per cost model, over the splits it chose (models x levels x k): shortfall "
               "= how much faster, by the clock, the stage the model names as the bottleneck "
               "is than the slowest stage (0 when it names the slowest); regret = the split's "
               "measured bottleneck over the best measured bottleneck of the three cost "
               "models' splits, minus 1.")
    if noise:
        caption += (f" Noise floor: a split timed twice moves by {noise['retime']:.1%} per "
                    f"stage (median), a model profiled twice by {noise['reprofile']:.1%}.")
    return head, rows, caption


def make(study_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the figure (PNG, PDF) and the tables (md, tex, csv) of ``study.json``."""
    from paper_figures._common import save, write_table

    study = json.loads(Path(study_path).read_text(encoding="utf-8"))
    info = data(study)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    head, rows, caption = summary_table(study)
    return (save(draw(info), out, NAME)
            + write_table(out, TABLE, info.head, info.rows, info.caption)
            + write_table(out, f"{TABLE}_summary", head, rows, caption))


def median_errors(study: Mapping[str, Any]) -> dict[str, float]:
    """Median |bottleneck error| per cost model (the closing note's numbers)."""
    cells = study.get("cells", [])
    out: dict[str, float] = {}
    for cm in {c["cost_model"] for c in cells}:
        errs = [abs(c["bottleneck"][cm]["error"]) for c in cells if c["cost_model"] == cm]
        out[cm] = statistics.median(errs)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m paper_figures.fig_validation STUDY.json -o DIR``."""
    import matplotlib

    matplotlib.use("Agg")
    p = argparse.ArgumentParser(prog="python -m paper_figures.fig_validation",
                                description="figure and table of the validation study")
    p.add_argument("study", help="study.json written by python -m runtime.study")
    p.add_argument("-o", "--out", default=None,
                   help="output directory (default: the study's directory)")
    a = p.parse_args(argv)
    try:
        paths = make(a.study, a.out or Path(a.study).parent)
    except (OSError, ValueError, KeyError) as exc:
        print(f"fig_validation: error: {a.study}: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
