"""REGAL graphs: TensorFlow ``CostGraphDef`` in protobuf text format (``*.pbtxt``).

docs/theory/paper.md#datasets. One ``node { ... }`` block per node with
``name``, ``id`` (absent = 0), ``compute_cost`` (absent = 0), ``output_info { size: ... }``
(one per output port, in port order), ``input_info { preceding_node: ID preceding_port: P }``
(data edges; the port defaults to 0) and ``control_input: ID`` (ordering only). Other fields
(``device``, memory sizes, shapes, ...) are parsed and ignored.

The mapping:

* node id ``str(id)``; label = ``name``;
* work ``w(v) = compute_cost``;
* data edges from ``input_info``; ``control_input`` edges become precedence-only edges;
* the ``_SOURCE`` node is dropped together with every edge from or to it;
* comm ``c(v)``: with the default ``comm_outputs="consumed"``, the sum of the sizes of
  the output ports that some ``input_info`` reads (each port counted once however many
  consumers read it), because only those tensors ever leave a stage; with
  ``comm_outputs="all"``, the sum of all ``output_info`` sizes (the mapping guessed in
  docs/theory/paper.md#datasets). A consumer reading an undeclared port is an error.

Units (``metadata["units"]``): TensorFlow's ``cost_graph.proto`` documents
``compute_cost`` as an estimate in microseconds, so work is ``us``; ``output_info.size``
is in bytes, so comm is ``bytes`` (not a time: the sum work + comm of a stage mixes the
two unless a bandwidth is applied, which this reader does not do); no memory is read
(``unspecified``).

Input nodes: with ``zero_input_work=True`` (the option every reader shares) the work of
the source nodes (no incoming data or control edge once ``_SOURCE`` is dropped) is set to
0 and recorded in the metadata; by default the values are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from instances.formats.base import (
    FORMATS,
    INPUT_WORK_OPTIONS,
    Format,
    instance_name,
    read_text,
    source_nodes,
    wants_zero_input_work,
)
from instances.formats.base import zero_input_work as zero_input_work_of
from pipecert.errors import FormatError, InputError
from pipecert.instance import Instance

__all__ = ["RegalCostGraph", "parse_text_proto", "UNITS"]

#: compute_cost is documented in microseconds, output sizes in bytes; no memory is read
UNITS = {"work": "us", "comm": "bytes", "memory": "unspecified"}
INPUT_RULE = "source nodes (no incoming data or control edge, _SOURCE dropped)"

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\f\v]+) |
    (?P<nl>\n) |
    (?P<comment>\#[^\n]*) |
    (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*') |
    (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|nan)[fF]?(?![\w.])) |
    (?P<ident>[A-Za-z_][\w.]*) |
    (?P<punct>[{}<>:;,\[\]])
    """,
    re.VERBOSE,
)


@dataclass
class _Field:
    value: Any
    line: int


@dataclass
class Message:
    """A parsed text-proto message: field name -> list of values (scalars or messages)."""

    line: int
    fields: dict[str, list[_Field]] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        vals = self.fields.get(key)
        return vals[-1].value if vals else default

    def all(self, key: str) -> list[_Field]:
        return self.fields.get(key, [])


def _tokens(text: str, source: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    line = 1
    pos = 0
    n = len(text)
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FormatError(f"unexpected character {text[pos]!r}", source=source, line=line)
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "nl":
            line += 1
        elif kind not in ("ws", "comment"):
            out.append((kind, tok, line))
        pos = m.end()
    return out


def _scalar(kind: str, tok: str) -> Any:
    if kind == "string":
        body = tok[1:-1]
        return bytes(body, "utf-8").decode("unicode_escape") if "\\" in body else body
    if kind == "number":
        t = tok.rstrip("fF") if not tok.lower().endswith(("inf", "nan")) else tok
        try:
            return int(t)
        except ValueError:
            return float(t)
    if tok in ("true", "True"):
        return True
    if tok in ("false", "False"):
        return False
    return tok  # an enum name


def parse_text_proto(text: str, *, source: str = "<text>") -> Message:
    """Parse protobuf text format into a generic :class:`Message` tree.

    Supports ``name: value``, ``name { ... }``, ``name: { ... }``, ``<...>`` delimiters,
    ``[a, b]`` repeated scalars, comments and separators; no schema is needed.
    """
    toks = _tokens(text, source)
    pos = 0

    def err(msg: str, line: int) -> FormatError:
        return FormatError(msg, source=source, line=line)

    def parse_body(msg: Message, close: str | None) -> None:
        nonlocal pos
        while pos < len(toks):
            kind, tok, line = toks[pos]
            if kind == "punct" and tok in ("}", ">"):
                if close is None or tok != close:
                    raise err(f"unexpected {tok!r}", line)
                pos += 1
                return
            if kind == "punct" and tok in (";", ","):
                pos += 1
                continue
            if kind != "ident":
                raise err(f"expected a field name, got {tok!r}", line)
            name = tok
            pos += 1
            if pos >= len(toks):
                raise err(f"field {name!r} has no value", line)
            kind2, tok2, line2 = toks[pos]
            colon = kind2 == "punct" and tok2 == ":"
            if colon:
                pos += 1
                if pos >= len(toks):
                    raise err(f"field {name!r} has no value", line)
                kind2, tok2, line2 = toks[pos]
            if kind2 == "punct" and tok2 in ("{", "<"):
                pos += 1
                sub = Message(line2)
                parse_body(sub, "}" if tok2 == "{" else ">")
                msg.fields.setdefault(name, []).append(_Field(sub, line))
                continue
            if not colon:
                raise err(f"expected ':' or '{{' after field {name!r}", line2)
            if kind2 == "punct" and tok2 == "[":
                pos += 1
                while pos < len(toks) and toks[pos][1] != "]":
                    k3, t3, l3 = toks[pos]
                    if k3 == "punct" and t3 == ",":
                        pos += 1
                        continue
                    if k3 not in ("number", "string", "ident"):
                        raise err(f"bad list element {t3!r} in field {name!r}", l3)
                    msg.fields.setdefault(name, []).append(_Field(_scalar(k3, t3), l3))
                    pos += 1
                if pos >= len(toks):
                    raise err(f"unterminated list in field {name!r}", line)
                pos += 1
                continue
            if kind2 not in ("number", "string", "ident"):
                raise err(f"bad value {tok2!r} for field {name!r}", line2)
            value = _scalar(kind2, tok2)
            pos += 1
            # adjacent string literals concatenate
            while (kind2 == "string" and pos < len(toks) and toks[pos][0] == "string"):
                value += _scalar("string", toks[pos][1])
                pos += 1
            msg.fields.setdefault(name, []).append(_Field(value, line))
        if close is not None:
            line = toks[-1][2] if toks else 1
            raise err(f"missing closing {close!r} (end of file)", line)

    root = Message(1)
    try:
        parse_body(root, None)
    except RecursionError:
        raise FormatError("messages nested too deeply (beyond the parser's recursion limit)",
                          source=source) from None
    return root


def _int_field(msg: Message, key: str, default: int, source: str, what: str) -> int:
    vals = msg.all(key)
    if not vals:
        return default
    v = vals[-1]
    if isinstance(v.value, bool) or not isinstance(v.value, int):
        raise FormatError(f"{what}: {key} must be an integer, got {v.value!r}",
                          source=source, line=v.line)
    return v.value


def _num_field(msg: Message, key: str, source: str, what: str) -> float:
    vals = msg.all(key)
    if not vals:
        return 0.0
    v = vals[-1]
    if isinstance(v.value, bool) or not isinstance(v.value, int | float):
        raise FormatError(f"{what}: {key} must be a number, got {v.value!r}",
                          source=source, line=v.line)
    if v.value < 0 or v.value != v.value:
        raise FormatError(f"{what}: {key} = {v.value} is not >= 0", source=source,
                          line=v.line)
    return float(v.value)


@FORMATS.register
class RegalCostGraph(Format):
    """REGAL CostGraphDef text proto (w = compute_cost, c = sizes of consumed outputs)."""

    name = "regal"
    extensions = (".pbtxt",)
    options = ("comm_outputs", *INPUT_WORK_OPTIONS)
    sniff_priority = 30
    description = "REGAL / TensorFlow CostGraphDef protobuf text (.pbtxt)"

    def sniff(self, path: Path, head: bytes) -> bool:
        text = re.sub(rb"^(\s*#[^\n]*\n)*", b"", head).lstrip()
        return re.match(rb"node\s*:?\s*[{<]", text) is not None

    def read(self, path: Path, *, comm_outputs: str = "consumed",
             zero_input_work: bool | None = None, keep_input_work: bool | None = None,
             **options: Any) -> Instance:
        source = str(path)
        if options:
            raise InputError(f"unknown option(s) {', '.join(options)}", source=source)
        zero = wants_zero_input_work(zero_input_work, keep_input_work, source)
        if comm_outputs not in ("consumed", "all"):
            raise InputError(f"comm_outputs must be 'consumed' or 'all', got {comm_outputs!r}",
                             source=source)
        root = parse_text_proto(read_text(path), source=source)
        for key, vals in root.fields.items():
            if key != "node":
                continue
            for f in vals:
                if not isinstance(f.value, Message):
                    raise FormatError("'node' must be a message block", source=source,
                                      line=f.line)
        blocks = [f.value for f in root.all("node")]
        if not blocks:
            raise FormatError("no 'node { ... }' blocks found", source=source)
        ids: list[int] = []
        labels: list[str] = []
        work: list[float] = []
        outs: list[list[float]] = []
        index: dict[int, int] = {}
        line_of: dict[int, int] = {}
        source_ids: set[int] = set()
        kept: list[Message] = []
        for blk in blocks:
            name = blk.get("name", "")
            nid = _int_field(blk, "id", 0, source, f"node {name!r}")
            if name == "_SOURCE":
                source_ids.add(nid)
                continue
            what = f"node {nid} ({name!r})" if name else f"node {nid}"
            if nid in index or nid in source_ids:
                raise FormatError(f"duplicate node id {nid} (first at line "
                                  f"{line_of.get(nid, '?')})", source=source, line=blk.line)
            index[nid] = len(ids)
            line_of[nid] = blk.line
            ids.append(nid)
            labels.append(str(name) if name else str(nid))
            work.append(_num_field(blk, "compute_cost", source, what))
            sizes = []
            for f in blk.all("output_info"):
                if not isinstance(f.value, Message):
                    raise FormatError(f"{what}: output_info must be a message block",
                                      source=source, line=f.line)
                sizes.append(_num_field(f.value, "size", source, what))
            outs.append(sizes)
            kept.append(blk)
        n = len(ids)
        if n == 0:
            raise FormatError("the graph has no nodes besides _SOURCE", source=source)
        src: list[int] = []
        dst: list[int] = []
        psrc: list[int] = []
        pdst: list[int] = []
        consumed: list[set[int]] = [set() for _ in range(n)]
        for j, blk in enumerate(kept):
            what = f"node {ids[j]} ({labels[j]!r})"
            for f in blk.all("input_info"):
                if not isinstance(f.value, Message):
                    raise FormatError(f"{what}: input_info must be a message block",
                                      source=source, line=f.line)
                pred = _int_field(f.value, "preceding_node", -1, source, what)
                port = _int_field(f.value, "preceding_port", 0, source, what)
                if pred in source_ids:
                    continue
                if pred not in index:
                    raise FormatError(f"{what}: input_info refers to unknown node {pred}",
                                      source=source, line=f.line)
                u = index[pred]
                if port < 0 or (comm_outputs == "consumed" and port >= len(outs[u])):
                    raise FormatError(
                        f"{what}: reads output port {port} of node {pred}, which has "
                        f"{len(outs[u])} output_info entries", source=source, line=f.line)
                consumed[u].add(port)
                src.append(u)
                dst.append(j)
            for f in blk.all("control_input"):
                pred = f.value
                if isinstance(pred, bool) or not isinstance(pred, int):
                    raise FormatError(f"{what}: control_input must be a node id, got {pred!r}",
                                      source=source, line=f.line)
                if pred in source_ids:
                    continue
                if pred not in index:
                    raise FormatError(f"{what}: control_input refers to unknown node {pred}",
                                      source=source, line=f.line)
                psrc.append(index[pred])
                pdst.append(j)
        if comm_outputs == "all":
            comm = [float(sum(s)) for s in outs]
        else:
            comm = [float(sum(outs[u][p] for p in consumed[u])) for u in range(n)]
        inst = Instance.from_arrays(
            [str(x) for x in ids],
            np.asarray(work),
            np.asarray(comm),
            src, dst, psrc, pdst,
            name=instance_name(path),
            labels=labels,
            metadata={
                "format": "regal",
                "work": "compute_cost",
                "comm": ("sum of consumed output sizes" if comm_outputs == "consumed"
                         else "sum of all output sizes"),
                "dropped": ["_SOURCE"] if source_ids else [],
                "units": dict(UNITS),
            },
            source=source,
        )
        if zero:
            inst = zero_input_work_of(inst, source_nodes(inst), INPUT_RULE)
        return inst
