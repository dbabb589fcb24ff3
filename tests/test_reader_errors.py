"""Malformed, truncated and hostile graph files: one line naming the file, exit code 2.

docs/guide/formats.md: a truncated PipeDream ``graph.txt`` was accepted as a smaller graph, and a
5,000-level nested JSON ended in a ``RecursionError`` traceback in every command.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli import main
from instances import read_instance, write_instance
from pipecert import InputError
from pipecert.testing import worked_example

REPO = Path(__file__).resolve().parents[1]
PD = "pipedream/image_classification"


def cli_error(capsys, *argv: object) -> str:
    """Run the CLI, require exit 2 and exactly one stderr line without a traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("pipecert: error: ")
    return lines[0]


# ------------------------------------------------------------------ truncated PipeDream
def test_pipedream_cut_in_the_node_section_is_an_error(tmp_path, shared_instances):
    lines = (shared_instances / PD / "alexnet.graph.txt").read_text().splitlines(True)
    f = tmp_path / "cut.graph.txt"
    f.write_text("".join(lines[:3]))  # three whole node lines, no edge: used to pass
    with pytest.raises(InputError, match="no edge lines.*truncated") as exc:
        read_instance(f)
    assert str(exc.value).startswith(str(f))
    f.write_text("".join(lines[:3]) + lines[3][:40])  # cut mid-line
    with pytest.raises(InputError, match=r"cut\.graph\.txt:4: malformed node line"):
        read_instance(f)
    f.write_text("".join(lines[:3]) + lines[3].split("parameter_size")[0] + "param")
    with pytest.raises(InputError, match=":4: .*malformed field 'param'"):
        read_instance(f)


def test_pipedream_incomplete_number_is_an_error(tmp_path):
    f = tmp_path / "n.graph.txt"
    f.write_text("node1 -- Input -- forward_compute_time=2., activation_size=1.0\n"
                 "node2 -- ReLU -- forward_compute_time=1.0, activation_size=1.0\n"
                 "\tnode1 -- node2\n")
    with pytest.raises(InputError, match=r":1: node 'node1': forward_compute_time = '2\.' is "
                                         "not a number"):
        read_instance(f)


def test_pipedream_cut_in_the_edge_section_leaves_nodes_without_edges(tmp_path,
                                                                      shared_instances):
    text = (shared_instances / PD / "resnet18.graph.txt").read_text()
    lines = text.splitlines(True)
    first_edge = next(i for i, x in enumerate(lines) if x.startswith("\t"))
    f = tmp_path / "cut.graph.txt"
    f.write_text("".join(lines[:first_edge + 5]))
    with pytest.raises(InputError, match="has no edge .*truncated"):
        read_instance(f)


def test_pipedream_truncation_at_any_byte_is_caught_or_harmless(tmp_path, shared_instances):
    """Cut alexnet at every 7th byte: each cut is an error, except cuts after complete
    edge lines that leave every node with an edge and cuts inside the first line (a
    one-node graph); both are indistinguishable from a complete file."""
    text = (shared_instances / PD / "alexnet.graph.txt").read_text()
    f = tmp_path / "c.graph.txt"
    accepted = []
    for cut in range(1, len(text) - 1, 7):
        f.write_text(text[:cut])
        try:
            inst = read_instance(f)
        except InputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(f))
            continue
        accepted.append(cut)
        assert inst.n_nodes == 1 or (inst.n_nodes == 23 and text[cut - 1] == "\n")
    assert len(accepted) <= 20  # about 4 of the 585 cuts


# ------------------------------------------------------------------ deep nesting
def deep_json(path: Path, depth: int = 5000) -> Path:
    path.write_text("[" * depth + "]" * depth)
    return path


@pytest.mark.parametrize("command", ["info", "convert"])
def test_deeply_nested_json_is_one_line(capsys, tmp_path, command):
    f = deep_json(tmp_path / "deep.json")
    argv = [command, f] + ([tmp_path / "o.json"] if command == "convert" else [])
    line = cli_error(capsys, *argv)
    assert str(f) in line and "nested too deeply" in line


def test_deeply_nested_json_in_every_json_reader(tmp_path):
    depth = 5000
    texts = {
        "native.json": '{"format": "pipecert-instance", "version": 1, "metadata": '
                       + "[" * depth + "]" * depth + ', "nodes": []}',
        "dnn.json": '{"maxFPGAs": 2, "nodes": ' + "[" * depth + "]" * depth + "}",
    }
    for name, text in texts.items():
        f = tmp_path / name
        f.write_text(text)
        for fmt in (None, "native", "dnn-partitioning"):
            with pytest.raises(InputError, match="nested too deeply") as exc:
                read_instance(f, format=fmt)
            assert str(exc.value).startswith(str(f))
    gz = tmp_path / "deep.json.gz"
    gz.write_bytes(gzip.compress(("[" * depth + "]" * depth).encode()))
    with pytest.raises(InputError, match="nested too deeply"):
        read_instance(gz)


def test_deeply_nested_text_proto(tmp_path):
    f = tmp_path / "deep.pbtxt"
    f.write_text("node { a { " + "b { " * 5000 + "}" * 5001 + " }")
    with pytest.raises(InputError, match="nested too deeply"):
        read_instance(f)


def test_deep_json_from_the_command_line_exits_2_without_traceback(tmp_path):
    """The exact reproduction of the issue: ``python -m cli info deep.json``."""
    f = deep_json(tmp_path / "deep.json")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "cli", "info", str(f)], cwd=REPO,
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "nested too deeply" in res.stderr and str(f) in res.stderr


# ------------------------------------------------------------------ other malformed files
def gz_bytes() -> bytes:
    return gzip.compress(b'{"format": "pipecert-instance", "version": 1, "nodes": ['
                         + b'{"id": "a", "work": 1, "comm": 1},' * 200
                         + b'{"id": "b", "work": 1, "comm": 1}]}')


CASES = {
    "empty": lambda: b"",
    "garbage": lambda: bytes(range(256)) * 8,
    "truncated-gzip": lambda: gz_bytes()[: len(gz_bytes()) // 2],
    "gzip-header-only": lambda: gz_bytes()[:12],
    "nul-bytes": lambda: b"\x00" * 100,
}
NAMES = ["g.json", "g.json.gz", "g.graph.txt", "g.pbtxt", "g.onnx", "g.txt"]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", NAMES)
def test_malformed_file_is_one_line_exit_2(capsys, tmp_path, case, name):
    f = tmp_path / name
    f.write_bytes(CASES[case]())
    line = cli_error(capsys, "info", f)
    assert str(f) in line


@pytest.mark.parametrize("fmt", ["native", "dnn-partitioning", "pipedream", "regal"])
def test_forced_format_on_garbage_is_one_line(capsys, tmp_path, fmt):
    f = tmp_path / "x.dat"
    f.write_bytes(b"\xff\xfe" + bytes(range(200)))
    line = cli_error(capsys, "info", f, "--format", fmt)
    assert str(f) in line


def test_truncated_native_gzip_of_a_real_instance(tmp_path):
    f = tmp_path / "w.json.gz"
    write_instance(worked_example(), f)
    raw = f.read_bytes()
    for cut in range(1, len(raw), 9):
        f.write_bytes(raw[:cut])
        with pytest.raises(InputError) as exc:
            read_instance(f)
        assert "\n" not in str(exc.value) and str(exc.value).startswith(str(f))
