"""Helpers shared by the CLI sub-commands: reading graphs and printing tables.

``add_instance_options(parser)`` adds the reader options every graph-reading command
accepts (``--format``, ``--bandwidth``, ``--training``, ``--zero-input-work``,
``--comm-outputs``, and the ONNX cost-model options ``--hardware``, ``--batch-size``,
``--compute-dtype``, ``--level``);
``load_instance(spec, args)`` reads a graph with them. ``spec`` may be a file or a bundled
instance id (``default/compute-0300``); anything :func:`instances.resolve` accepts that
names exactly one instance works.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from experiments.variants import parse_memory_size
from pipecert.errors import InputError
from pipecert.instance import Instance, describe_cost_model

__all__ = [
    "add_instance_options",
    "instance_options",
    "load_instance",
    "format_table",
    "fmt",
    "positive_seconds",
    "nonnegative_fraction",
    "parse_k",
    "units_json",
    "units_line",
    "describe_cost_model",
    "check_writable",
    "STATUS_LEGEND",
    "status_legend",
    "status_meanings",
    "first_line",
    "add_variant_options",
    "variant_of",
    "parse_memory_size",
]


def add_instance_options(parser: argparse.ArgumentParser, *, format_flag: str = "--format"
                         ) -> None:
    """Add the graph-reader options to ``parser``.

    ``format_flag`` renames the input-format option (``pipecert convert`` uses ``--from``
    because its ``--format`` is the output format). The value lands in ``args.in_format``.
    """
    from instances import format_names

    g = parser.add_argument_group("graph reading")
    g.add_argument(format_flag, dest="in_format", metavar="FMT", choices=format_names(),
                   default=None,
                   help="input graph format (default: detect by content, then extension; "
                        f"one of {', '.join(format_names())})")
    g.add_argument("--bandwidth", type=float, default=None, metavar="BYTES_PER_MS",
                   help="PipeDream: comm = activation_size / bandwidth (default 2^31, which "
                        "matches the dnn-partitioning layer graphs)")
    g.add_argument("--training", action="store_true", default=False,
                   help="PipeDream: build the training graph (a backward node per layer, "
                        "w = backward_compute_time, in the layer's co-location group; "
                        "gradient edges data-only)")
    g.add_argument("--zero-input-work", action="store_true", default=False,
                   help="every format: set the work of input nodes (data loading) to 0, "
                        "recorded in the instance metadata (default: keep the file's values)")
    g.add_argument("--keep-input-work", action="store_true", default=False,
                   help="keep the file's values (the default; kept for old scripts)")
    g.add_argument("--comm-outputs", choices=["consumed", "all"], default=None,
                   help="REGAL: comm = sizes of consumed output ports (default) or of all")
    g.add_argument("--hardware", default=None, metavar="NAME|FILE.toml",
                   help="ONNX: hardware profile of the cost model (a100, a100-pcie, h100, "
                        "tpu-v4, or a TOML file; default a100)")
    g.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="ONNX: bind the first (batch) dimension of every input to N")
    g.add_argument("--compute-dtype", default=None, metavar="DTYPE",
                   help="ONNX: dtype floating-point tensors are priced as (default bfloat16)")
    g.add_argument("--level", choices=["operator", "layer"], default=None,
                   help="ONNX: one node per operator (default) or per layer")


def add_variant_options(parser: argparse.ArgumentParser, *, relax_help: str | None = None
                        ) -> None:
    """Add ``--memory-limit SIZE|none`` and ``--relax C[,C]`` (:mod:`experiments.variants`)."""
    g = parser.add_argument_group("problem variant (docs/constraints.md)")
    g.add_argument("--memory-limit", metavar="SIZE|none", default=None,
                   help="memory cap per stage, replacing the instance's: 80GB (1e9 bytes), "
                        "16GiB (2^30 bytes), a plain number in the instance's memory unit, "
                        "or none (no cap)")
    g.add_argument("--relax", metavar="C[,C]", default=None,
                   help=relax_help or "drop constraints: groups and/or memory (the relaxed "
                        "problem's optimum is a lower bound, not an answer); data-only "
                        "edges cannot be relaxed")


def variant_of(args: argparse.Namespace | None) -> Any:
    """The :class:`experiments.variants.Variant` the options ``--memory-limit``/``--relax``
    ask for (as given when absent)."""
    from experiments.variants import Variant, parse_variant

    if args is None:
        return Variant()
    return parse_variant(memory_limit=getattr(args, "memory_limit", None),
                         relax=getattr(args, "relax", None))


def instance_options(args: argparse.Namespace) -> dict[str, Any]:
    """Reader keyword options from parsed arguments (missing or unset ones omitted)."""
    opts: dict[str, Any] = {}
    fmt_ = getattr(args, "in_format", None)
    if fmt_:
        opts["format"] = fmt_
    bw = getattr(args, "bandwidth", None)
    if bw is not None:
        opts["bandwidth"] = bw
    if getattr(args, "training", False):
        opts["training"] = True
    zero = bool(getattr(args, "zero_input_work", False))
    keep = bool(getattr(args, "keep_input_work", False))
    if zero and keep:
        raise InputError("--zero-input-work and --keep-input-work contradict each other")
    if zero:
        opts["zero_input_work"] = True
    co = getattr(args, "comm_outputs", None)
    if co is not None:
        opts["comm_outputs"] = co
    for key in ("hardware", "batch_size", "compute_dtype", "level"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    return opts


def load_instance(spec: str, args: argparse.Namespace | None = None) -> Instance:
    """Read one graph: a file (with the reader options in ``args``) or a bundled id, then
    apply the variant options (``--memory-limit``, ``--relax``) when ``args`` has them.

    Raises
    ------
    InputError
        If ``spec`` names no instance or several, or the graph is invalid.
    OSError
        If the file cannot be read.
    """
    from instances import read_instance, resolve

    opts = instance_options(args) if args is not None else {}
    variant = variant_of(args)  # options checked before reading
    p = Path(spec)
    if p.is_file():
        inst = read_instance(p if str(p) == spec else spec, **opts)
    elif p.is_dir():
        raise InputError("is a directory; give one graph file", source=spec)
    else:
        refs = resolve(spec, **opts)
        if len(refs) != 1:
            raise InputError(f"names {len(refs)} instances; give one", source=spec)
        inst = refs[0].load()
    return variant.apply(inst)


def fmt(x: Any, digits: int = 6) -> str:
    """A compact number: integers as such, floats with ``digits`` significant digits."""
    if isinstance(x, bool) or x is None:
        return "-" if x is None else str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        if x == int(x) and abs(x) < 1e15:
            return str(int(x))
        return f"{x:.{digits}g}"
    return str(x)


def format_table(rows: Sequence[Sequence[Any]], headers: Sequence[str],
                 *, align: str | None = None) -> str:
    """A plain-text table; ``align`` is one char per column, ``l`` or ``r`` (default: r,
    first column l)."""
    cells = [[fmt(c) for c in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in cells:
        for j, c in enumerate(r):
            widths[j] = max(widths[j], len(c))
    al = align or ("l" + "r" * (len(headers) - 1))

    def line(vals: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w)
                         for v, w, a in zip(vals, widths, al)).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


# ------------------------------------------------------------------ numbers on the command line
def positive_seconds(value: float, option: str) -> float:
    """``value`` if it is a finite number of seconds > 0, else :class:`InputError`.

    NaN would compare false everywhere (a budget that never ends), inf is no limit at all
    and a negative limit is meaningless: all three are refused.
    """
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"{option} must be a finite number of seconds > 0, got {value}")
    return value


def nonnegative_fraction(value: float, option: str) -> float:
    """``value`` if it is finite and >= 0 (a relative gap), else :class:`InputError`."""
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{option} must be a finite number >= 0, got {value}")
    return value


def parse_k(text: str | int) -> int:
    """The number of stages from the command line: an integer >= 1 (``1e9`` is accepted
    when it is a whole number), else :class:`InputError`."""
    from pipecert.instance import validate_k

    if isinstance(text, int):
        return validate_k(text)
    try:
        return validate_k(int(text))
    except ValueError:
        pass
    try:
        x = float(text)
    except ValueError:
        raise InputError(f"k must be an integer >= 1, got {text!r}") from None
    if not math.isfinite(x) or x != int(x):
        raise InputError(f"k must be an integer >= 1, got {text!r}")
    return validate_k(int(x))


def check_writable(path: Path) -> None:
    """Fail now, before any work, if ``path`` cannot be written.

    Creates the missing parent directories, then creates and removes a temporary file next
    to ``path`` (the partition file is written the same way: a temporary file renamed over
    it). Raises :class:`InputError` naming ``path`` and the reason.
    """
    import tempfile

    if path.is_dir():
        raise InputError("is a directory; give a file name", source=str(path))
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create directory {str(parent)!r} ({exc.strerror})",
                         source=str(path)) from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=parent)
    except OSError as exc:
        raise InputError(f"cannot write in {str(parent)!r} ({exc.strerror})",
                         source=str(path)) from None
    os.close(fd)
    Path(tmp).unlink(missing_ok=True)


# ------------------------------------------------------------------ units and cost model
def units_json(inst: Instance) -> dict[str, str]:
    """``{"work", "comm", "memory", "time"}`` units of ``inst`` (``"unspecified"`` if unknown)."""
    out = dict(inst.units)
    out["time"] = inst.time_unit
    return out


def units_line(inst: Instance) -> str:
    """One line: the time unit of costs, the memory unit, and the cost model if any."""
    u = units_json(inst)
    if u["time"] == "unspecified":
        text = "units: the source states none (costs as given)"
    elif u["time"] == "unit":
        text = "units: costs in abstract units (a generated instance)"
    else:
        text = f"units: costs in {u['time']}"
    if inst.memory is not None:
        text += (f", memory in {u['memory']}" if u["memory"] != "unspecified"
                 else ", memory unit not stated")
    cm = inst.cost_model
    if cm is not None:
        text += "; " + describe_cost_model(cm)
    return text


# ------------------------------------------------------------------ statuses
#: What a run's status means (the statuses of :class:`pipecert.results.Status`, plus the
#: portfolio's ``skipped``).
STATUS_LEGEND: dict[str, str] = {}


def _legend() -> dict[str, str]:
    if not STATUS_LEGEND:
        from pipecert.results import STATUS_MEANINGS

        STATUS_LEGEND.update({str(k): v for k, v in STATUS_MEANINGS.items()})
        STATUS_LEGEND["skipped"] = "not run (the reason is given, e.g. no time left)"
    return STATUS_LEGEND


def status_meanings(statuses: Sequence[str] | None = None) -> dict[str, str]:
    """``{status: meaning}`` for ``statuses`` (in first-seen order), or for every status."""
    legend = _legend()
    names = list(dict.fromkeys(statuses)) if statuses is not None else list(legend)
    return {s: legend.get(s, "see pipecert/results.py") for s in names}


def status_legend(statuses: Sequence[str] | None = None) -> list[str]:
    """``status: meaning`` lines (see :func:`status_meanings`)."""
    return [f"{s}: {m}" for s, m in status_meanings(statuses).items()]


def first_line(text: str | None, limit: int | None = None) -> str | None:
    """The first non-empty line of ``text`` (cut to ``limit`` characters), or None."""
    if not text:
        return None
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return line or None


def check_measurement_args(args: argparse.Namespace) -> None:
    """One-line errors for the timing options of ``profile``, ``bench-stages``, ``calibrate``:
    ``--repeats`` >= 1, ``--warmup`` >= 0, ``--threads`` >= 1 (if given), ``--bandwidth`` a
    finite positive number of bytes/s (if given)."""
    if args.repeats < 1:
        raise InputError(f"--repeats must be >= 1, got {args.repeats}")
    if args.warmup < 0:
        raise InputError(f"--warmup must be >= 0, got {args.warmup}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    bandwidth = getattr(args, "bandwidth", None)
    if bandwidth is not None and not 0 < bandwidth < float("inf"):
        raise InputError(f"--bandwidth must be a positive number of bytes/s, "
                         f"got {bandwidth}")
